"""The contract every custom Keras layer, loss and model of the project keeps.

A layer or model is only usable by the rest of the project (checkpoints,
``predict``, export, the notebooks) if it survives the round trips Keras puts
it through, which its own tests rarely exercise on purpose:

- ``get_config`` -> ``from_config`` rebuilds an object with the same config,
  and the registered name resolves with no ``custom_objects`` (what
  ``keras.models.load_model`` relies on);
- ``model.save("x.keras")`` -> ``keras.models.load_model("x.keras")``, again
  without ``custom_objects``, gives a model that computes the same outputs;
- the symbolic output shape for an unknown batch (``compute_output_shape``
  with ``None`` and a call on a ``keras.Input``) agrees with the shape of a
  real output, so the object composes inside functional models;
- the real output has the shape the test expects.

The checks follow keras-hub's ``TestCase.run_layer_test``,
``run_serialization_test`` and ``run_model_saving_test``, reduced to plain
functions so pytest tests can call them. The tests import this module as
``from keras_contract import ...``: ``tests/conftest.py`` puts ``tests/`` on
``sys.path`` (pytest's default ``prepend`` import mode).
"""
from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import keras
import numpy as np

__all__ = ["ContractResult", "assert_config_round_trip", "run_layer_contract", "run_model_contract"]


@dataclasses.dataclass
class ContractResult:
    """What a contract run leaves for the test's own assertions.

    ``instance``: the layer (built and called) or the model under test;
    ``output``: its output on the test's data, as NumPy (same nesting as the
    call's result); ``clone``: the object rebuilt by ``from_config``;
    ``loaded``: the model read back from ``path`` (for a layer, the one-layer
    model that wraps it); ``path``: the ``.keras`` file.
    """

    instance: Any
    output: Any
    clone: Any
    loaded: keras.Model
    path: Path


def _plain(value):
    """A config with tuples as lists: what a config looks like after a trip through JSON."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _is_shape(value) -> bool:
    return isinstance(value, (tuple, list)) and all(d is None or isinstance(d, (int, np.integer))
                                                    for d in value)


def _shapes(structure):
    """The shape(s) of a tensor, a shape tuple, or a dict/list of either, as int/None tuples."""
    if isinstance(structure, dict):
        return {key: _shapes(item) for key, item in structure.items()}
    if _is_shape(structure):
        return tuple(None if d is None else int(d) for d in structure)
    if isinstance(structure, (list, tuple)):
        return [_shapes(item) for item in structure]
    return _shapes(tuple(structure.shape))


def _unknown_batch(shapes):
    """The same shape(s) with the batch dimension unknown."""
    if isinstance(shapes, dict):
        return {key: _unknown_batch(item) for key, item in shapes.items()}
    if isinstance(shapes, list):
        return [_unknown_batch(item) for item in shapes]
    return (None, *shapes[1:])


def _to_numpy(structure):
    return keras.tree.map_structure(keras.ops.convert_to_numpy, structure)


def _assert_same_outputs(actual, desired, rtol: float, atol: float, what: str) -> None:
    keras.tree.assert_same_structure(actual, desired)
    for a, d in zip(keras.tree.flatten(actual), keras.tree.flatten(desired)):
        np.testing.assert_allclose(a, d, rtol=rtol, atol=atol, err_msg=what)


def assert_config_round_trip(obj, *, by_registered_name: bool = True):
    """``get_config`` -> ``from_config``, and the registered name, give back an equal object.

    Two routes: ``type(obj).from_config(obj.get_config())`` must be of the
    same class with an identical config; ``keras.saving.serialize_keras_object``
    -> JSON -> ``deserialize_keras_object`` with no ``custom_objects`` (the lookup
    ``load_model`` does by registered name) must give the same class and the
    same config up to the tuple/list change of JSON (skipped with
    ``by_registered_name=False``, for models whose ``.keras`` load does the
    same lookup). Works for layers, losses and models. Returns the
    ``from_config`` clone.
    """
    cls = type(obj)
    config = obj.get_config()
    clone = cls.from_config(copy.deepcopy(config))  # Functional.from_config empties its argument
    assert type(clone) is cls, f"{cls.__name__}.from_config built a {type(clone).__name__}"
    assert clone.get_config() == config, f"{cls.__name__}: from_config(get_config()) changed the config"
    if not by_registered_name:
        return clone

    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(obj)))
    revived = keras.saving.deserialize_keras_object(serialized)
    assert type(revived) is cls, (
        f"{serialized.get('registered_name')!r} deserialises to {type(revived).__name__}, "
        f"not {cls.__name__}: is the class registered with keras.saving.register_keras_serializable?")
    assert _plain(revived.get_config()) == _plain(config), \
        f"{cls.__name__}: the serialize/deserialize round trip changed the config"
    return clone


def _check_saving(model: keras.Model, input_data, output, tmp_path: Path, rtol: float, atol: float,
                  name: str) -> tuple[keras.Model, Path]:
    """Save as ``.keras``, load without ``custom_objects``; compare class, config, compile state, outputs."""
    path = Path(tmp_path) / f"{name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is type(model), f"{name}: loaded a {type(loaded).__name__}"
    assert _plain(loaded.get_config()) == _plain(model.get_config()), \
        f"{name}: the config read back from {path.name} differs"
    assert loaded.compiled == model.compiled, f"{name}: the compile state was not restored"
    reloaded_output = _to_numpy(loaded(input_data, training=False))
    _assert_same_outputs(reloaded_output, output, rtol, atol, f"{name}: outputs after load_model")
    return loaded, path


def _check_shapes(obj, input_data, real_shapes, symbolic_output, expected_output_shape,
                  name: str) -> None:
    input_shape = tuple(np.shape(input_data))
    unknown = _unknown_batch(real_shapes)
    assert _shapes(obj.compute_output_shape((None, *input_shape[1:]))) == unknown, \
        f"{name}: compute_output_shape with an unknown batch disagrees with the real output"
    assert _shapes(obj.compute_output_shape(input_shape)) == real_shapes, \
        f"{name}: compute_output_shape{input_shape} disagrees with the real output"
    assert _shapes(symbolic_output) == unknown, \
        f"{name}: the call on a keras.Input with batch None disagrees with the real output"
    if expected_output_shape is not None:
        assert real_shapes == _shapes(expected_output_shape), \
            f"{name}: output shape {real_shapes}, expected {expected_output_shape}"


def run_layer_contract(layer_cls, init_kwargs: dict, input_data, expected_output_shape,
                       tmp_path: Path, *, rtol: float = 1e-6, atol: float = 1e-6) -> ContractResult:
    """Build ``layer_cls(**init_kwargs)``, call it on ``input_data`` and check the contract.

    ``input_data`` is one array whose first axis is the batch;
    ``expected_output_shape`` the shape of the layer's output on it. The
    saving check wraps the layer in a one-layer functional model (a layer
    alone has no ``.keras`` file) and compares that model's outputs within
    ``rtol``/``atol`` (0, 0: bit-exact).
    """
    layer = layer_cls(**init_kwargs)
    name = f"{layer_cls.__name__}({', '.join(f'{k}={v!r}' for k, v in init_kwargs.items())})"
    output = _to_numpy(layer(input_data))
    real_shapes = _shapes(output)

    clone = assert_config_round_trip(layer)

    inputs = keras.Input(shape=tuple(np.shape(input_data))[1:], dtype=str(np.asarray(input_data).dtype))
    symbolic = layer(inputs)
    _check_shapes(layer, input_data, real_shapes, symbolic, expected_output_shape, name)

    wrapper = keras.Model(inputs, symbolic, name=f"{layer.name}_wrapper")
    loaded, path = _check_saving(wrapper, input_data, output, tmp_path, rtol, atol, layer.name)
    reloaded_layer = loaded.layers[-1]
    assert type(reloaded_layer) is layer_cls and \
        _plain(reloaded_layer.get_config()) == _plain(layer.get_config()), \
        f"{name}: the layer read back from {path.name} differs"
    return ContractResult(layer, output, clone, loaded, path)


def run_model_contract(model: keras.Model, input_data, tmp_path: Path, expected_output_shape=None, *,
                       rtol: float = 1e-6, atol: float = 1e-6) -> ContractResult:
    """Check the contract of a built functional ``model`` on ``input_data`` (one array, batch first).

    ``expected_output_shape``: the shape of the model's output on the data,
    a tuple, or a dict/list of tuples for a model with several outputs.
    Outputs are taken with ``training=False``; the reloaded model must match
    them within ``rtol``/``atol`` (0, 0: bit-exact). Besides
    ``compute_output_shape`` and a call on a new ``keras.Input``, the model's
    own symbolic ``outputs`` must agree with the real output's shape. The
    ``.keras`` file is ``tmp_path / f"{model.name}.keras"``.
    """
    output = _to_numpy(model(input_data, training=False))
    real_shapes = _shapes(output)
    name = model.name

    clone = assert_config_round_trip(model, by_registered_name=False)  # load_model does that lookup

    inputs = keras.Input(shape=tuple(np.shape(input_data))[1:], dtype=str(np.asarray(input_data).dtype))
    _check_shapes(model, input_data, real_shapes, model(inputs), expected_output_shape, name)
    assert _shapes(model.output) == _unknown_batch(real_shapes), \
        f"{name}: the model's symbolic outputs disagree with the real output"

    loaded, path = _check_saving(model, input_data, output, tmp_path, rtol, atol, name)
    return ContractResult(model, output, clone, loaded, path)
