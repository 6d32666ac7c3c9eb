"""The precision setting, the epoch chosen on validation accuracy with ties to the loss, TensorBoard."""
import keras
import numpy as np
import pytest

from csa_keras.training import strategy
from csa_keras.training.callbacks import SelectionScore, TrainingPhase
from csa_keras.training.loop import train_phase


@pytest.mark.parametrize("flags, expected", [
    ({"avx512f", "avx512_bf16"}, "mixed_bfloat16"),
    ({"amx_bf16", "amx_tile"}, "mixed_bfloat16"),
    ({"avx2", "fma"}, "float32"),
    (set(), "float32"),
])
def test_auto_precision_follows_the_cpu_flags(monkeypatch, flags, expected):
    monkeypatch.setattr(strategy, "cpu_flags", lambda: flags)
    monkeypatch.setattr(strategy.tf.config, "list_logical_devices", lambda kind: [])
    assert strategy.resolve_precision("auto") == expected


def test_explicit_precision_is_kept_and_unknown_refused():
    assert strategy.resolve_precision("mixed_float16") == "mixed_float16"
    with pytest.raises(ValueError, match="precision must be one of .*Received: precision='half'"):
        strategy.resolve_precision("half")


def test_set_precision_sets_the_global_policy():
    try:
        assert strategy.set_precision("mixed_bfloat16") == "mixed_bfloat16"
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_selection_score_prefers_accuracy_then_the_lower_loss():
    score = SelectionScore("sel", "val_acc", "val_loss")
    epochs = [{"val_acc": 0.50, "val_loss": 0.9}, {"val_acc": 0.60, "val_loss": 1.4},
              {"val_acc": 0.60, "val_loss": 1.1}, {"val_acc": 0.59, "val_loss": 0.2}]
    for logs in epochs:
        score.on_epoch_end(0, logs)
    assert int(np.argmax([logs["sel"] for logs in epochs])) == 2


def _tiny():
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(2, activation="softmax")(inputs)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


class _Script(keras.callbacks.Callback):
    """Replaces the validation logs of each epoch with scripted values."""

    def __init__(self, values):
        super().__init__()
        self.values = values

    def on_epoch_end(self, epoch, logs=None):
        logs.update(self.values[epoch])


def test_a_max_phase_keeps_the_epoch_of_the_best_accuracy(tmp_path):
    x = np.zeros((8, 4), "float32")
    y = np.zeros(8, "int64")
    values = [{"val_accuracy": 0.4, "val_loss": 1.0}, {"val_accuracy": 0.7, "val_loss": 2.0},
              {"val_accuracy": 0.7, "val_loss": 1.5}, {"val_accuracy": 0.6, "val_loss": 0.1}]
    phase = TrainingPhase(tmp_path / "phase", "val_selection", mode="max",
                          selection=SelectionScore("val_selection", "val_accuracy", "val_loss"))
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    train_phase(_tiny(), phase, data, epochs=4, validation_data=data, callbacks=[_Script(values)],
                strategy=tf.distribute.get_strategy(), verbose=0)
    assert phase.best_epoch() == 3
    with pytest.raises(ValueError, match="mode must be one of min, max"):
        TrainingPhase(tmp_path / "other", "loss", mode="best")


def _scalars(folder):
    """``{tag: [value per step]}`` of the TensorBoard event files under ``folder``."""
    import tensorflow as tf

    values = {}
    for path in sorted(folder.rglob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                tensor = tf.make_ndarray(value.tensor) if value.HasField("tensor") else value.simple_value
                values.setdefault((path.parent.name, value.tag), []).append(float(tensor))
    return values


def test_a_phase_writes_its_epochs_to_tensorboard(tmp_path):
    import tensorflow as tf

    x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    y = np.arange(8) % 2
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    model = _tiny()
    model.optimizer.learning_rate.assign(0.1)
    phase = TrainingPhase(tmp_path / "phase", "val_loss", tensorboard=tmp_path / "tb")
    history = train_phase(model, phase, data, epochs=3, validation_data=data,
                          strategy=tf.distribute.get_strategy(), verbose=0)
    scalars = _scalars(tmp_path / "tb")
    assert scalars[("train", "epoch_loss")] == pytest.approx(history["loss"], rel=1e-5)
    assert scalars[("validation", "epoch_loss")] == pytest.approx(history["val_loss"], rel=1e-5)
