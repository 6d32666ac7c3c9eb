"""ONNX artifacts of a Keras model: written with tf2onnx, run on ONNX Runtime.

``onnx``: a ``.onnx`` file written by Keras's own exporter,
``keras.Model.export(path, format="onnx")``, which on the TensorFlow backend
traces the model's call into a TensorFlow function and converts it with
tf2onnx (Keras patches tf2onnx for NumPy 2 before it runs). ONNX Runtime
(``onnxruntime.InferenceSession``) then runs it in any language it has a
binding for, without TensorFlow or Keras.

What Keras's exporter needs, done here on a copy with the same weights
(:func:`servable_copy`), the model itself left as it is:

- a float32 dtype policy: a model saved under ``mixed_bfloat16`` converts,
  but its bfloat16 convolutions are no valid ONNX ``Conv`` and ONNX Runtime
  refuses the file;
- no activity regularizer: the CSA's L1 penalty on its pooled maps is a loss
  computed during the call, whose nodes tf2onnx's graph pass cannot find
  ("Fetch node ... doesn't exist in graph"); the penalty changes no output;
- a model that has been called once.

The artifact takes ``(batch, H, W, C)`` float32 images named ``image``; its
outputs keep the Keras model's names where it has several (the Voting
ResNet's ``vote`` and ``crop_logits``), and a single output is named
``probabilities``. These modules (tf2onnx, onnx, onnxruntime) are the
``onnx`` extra, imported here when an export runs: :func:`missing_module`
says, without importing them, whether one is absent.
"""
from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from csa_keras.utils.quiet import stderr_filtered

ONNX_MODULES = ("tf2onnx", "onnx", "onnxruntime")
"""The modules of the ``onnx`` extra: the converter, the format and the runtime."""

SINGLE_OUTPUT = "probabilities"
"""The name of a single-output model's output in its ONNX artifact."""


def missing_module() -> str | None:
    """The first module of :data:`ONNX_MODULES` that is not installed, ``None`` when all are."""
    return next((name for name in ONNX_MODULES if importlib.util.find_spec(name) is None), None)


def _layers(model) -> list[Any]:
    layers = []
    for layer in model.layers:
        layers.append(layer)
        if isinstance(layer, keras.Model):
            layers.extend(_layers(layer))
    return layers


def servable_copy(model):
    """``model`` itself when it computes in float32 without activity regularizers, else such a copy
    with its weights (module docstring), called once on zeros so that Keras can trace it."""
    if any(layer.compute_dtype != "float32" or getattr(layer, "activity_regularizer", None) is not None
           for layer in _layers(model)):
        def plain(layer):
            config = {**layer.get_config(), "dtype": "float32"}
            if "activity_regularizer" in config:
                config["activity_regularizer"] = None
            return layer.__class__.from_config(config)

        copy = keras.models.clone_model(model, clone_function=plain, recursive=True)
        copy.set_weights(model.get_weights())
        model = copy
    model.predict_on_batch(np.zeros((1, *model.input_shape[1:]), np.float32))
    return model


def _name_single_output(path: Path) -> None:
    """Rename the only output of the ONNX file at ``path`` (tf2onnx's ``Identity:0``) to :data:`SINGLE_OUTPUT`."""
    import onnx

    proto = onnx.load(str(path))
    (output,) = proto.graph.output
    old = output.name
    for node in proto.graph.node:
        node.output[:] = [SINGLE_OUTPUT if name == old else name for name in node.output]
    output.name = SINGLE_OUTPUT
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def write_onnx(model, path: str | os.PathLike, opset: int | None = None) -> Path:
    """``model`` as an ONNX file at ``path``, converted from :func:`servable_copy`.

    ``opset``: the ONNX opset (``None``: tf2onnx's default). A conversion that
    fails is a one-line ``ValueError``; tf2onnx's log lines and TensorFlow's
    graph-pass diagnostics stay out of the command's output.
    """
    path = Path(path)
    copy = servable_copy(model)
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    try:
        with stderr_filtered():
            copy.export(str(path), format="onnx", verbose=False, opset_version=opset)
        if not isinstance(copy.output, dict) and not isinstance(copy.output, (list, tuple)):
            _name_single_output(path)
    except Exception as error:  # tf2onnx and TensorFlow's graph passes raise many kinds
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        raise ValueError(f"tf2onnx cannot convert the model: "
                         f"{lines[0][:300] if lines else type(error).__name__}") from None
    return path


def onnx_predictor(path: str | os.PathLike, num_threads: int | None = None) -> Callable[[np.ndarray], Any]:
    """A function from images to the ONNX model's outputs on ONNX Runtime's CPU provider.

    ``num_threads``: the session's intra-op threads (``None``: ONNX Runtime's
    default). One array for a single-output model, a dict by output name
    otherwise, as the SavedModel and TFLite predictors give them.
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    if num_threads is not None:
        options.intra_op_num_threads = num_threads
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    (image,) = session.get_inputs()
    names = [output.name for output in session.get_outputs()]

    def predict(images: np.ndarray):
        outputs = session.run(None, {image.name: np.ascontiguousarray(images, dtype=np.float32)})
        if len(outputs) == 1:
            return outputs[0]
        return dict(zip(names, outputs))

    return predict


def versions() -> dict[str, str]:
    """The versions of the converter and the runtime that wrote and ran an ONNX artifact."""
    import onnx
    import onnxruntime
    import tf2onnx

    return {"tf2onnx": tf2onnx.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}
