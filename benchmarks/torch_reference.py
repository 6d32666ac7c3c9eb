"""The PyTorch reference of both models, for the Keras-against-PyTorch throughput table.

The same networks as the Keras models, written the plain PyTorch way
(``nn.Module``, NCHW tensors, ``torch.optim.Adam``), so that anyone who
clones the project can measure the Keras side against a second framework
(``throughput.py --torch-python PY`` runs this script). It imports neither
TensorFlow nor the project, so its time and peak memory are PyTorch's alone;
the parity tests (``tests/project/test_torch_reference.py``) check it against
the Keras models: the CSA block table, trainable parameter counts, output
shapes, the crop-and-mirror views, and outputs and losses with the Keras
weights copied in.

- **CSA** (``csa_keras/csa/model.py``, ``csa_keras/csa/training.py``): the
  encoder and decoder of the block table of :func:`csa_blocks` (``code6`` by
  default, ``pool4`` too), Conv 3x3 same with bias, BatchNorm, ReLU,
  MaxPool 2x2 / nearest upsampling 2x2, a sigmoid Conv 3x3 reconstruction;
  the L1 activity penalty ``1e-5 * sum(|output|) / batch`` on each of the
  four penalised layers, added to the reconstruction MSE; the classifier head
  Flatten (in NHWC order, as Keras flattens), Dense 128 ReLU, Dense K with
  cross-entropy; Adam 1e-3 (the ``paper`` preset's pretraining and
  fine-tuning rates).
- **Voting ResNet** (``voting_resnet/``): ResNet-18 for 48x48 (3x3 stem, no
  max-pool, bias-free convolutions, 1x1 projection shortcuts), the
  crop-and-mirror split after module 1, 2 or 3 (5 crops of 5/6 the side and
  the same 5 of the mirrored map, folded into the batch sample-major), global
  average pooling, a Dense logits layer, the cross-entropy of every crop
  against its image's label, the soft vote (mean of the views' softmax);
  Adam 2e-4 (``voting_resnet/config.py``).
- BatchNorm momentum 0.1 and epsilon 1e-5 (Keras's 0.9 and 1e-5,
  ``csa_keras/layers/batch_norm.py``); Adam's epsilon 1e-7 (Keras's default); weights
  initialised as the Keras layers are (Glorot uniform and zero biases; He
  normal with fan-out for the ResNet's convolutions).
- ``--precision bfloat16`` runs forward and loss under ``torch.autocast`` on
  the CPU, the counterpart of Keras's ``mixed_bfloat16``: float32 weights,
  bfloat16 convolutions and matrix products; the layers that Keras keeps in
  float32 (the CSA's penalised layers and its reconstruction and prediction
  layers, the ResNet's logits) run in float32 here too.

Where it differs from Keras, and why (none of it changes the work per step):
Adam adds its epsilon after the second moment's bias correction, Keras before
(PyTorch's ``torch.optim.Adam`` has no other form; the two differ only while
``sqrt(v)`` is near 1e-7); BatchNorm's running variance is updated with the
unbiased batch variance, Keras's with the biased one (only the statistics
inference uses differ, by ``n / (n - 1)``); no metrics are accumulated during
training (Keras also tracks the MSE or the vote accuracy: a mean over one
batch).

One run builds one model, feeds one in-memory batch of random images (and
labels) for ``--warmup`` untimed steps then ``--steps`` timed ones, and
prints one JSON line with ``images_per_s`` (what ``throughput.py`` reads)::

    python benchmarks/torch_reference.py --model csa|csa_classifier|vrn --split K
        --mode train|infer --steps N [--warmup 2] [--batch B] [--precision float32|bfloat16]

A train step is one optimizer step (forward, loss, backward, update), as one
Keras ``fit`` step; an infer step is a forward pass in inference mode whose
outputs are handed back as NumPy arrays, as Keras's ``predict_on_batch``
does.
"""
from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

MODELS = ("csa", "csa_classifier", "vrn")
MODES = ("train", "infer")
PRECISIONS = ("float32", "bfloat16")
BATCH = {"csa": 32, "csa_classifier": 32, "vrn": 135}
"""The papers' batch sizes: CSA 32 (CSA §4.3), Voting ResNet 135 (VRN §3.3)."""
LEARNING_RATE = {"csa": 1e-3, "csa_classifier": 1e-3, "vrn": 2e-4}
"""Adam's learning rates of the ``paper`` presets (CSA pretraining and fine-tuning, VRN)."""
NUM_CLASSES = 7
INPUT_SIDE = 48

BN_MOMENTUM = 0.1
"""PyTorch's convention for Keras's ``momentum=0.9`` (``csa_keras.layers.BN_MOMENTUM``)."""
BN_EPSILON = 1e-5
ADAM_EPSILON = 1e-7
"""Keras's default Adam epsilon (PyTorch's default is 1e-8)."""

CSA_FILTERS = (32, 64, 128, 256)
CSA_SPARSITY = 1e-5
CSA_DENSE_UNITS = 128
CSA_CLOSURES = ("code6", "pool4")

VRN_WIDTHS = (64, 128, 256, 512)
VRN_STRIDES = (1, 2, 2, 2)
VRN_BLOCKS_PER_STACK = 2
VRN_SPLIT_POINTS = (0, 1, 2, 3)
CROP_FRACTION = (5, 6)
"""A crop's side as numerator and denominator of the map's side (VRN §3.1): 48 -> 40, 24 -> 20, 12 -> 10."""


def _batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPSILON, momentum=BN_MOMENTUM)


def _glorot(layer: nn.Conv2d | nn.Linear) -> None:
    """Keras's default initialisation: Glorot uniform weights, zero biases."""
    nn.init.xavier_uniform_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


# --- CSA --------------------------------------------------------------------------------------


def csa_blocks(filters: Sequence[int] = CSA_FILTERS, closure: str = "code6"):
    """The (encoder, decoder) block tables: ``(name, filters, resample, penalty)`` per block.

    The table of ``csa_keras.csa.model.architecture`` (a parity test compares
    them): ``resample`` is ``"pool"``, ``"up"`` or None; ``penalty`` names
    the layer carrying the L1 activity penalty (``enc{i}_pool``, or
    ``enc4_relu`` for block 4 under ``code6``, which does not pool).
    """
    if closure not in CSA_CLOSURES:
        raise ValueError(f"closure must be one of {CSA_CLOSURES}, got {closure!r}")
    filters = tuple(int(f) for f in filters)
    encoder = []
    for i, width in enumerate(filters, start=1):
        pooled = closure == "pool4" or i < len(filters)
        encoder.append((f"enc{i}", width, "pool" if pooled else None,
                        f"enc{i}_pool" if pooled else f"enc{i}_relu"))
    decoder = tuple((f"dec{i}", width, "up", None) for i, width in enumerate(reversed(filters[:-1]), start=1))
    return tuple(encoder), decoder


class ConvBN(nn.Module):
    """Conv 3x3 with bias, zero padding 1 (Keras's ``same`` at stride 1), then BatchNorm."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.bn = _batch_norm(out_channels)
        _glorot(self.conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


def _l1_penalty(x: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Keras 3's activity penalty: ``sparsity * sum(|x|)`` divided by the batch size, in float32."""
    return sparsity * x.float().abs().sum() / x.shape[0]


class CSAEncoder(nn.Module):
    """Image -> code, and the four L1 activity penalties of the pass (CSA §3.2).

    Each block is Conv-BN-ReLU, then MaxPool 2x2 where the table says
    ``pool``. The penalised layer of each block (its pool, or block 4's ReLU
    under ``code6``) computes in float32, as Keras builds it with
    ``dtype="float32"``, so the penalty is a float32 sum under bfloat16 too.
    The penalties are computed in training mode only: inference has no loss
    to add them to.
    """

    def __init__(self, in_channels: int = 1, filters: Sequence[int] = CSA_FILTERS,
                 sparsity: float = CSA_SPARSITY, closure: str = "code6"):
        super().__init__()
        self.table, _ = csa_blocks(filters, closure)
        self.sparsity = float(sparsity)
        widths = [in_channels] + [width for _, width, _, _ in self.table]
        self.blocks = nn.ModuleDict({name: ConvBN(widths[i], width)
                                     for i, (name, width, _, _) in enumerate(self.table)})

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        penalties = []
        for name, _, resample, penalty in self.table:
            x = self.blocks[name](x)
            x = F.relu(x.float() if penalty == f"{name}_relu" else x)
            if resample == "pool":
                x = F.max_pool2d(x.float(), 2)
            if self.sparsity > 0 and self.training:
                penalties.append(_l1_penalty(x, self.sparsity))
        return x, penalties


class CSADecoder(nn.Module):
    """Code -> reconstruction in [0, 1]: Conv-BN-ReLU-Upsample blocks, a float32 sigmoid Conv."""

    def __init__(self, out_channels: int = 1, filters: Sequence[int] = CSA_FILTERS, closure: str = "code6"):
        super().__init__()
        _, self.table = csa_blocks(filters, closure)
        self.closure = closure
        widths = [int(filters[-1])] + [width for _, width, _, _ in self.table]
        self.blocks = nn.ModuleDict({name: ConvBN(widths[i], width)
                                     for i, (name, width, _, _) in enumerate(self.table)})
        self.reconstruction = nn.Conv2d(widths[-1], out_channels, 3, padding=1)
        _glorot(self.reconstruction)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        x = code
        for name, _, _, _ in self.table:
            x = F.interpolate(F.relu(self.blocks[name](x)), scale_factor=2, mode="nearest")
        if self.closure == "pool4":
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        with torch.autocast("cpu", enabled=False):
            return torch.sigmoid(self.reconstruction(x.float()))


class CSAAutoencoder(nn.Module):
    """The CSA for pretraining: image -> (reconstruction, penalties); :func:`csa_loss` trains it."""

    def __init__(self, in_channels: int = 1, filters: Sequence[int] = CSA_FILTERS,
                 sparsity: float = CSA_SPARSITY, closure: str = "code6"):
        super().__init__()
        self.encoder = CSAEncoder(in_channels, filters, sparsity, closure)
        self.decoder = CSADecoder(in_channels, filters, closure)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        code, penalties = self.encoder(x)
        return self.decoder(code), penalties


class CSAClassifier(nn.Module):
    """The CSA classifier (§3.3): encoder, Flatten, Dense(128, ReLU), Dense(K) -> (logits, penalties).

    The code is flattened in NHWC order, as Keras's ``Flatten`` does, so the
    Dense weights of a Keras model copy over as they are. The logits layer
    computes in float32 (Keras's ``predictions`` is a float32 softmax);
    :func:`classifier_loss` is the cross-entropy of its softmax.
    """

    def __init__(self, num_classes: int = NUM_CLASSES, in_channels: int = 1, input_side: int = INPUT_SIDE,
                 filters: Sequence[int] = CSA_FILTERS, sparsity: float = CSA_SPARSITY,
                 closure: str = "code6", dense_units: int = CSA_DENSE_UNITS):
        super().__init__()
        self.encoder = CSAEncoder(in_channels, filters, sparsity, closure)
        code_side = input_side // (16 if closure == "pool4" else 8)
        self.dense = nn.Linear(code_side * code_side * int(filters[-1]), dense_units)
        self.predictions = nn.Linear(dense_units, num_classes)
        _glorot(self.dense)
        _glorot(self.predictions)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        code, penalties = self.encoder(x)
        hidden = F.relu(self.dense(code.permute(0, 2, 3, 1).flatten(1)))
        with torch.autocast("cpu", enabled=False):
            return self.predictions(hidden.float()), penalties


def csa_loss(model: CSAAutoencoder, images: torch.Tensor) -> torch.Tensor:
    """Pretraining's loss: the reconstruction MSE plus the four sparsity penalties (Keras's ``fit`` total)."""
    reconstruction, penalties = model(images)
    return F.mse_loss(reconstruction, images.float()) + sum(penalties)


def classifier_loss(model: CSAClassifier, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Fine-tuning's loss: cross-entropy of the softmax plus the sparsity penalties, which stay on."""
    logits, penalties = model(images)
    return F.cross_entropy(logits, labels) + sum(penalties)


# --- Voting ResNet ----------------------------------------------------------------------------


def crop_offsets(height: int, width: int) -> tuple[int, int, list[tuple[int, int]]]:
    """Crop size and the (row, column) corners of the top-left, top-right, bottom-left, bottom-right
    and centre crops: ``voting_resnet.layers.crop_offsets`` with the crop fraction 5/6."""
    numerator, denominator = CROP_FRACTION
    h, w = height * numerator // denominator, width * numerator // denominator
    dh, dw = height - h, width - w
    return h, w, [(0, 0), (0, dw), (dh, 0), (dh, dw), (dh // 2, dw // 2)]


class CropAndMirror(nn.Module):
    """``(B, C, H, W) -> (B * 10, C, h, w)``: five crops, then the same five of the mirrored map.

    Ten slices and a stack, sample-major (image 0's ten views, then image
    1's), in the order of ``voting_resnet.layers.CROP_POSITIONS``; the
    mirrored map is flipped along its width. The Keras layer gathers the same
    pixels in one op.
    """

    num_views = 10

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w, offsets = crop_offsets(x.shape[2], x.shape[3])
        views = [source[:, :, top:top + h, left:left + w]
                 for source in (x, x.flip(3)) for top, left in offsets]
        return torch.stack(views, dim=1).flatten(0, 1)


class BasicBlock(nn.Module):
    """ResNet v1 basic block: Conv3x3-BN-ReLU-Conv3x3-BN plus the identity or a 1x1 Conv-BN projection, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = _batch_norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = _batch_norm(out_channels)
        self.shortcut_conv = self.shortcut_bn = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut_conv = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
            self.shortcut_bn = _batch_norm(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.shortcut_conv is None else self.shortcut_bn(self.shortcut_conv(x))
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + shortcut)


class VotingResNet(nn.Module):
    """ResNet-18 for 48x48 with the crop-and-mirror split after module ``split_after`` (0: none).

    Returns ``(crop_logits, vote)``: the logits of every view ``(B, V, K)``
    (``V`` = 10, or 1 for the baseline), in float32, and the soft vote
    ``(B, K)``, the mean over the views of their softmax. The stacks are
    ``stack1`` ... ``stack4`` (the paper's modules 1-4) of two blocks each.
    """

    def __init__(self, num_classes: int = NUM_CLASSES, in_channels: int = 3, split_after: int = 0):
        super().__init__()
        if split_after not in VRN_SPLIT_POINTS:
            raise ValueError(f"split_after must be one of {VRN_SPLIT_POINTS}. Received: split_after={split_after!r}")
        self.split_after = split_after
        self.stem_conv = nn.Conv2d(in_channels, VRN_WIDTHS[0], 3, padding=1, bias=False)
        self.stem_bn = _batch_norm(VRN_WIDTHS[0])
        widths = (VRN_WIDTHS[0], *VRN_WIDTHS)
        for stack, stride in enumerate(VRN_STRIDES, start=1):
            blocks = [BasicBlock(widths[stack - 1] if b == 0 else widths[stack], widths[stack],
                                 stride if b == 0 else 1) for b in range(VRN_BLOCKS_PER_STACK)]
            self.add_module(f"stack{stack}", nn.Sequential(*blocks))
        self.crop = CropAndMirror() if split_after else None
        self.num_views = CropAndMirror.num_views if split_after else 1
        self.logits = nn.Linear(VRN_WIDTHS[-1], num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        _glorot(self.logits)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.relu(self.stem_bn(self.stem_conv(x)))
        for stack in range(1, len(VRN_WIDTHS) + 1):
            x = getattr(self, f"stack{stack}")(x)
            if stack == self.split_after:
                x = self.crop(x)
        x = x.mean(dim=(2, 3))
        with torch.autocast("cpu", enabled=False):
            crop_logits = self.logits(x.float()).reshape(-1, self.num_views, self.logits.out_features)
            return crop_logits, F.softmax(crop_logits, dim=-1).mean(dim=1)


def vrn_loss(model: VotingResNet, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of every view against its image's label, averaged over the ``B * V`` views (VRN §3.3)."""
    crop_logits, _ = model(images)
    views = crop_logits.shape[1]
    return F.cross_entropy(crop_logits.flatten(0, 1), labels.repeat_interleave(views))


# --- the benchmark ----------------------------------------------------------------------------


def trainable_parameters(model: nn.Module) -> int:
    """Trainable weights, counted as Keras counts ``trainable_weights`` (BatchNorm's running statistics excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build(model_name: str, split: int = 0, batch: int | None = None, seed: int = 0):
    """The model, one batch (NCHW images in [0, 1) and integer labels) and its loss function.

    The images are NumPy's ``default_rng(seed).random`` as in
    ``throughput.py``'s Keras side; the loss takes ``(model, images,
    labels)``.
    """
    if model_name not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model_name!r}")
    if model_name != "vrn" and split != 0:
        raise ValueError(f"--split applies to the Voting ResNet only; {model_name} takes 0, got {split}")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    batch = BATCH[model_name] if batch is None else int(batch)
    channels = 3 if model_name == "vrn" else 1
    images = torch.from_numpy(rng.random((batch, INPUT_SIDE, INPUT_SIDE, channels), dtype=np.float32))
    images = images.permute(0, 3, 1, 2).contiguous()
    labels = torch.from_numpy(rng.integers(0, NUM_CLASSES, batch))
    if model_name == "csa":
        return CSAAutoencoder(), images, labels, lambda model, x, _: csa_loss(model, x)
    if model_name == "csa_classifier":
        return CSAClassifier(), images, labels, classifier_loss
    return VotingResNet(NUM_CLASSES, channels, split), images, labels, vrn_loss


def predictions(model_name: str, outputs) -> list[torch.Tensor]:
    """What the Keras model outputs for a forward pass: the reconstruction, the class
    probabilities, or the crop logits and the vote."""
    if model_name == "csa":
        return [outputs[0]]
    if model_name == "csa_classifier":
        return [F.softmax(outputs[0], dim=-1)]
    return list(outputs)


def measure(model_name: str, split: int, mode: str, steps: int, warmup: int = 2,
            batch: int | None = None, precision: str = "float32") -> dict:
    """Images per second of ``steps`` timed steps after ``warmup`` untimed ones; the line to print."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if steps < 1 or warmup < 0:
        raise ValueError(f"steps must be at least 1 and warmup at least 0, got {steps} and {warmup}")
    model, images, labels, loss_fn = build(model_name, split, batch)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bfloat16")
    if mode == "train":
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE[model_name], eps=ADAM_EPSILON)

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            with autocast:
                loss = loss_fn(model, images, labels)
            loss.backward()
            optimizer.step()
    else:
        model.eval()

        def step() -> None:
            with torch.inference_mode(), autocast:
                outputs = predictions(model_name, model(images))
            for output in outputs:  # handed back as NumPy arrays, as predict_on_batch does
                output.numpy()

    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    elapsed = time.perf_counter() - start
    return {"model": model_name, "split": split, "mode": mode, "batch": len(images), "precision": precision,
            "steps": steps, "warmup": warmup, "images_per_s": round(len(images) * steps / elapsed, 2),
            "params": trainable_parameters(model), "threads": torch.get_num_threads(),
            "torch": torch.__version__}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=MODELS, required=True)
    parser.add_argument("--split", type=int, choices=VRN_SPLIT_POINTS, default=0,
                        help="Voting ResNet split point, 0 = baseline (default: 0)")
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--steps", type=int, required=True, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default: 2)")
    parser.add_argument("--batch", type=int, help="images per step (default: the paper's, CSA 32, VRN 135)")
    parser.add_argument("--precision", choices=PRECISIONS, default="float32",
                        help="bfloat16: torch.autocast on the CPU, float32 weights (default: float32)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or (args.batch is not None and args.batch < 1):
        parser.error("--steps and --batch must be at least 1, --warmup at least 0")
    if args.model != "vrn" and args.split != 0:
        parser.error(f"--split applies to --model vrn only (got --model {args.model} --split {args.split})")
    line = measure(args.model, args.split, args.mode, args.steps, args.warmup, args.batch, args.precision)
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
