"""The per-epoch backup: never torn, the previous copy kept until the new one is whole."""
import json
import os

import keras
import numpy as np
import pytest

from csa_keras.training.backup import EpochBackup, backed_up_epochs
from csa_keras.training.callbacks import TrainingPhase


def tiny_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="dense")])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    return model


def tiny_data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(16, 4)).astype("float32"), rng.normal(size=(16, 3)).astype("float32")


def fit(model, folder, epochs, **kwargs):
    x, y = tiny_data()
    return model.fit(x, y, batch_size=8, epochs=epochs, verbose=0,
                     callbacks=[EpochBackup(folder), *kwargs.pop("callbacks", [])], **kwargs)


def test_each_epoch_is_one_complete_folder_and_only_the_newest_is_kept(tmp_path):
    model = tiny_model()
    fit(model, tmp_path / "backup", epochs=3)
    assert sorted(p.name for p in (tmp_path / "backup").iterdir()) == ["epoch-3"]
    assert sorted(p.name for p in (tmp_path / "backup" / "epoch-3").iterdir()) == [
        "model.weights.h5", "state.json"]
    assert backed_up_epochs(tmp_path / "backup") == 3

    resumed = tiny_model()
    history = fit(resumed, tmp_path / "backup", epochs=5)
    assert len(history.history["loss"]) == 2  # epochs 4 and 5 only
    assert int(resumed.optimizer.iterations) == 5 * 2


def test_an_interrupted_save_leaves_the_previous_epoch_to_resume_from(tmp_path, monkeypatch):
    model = tiny_model()
    fit(model, tmp_path / "backup", epochs=2)
    weights = model.get_weights()

    def torn_save(path, *args, **kwargs):
        with open(path, "wb") as handle:
            handle.write(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)  # a write cut short by Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(model, "save_weights", torn_save)
    with pytest.raises(KeyboardInterrupt):
        fit(model, tmp_path / "backup", epochs=3)
    assert (tmp_path / "backup" / "epoch-2").is_dir()
    assert backed_up_epochs(tmp_path / "backup") == 2

    resumed = tiny_model()
    callback = EpochBackup(tmp_path / "backup")
    callback.set_model(resumed)
    callback.on_train_begin()
    assert resumed._initial_epoch == 2
    for restored, saved in zip(resumed.get_weights(), weights):
        np.testing.assert_array_equal(restored, saved)
    callback.save(3)
    assert sorted(p.name for p in (tmp_path / "backup").iterdir()) == ["epoch-3"]


def test_a_newest_copy_that_does_not_load_falls_back_to_the_one_before(tmp_path):
    model = tiny_model()
    callback = EpochBackup(tmp_path / "backup")
    callback.set_model(model)
    callback.save(1)
    os.rename(tmp_path / "backup" / "epoch-1", tmp_path / "keep")
    callback.save(2)
    os.rename(tmp_path / "keep", tmp_path / "backup" / "epoch-1")
    weights = tmp_path / "backup" / "epoch-2" / "model.weights.h5"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])

    resumed = tiny_model()
    restore = EpochBackup(tmp_path / "backup")
    restore.set_model(resumed)
    restore.on_train_begin()
    assert resumed._initial_epoch == 1


def test_a_backup_that_cannot_be_restored_is_one_line_naming_the_folder(tmp_path):
    folder = tmp_path / "backup" / "epoch-4"
    folder.mkdir(parents=True)
    (folder / "model.weights.h5").write_bytes(b"not hdf5")
    (folder / "state.json").write_text(json.dumps({"epoch": 4}))
    restore = EpochBackup(tmp_path / "backup")
    restore.set_model(tiny_model())
    with pytest.raises(ValueError) as error:
        restore.on_train_begin()
    assert "\n" not in str(error.value) and str(tmp_path / "backup") in str(error.value)


def test_keras_backup_and_restore_state_still_resumes(tmp_path):
    """Runs started when the phase used Keras's ``BackupAndRestore`` continue."""
    model = tiny_model()
    x, y = tiny_data()
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[
        keras.callbacks.BackupAndRestore(str(tmp_path / "backup"), double_checkpoint=True,
                                         delete_checkpoint=False)])
    phase = TrainingPhase(tmp_path, "loss", resume=True)
    assert phase.completed_epochs() == 2
    resumed = tiny_model()
    history = fit(resumed, tmp_path / "backup", epochs=4)
    assert len(history.history["loss"]) == 2
    assert sorted(p.name for p in (tmp_path / "backup").iterdir()) == ["epoch-4"]
