"""TensorBoard's logs are a view of a run: their failure warns once and training goes on."""
import warnings

import keras
import numpy as np

from csa_keras.training.callbacks import OptionalTensorBoard


def _fit(callback, epochs=3):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, y = np.random.default_rng(0).random((16, 4), np.float32), np.arange(16) % 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(x, y, epochs=epochs, validation_data=(x, y), verbose=0, callbacks=[callback])
    return history, [w for w in caught if "TensorBoard" in str(w.message)]


def test_an_unwritable_log_folder_warns_once_and_training_goes_on(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    log_dir = tmp_path / "file" / "tensorboard"
    history, warned = _fit(OptionalTensorBoard(str(log_dir), write_graph=False, profile_batch=0))
    assert len(history.history["loss"]) == 3
    assert len(warned) == 1 and str(log_dir) in str(warned[0].message)
    assert "training goes on without them" in str(warned[0].message)


def test_a_failure_mid_run_warns_once_and_training_goes_on(tmp_path, monkeypatch):
    def full_disk(self, epoch, logs=None):
        if epoch >= 1:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(keras.callbacks.TensorBoard, "on_epoch_end", full_disk)
    history, warned = _fit(OptionalTensorBoard(str(tmp_path / "tb"), write_graph=False, profile_batch=0), 4)
    assert len(history.history["loss"]) == 4
    assert len(warned) == 1 and "No space left on device" in str(warned[0].message)


def test_a_working_log_folder_is_written(tmp_path):
    _, warned = _fit(OptionalTensorBoard(str(tmp_path / "tb"), write_graph=False, profile_batch=0), 1)
    assert not warned and any((tmp_path / "tb").rglob("events.out.tfevents.*"))
