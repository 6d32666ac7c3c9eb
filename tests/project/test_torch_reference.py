"""The PyTorch reference of the benchmark is the same network as each Keras model.

The Keras-against-PyTorch table compares like with like only while
``benchmarks/torch_reference.py`` builds what the Keras code builds: the
same CSA block table, trainable parameter counts and output shapes, the same
crop-and-mirror views (and their gradient), and, with the Keras weights
copied in, the same outputs and the same training loss. Skipped where torch
is not installed (``pip install -e .[bench]``).
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

torch = pytest.importorskip("torch")

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import throughput  # noqa: E402
import torch_reference as ref  # noqa: E402

from csa_keras.csa.config import CSAConfig  # noqa: E402
from csa_keras.csa.model import CLOSURES, architecture, build_autoencoder, build_classifier, build_encoder  # noqa: E402
from csa_keras.layers import BN_EPSILON, BN_MOMENTUM  # noqa: E402
from voting_resnet.config import VRNConfig  # noqa: E402
from voting_resnet.layers import CropAndMirror  # noqa: E402
from voting_resnet.losses import CropCrossEntropy  # noqa: E402
from voting_resnet.models import build_voting_resnet  # noqa: E402


def keras_trainable(model: keras.Model) -> int:
    return int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))


def keras_layers(model: keras.Model) -> dict[str, keras.layers.Layer]:
    """Every layer by name, nested models (the autoencoder's encoder and decoder) opened."""
    found = {}
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found.update(keras_layers(layer))
        else:
            found[layer.name] = layer
    return found


def keras_name(torch_name: str) -> str:
    """The Keras layer a reference module stands for: ``encoder.blocks.enc1.conv`` is ``enc1_conv``,
    ``stack2.0.shortcut_bn`` is ``stack2_block1_shortcut_bn``."""
    name = re.sub(r"^(encoder\.|decoder\.)?(blocks\.)?", "", torch_name)
    name = re.sub(r"^(stack\d)\.(\d+)\.", lambda m: f"{m[1]}_block{int(m[2]) + 1}_", name)
    return name.replace(".", "_")


def copy_keras_weights(keras_model: keras.Model, torch_model) -> int:
    """Load the Keras model's weights into the reference, layer by layer by name; returns the layers copied.

    Kernels go from Keras's HWIO (convolutions) and IO (dense) to PyTorch's
    OIHW and OI; BatchNorm's gamma, beta and moving statistics to weight,
    bias and the running statistics.
    """
    layers = keras_layers(keras_model)
    copied = 0
    with torch.no_grad():
        for name, module in torch_model.named_modules():
            if not isinstance(module, torch.nn.Conv2d | torch.nn.Linear | torch.nn.BatchNorm2d):
                continue
            weights = [np.asarray(w) for w in layers[keras_name(name)].get_weights()]
            if isinstance(module, torch.nn.BatchNorm2d):
                targets = [module.weight, module.bias, module.running_mean, module.running_var]
            else:
                axes = (3, 2, 0, 1) if isinstance(module, torch.nn.Conv2d) else (1, 0)
                weights[0] = weights[0].transpose(axes)
                targets = [module.weight] + ([module.bias] if module.bias is not None else [])
            assert len(weights) == len(targets), name
            for target, value in zip(targets, weights):
                assert tuple(target.shape) == value.shape, name
                target.copy_(torch.from_numpy(value))
            copied += 1
    return copied


def randomise_batch_norm(model: keras.Model, seed: int = 0) -> None:
    """Give every BatchNorm non-trivial gamma, beta and moving statistics, so inference exercises them."""
    rng = np.random.default_rng(seed)
    for layer in keras_layers(model).values():
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.1, n), rng.normal(0, 0.1, n),
                               rng.uniform(0.5, 1.5, n)])


def nchw(x: np.ndarray):
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def test_the_reference_uses_the_projects_settings():
    csa, vrn = CSAConfig(), VRNConfig()
    reference = {"bn": (ref.BN_MOMENTUM, ref.BN_EPSILON), "adam_epsilon": ref.ADAM_EPSILON,
                 "csa": (ref.LEARNING_RATE["csa"], ref.LEARNING_RATE["csa_classifier"], ref.BATCH["csa"],
                         ref.CSA_FILTERS, ref.CSA_SPARSITY, ref.CSA_DENSE_UNITS),
                 "vrn": (ref.LEARNING_RATE["vrn"], ref.BATCH["vrn"])}
    assert reference == {
        "bn": (pytest.approx(1 - BN_MOMENTUM), BN_EPSILON),  # PyTorch's momentum is 1 - Keras's
        "adam_epsilon": keras.optimizers.Adam().epsilon,
        "csa": (csa.pretrain_lr, csa.finetune_lr, csa.batch_size, csa.filters, csa.sparsity, csa.dense_units),
        "vrn": (vrn.lr, vrn.batch_size)}


@pytest.mark.parametrize("closure", CLOSURES)
def test_csa_block_table_is_the_keras_one(closure):
    encoder, decoder = architecture(closure=closure)
    ref_encoder, ref_decoder = ref.csa_blocks(closure=closure)
    assert [(b.name, b.filters, b.resample, b.penalty) for b in encoder] == list(ref_encoder)
    assert [(b.name, b.filters, b.resample, b.penalty) for b in decoder] == list(ref_decoder)


@pytest.mark.parametrize("closure", CLOSURES)
def test_csa_parameters_and_output_shapes_match(closure):
    autoencoder = build_autoencoder(closure=closure)
    classifier = build_classifier(build_encoder(closure=closure), 7)
    torch_autoencoder = ref.CSAAutoencoder(closure=closure).eval()
    torch_classifier = ref.CSAClassifier(7, closure=closure).eval()
    assert ref.trainable_parameters(torch_autoencoder) == keras_trainable(autoencoder)
    assert ref.trainable_parameters(torch_classifier) == keras_trainable(classifier)
    x = torch.zeros(2, 1, 48, 48)
    with torch.no_grad():
        reconstruction, _ = torch_autoencoder(x)
        logits, _ = torch_classifier(x)
    assert (2, *autoencoder.output.shape[1:]) == tuple(reconstruction.permute(0, 2, 3, 1).shape)
    assert (2, *classifier.output.shape[1:]) == tuple(logits.shape)


@pytest.mark.parametrize("split", [0, 1, 2, 3])
def test_voting_resnet_parameters_and_output_shapes_match(split):
    model = build_voting_resnet(7, split_after=split)
    torch_model = ref.VotingResNet(7, 3, split).eval()
    assert ref.trainable_parameters(torch_model) == keras_trainable(model) == 11_172_423
    with torch.no_grad():
        crop_logits, vote = torch_model(torch.zeros(2, 3, 48, 48))
    assert (2, *model.output["crop_logits"].shape[1:]) == tuple(crop_logits.shape) == (2, 10 if split else 1, 7)
    assert (2, *model.output["vote"].shape[1:]) == tuple(vote.shape)


@pytest.mark.parametrize("shape", [(2, 48, 48, 3), (2, 24, 24, 4), (2, 12, 12, 5), (1, 12, 18, 2)])
def test_crop_and_mirror_views_and_gradient_equal_the_keras_layer(shape):
    x = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    expected = np.asarray(CropAndMirror()(x))
    got = ref.CropAndMirror()(nchw(x)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(got, expected)

    # the gradient: every input pixel receives the weights of each view covering it
    weights = np.random.default_rng(0).normal(size=expected.shape).astype(np.float32)
    keras_input = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(keras_input)
        total = tf.reduce_sum(CropAndMirror()(keras_input) * weights)
    torch_input = nchw(x).requires_grad_()
    (ref.CropAndMirror()(torch_input) * nchw(weights)).sum().backward()
    np.testing.assert_allclose(torch_input.grad.permute(0, 2, 3, 1).numpy(), tape.gradient(total, keras_input),
                               rtol=1e-5, atol=1e-5)


def test_csa_with_keras_weights_gives_the_keras_outputs_and_training_loss():
    keras.utils.set_random_seed(0)
    autoencoder = build_autoencoder()
    classifier = build_classifier(autoencoder.get_layer("encoder"), 7)
    randomise_batch_norm(autoencoder)
    torch_autoencoder, torch_classifier = ref.CSAAutoencoder(), ref.CSAClassifier(7)
    assert copy_keras_weights(autoencoder, torch_autoencoder) == 15  # 8 convolutions, 7 BatchNorms
    assert copy_keras_weights(classifier, torch_classifier) == 10  # 4 convolutions, 4 BatchNorms, 2 Dense
    x = np.random.default_rng(1).random((4, 48, 48, 1), dtype=np.float32)
    labels = np.array([0, 3, 6, 2])

    with torch.no_grad():
        torch_autoencoder.eval()
        torch_classifier.eval()
        np.testing.assert_allclose(torch_autoencoder(nchw(x))[0].permute(0, 2, 3, 1).numpy(),
                                   autoencoder(x, training=False), rtol=1e-4, atol=1e-5)
        probabilities = torch.softmax(torch_classifier(nchw(x))[0], -1).numpy()
        np.testing.assert_allclose(probabilities, classifier(x, training=False), rtol=1e-4, atol=1e-6)

        # training mode: batch statistics, and the loss fit minimises (MSE + the four L1 penalties)
        torch_autoencoder.train()
        torch_classifier.train()
        reconstruction = autoencoder(x, training=True)
        penalties = [float(p) for p in autoencoder.losses]
        assert len(penalties) == 4
        expected = float(keras.losses.MeanSquaredError()(x, reconstruction)) + sum(penalties)
        assert float(ref.csa_loss(torch_autoencoder, nchw(x))) == pytest.approx(expected, rel=1e-5)
        _, torch_penalties = torch_autoencoder(nchw(x))
        # one penalty per encoder block (Keras lists them in another order)
        assert sorted(float(p) for p in torch_penalties) == pytest.approx(sorted(penalties), rel=1e-5)
        probabilities = classifier(x, training=True)
        expected = float(keras.losses.CategoricalCrossentropy()(np.eye(7)[labels], probabilities))
        expected += sum(float(p) for p in classifier.losses)
        got = float(ref.classifier_loss(torch_classifier, nchw(x), torch.from_numpy(labels)))
        assert got == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("split", [0, 3])
def test_voting_resnet_with_keras_weights_gives_the_keras_outputs_and_training_loss(split):
    keras.utils.set_random_seed(0)
    model = build_voting_resnet(7, split_after=split)
    randomise_batch_norm(model)
    torch_model = ref.VotingResNet(7, 3, split)
    assert copy_keras_weights(model, torch_model) == 2 + 8 * 4 + 3 * 2 + 1  # stem, blocks, shortcuts, logits
    x = np.random.default_rng(1).random((2, 48, 48, 3), dtype=np.float32)
    labels = np.array([1, 5])
    with torch.no_grad():
        torch_model.eval()
        crop_logits, vote = torch_model(nchw(x))
        out = model(x, training=False)
        np.testing.assert_allclose(crop_logits.numpy(), out["crop_logits"], rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(vote.numpy(), out["vote"], rtol=1e-3, atol=1e-5)
        torch_model.train()
        expected = float(CropCrossEntropy()(labels, model(x, training=True)["crop_logits"]))
        got = float(ref.vrn_loss(torch_model, nchw(x), torch.from_numpy(labels)))
        assert got == pytest.approx(expected, rel=1e-4)


def test_the_reference_accepts_throughputs_command_and_prints_what_it_reads():
    """One bfloat16 training step at batch 2, run as ``throughput.py`` runs the reference."""
    command = throughput._torch_command(sys.executable, str(throughput.DEFAULT_REFERENCE), "vrn", 3, "train", 1,
                                        "mixed_bfloat16")
    assert command[-2:] == ["--precision", "bfloat16"]
    line, peak = throughput.run_measured([*command, "--batch", "2", "--warmup", "0"])
    assert line["images_per_s"] > 0
    assert peak is None or peak > 50  # a process that loaded torch (None where /proc is unreadable)
    assert (line["model"], line["split"], line["mode"], line["batch"], line["precision"], line["steps"]) == (
        "vrn", 3, "train", 2, "bfloat16", 1)
    assert line["params"] == 11_172_423


def test_the_reference_refuses_a_split_of_the_csa_in_one_line():
    out = subprocess.run([sys.executable, str(throughput.DEFAULT_REFERENCE), "--model", "csa", "--split", "2",
                          "--mode", "train", "--steps", "1"], capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].endswith(
        "--split applies to --model vrn only (got --model csa --split 2)")


@pytest.mark.parametrize("model_name", ["csa", "csa_classifier", "vrn"])
def test_a_bfloat16_training_step_updates_float32_weights(model_name):
    model, images, labels, loss_fn = ref.build(model_name, 3 if model_name == "vrn" else 0, batch=2)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.Adam(model.parameters(), lr=ref.LEARNING_RATE[model_name], eps=ref.ADAM_EPSILON)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = loss_fn(model, images, labels)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    optimizer.step()
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
