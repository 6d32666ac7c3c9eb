"""``python -m voting_resnet.train`` and its training pieces.

The CLI runs use the ``smoke`` preset (42 synthetic 48x48 faces, one epoch);
the in-process runs give :func:`run_vrn` 16x16 synthetic faces, where a
whole ResNet-18 fit takes a second or two, to check the protocol logic
(split-point comparison, retraining, folds) without paying for 48x48.
"""
import csv
import json
import math
import subprocess
import sys

import commands
import keras
import numpy as np
import pytest
from commands import run_module

from csa_keras.data.synthetic import make_synthetic_dataset
from csa_keras.training.strategy import get_strategy
from voting_resnet.config import preset
from voting_resnet.layers.voting import hard_vote, soft_vote
from voting_resnet.models.resnet18 import build_voting_resnet
from voting_resnet.training import (
    balanced_dataset,
    build_augmentation,
    fit_model,
    learning_rate,
    run_vrn,
    transfer_weights,
)

RUN_FILES = ["config.json", "model.keras", "metrics.json", "report.md", "history.csv",
             "confusion_matrix.png", "curves.png", "gradcam.png"]
METRIC_KEYS = [
    "task", "dataset", "protocol", "class_names", "n_train", "n_test", "accuracy",
    "balanced_accuracy", "precision_macro", "recall_macro", "f1_macro", "per_class_accuracy",
    "confusion_matrix", "accuracy_soft", "accuracy_hard", "skipped",
]


def run_cli(*args, timeout=900):
    return run_module("voting_resnet.train", *args, timeout=timeout)


def tiny_faces(size=16, n_subjects=4):
    """Synthetic colour faces at ``size`` pixels: 7 classes, one image each per subject."""
    return make_synthetic_dataset(seed=0, n_subjects=n_subjects, images_per_class=1,
                                  size=size, colour=True)


def quiet(_line):
    pass


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    return commands.smoke_run("voting_resnet.train", tmp_path_factory.mktemp("vrn_smoke") / "run")


def test_smoke_cli_writes_the_run_directory(smoke_run):
    out, result = smoke_run
    for name in RUN_FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert [p.name for p in out.glob(".*")] == [".lock"], "temporary or checkpoint files left behind"
    assert "run directory" in result.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    for key in METRIC_KEYS:
        assert key in metrics, key
    assert metrics["task"] == "voting_resnet"
    assert metrics["dataset"] == "synthetic"
    assert metrics["protocol"] == "holdout"  # synthetic data has no predefined split
    k = len(metrics["class_names"])
    cm = np.asarray(metrics["confusion_matrix"])
    assert cm.shape == (k, k)
    assert cm.sum() == metrics["n_test"] == 9
    assert metrics["n_train"] == 26 and metrics["n_val"] == 7
    assert metrics["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    assert metrics["accuracy"] == metrics["accuracy_soft"]  # soft voting is the default
    for key in ("accuracy_soft", "accuracy_hard", "balanced_accuracy", "f1_macro"):
        assert 0.0 <= metrics[key] <= 1.0
    assert set(metrics["per_class_accuracy"]) == set(metrics["class_names"])
    assert metrics["split_after"] == 3 and metrics["retrained_on_train_val"] is False
    assert metrics["skipped"] == {}

    config = json.loads((out / "config.json").read_text())
    assert config["config"]["preset"] == "smoke" and config["config"]["seed"] == 0
    assert config["config"]["split_after"] == [3]
    assert "tensorflow" in config["versions"] and "keras" in config["versions"]
    with (out / "history.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1 and rows[0]["phase"] == "split3"
    for key in ("loss", "vote_accuracy", "val_loss", "val_vote_accuracy", "learning_rate"):
        assert math.isfinite(float(rows[0][key])), key
    report = (out / "report.md").read_text()
    for figure in ("confusion_matrix.png", "curves.png", "gradcam.png"):
        assert f"]({figure})" in report
    assert "| module 3 |" in report


def test_smoke_model_reloads_and_predicts_deterministically(smoke_run):
    out, _ = smoke_run
    model = keras.models.load_model(out / "model.keras")
    assert model.get_layer("vote").mode == "soft"
    assert model.get_layer("crop_and_mirror").num_views == 10
    faces = make_synthetic_dataset(seed=3, n_subjects=1, images_per_class=1, colour=True)
    first = model.predict(faces.scaled(), verbose=0)
    second = model.predict(faces.scaled(), verbose=0)
    assert first["crop_logits"].shape == (7, 10, 7)
    np.testing.assert_array_equal(first["crop_logits"], second["crop_logits"])
    np.testing.assert_array_equal(first["vote"], second["vote"])
    np.testing.assert_allclose(first["vote"], soft_vote(first["crop_logits"]), atol=1e-5)


@pytest.fixture(scope="module")
def two_split_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("vrn_splits") / "run"
    config = preset("smoke").replace(split_after=(0, 3), epochs=1, voting="hard",
                                     test_size=0.25)  # 28 faces: 7 test, 7 val, 14 train
    metrics = run_vrn(config, output=out, dataset=tiny_faces(), verbose=0, log=quiet)
    return out, metrics


@pytest.mark.heavy
def test_several_split_points_compare_on_val_and_retrain_the_best(two_split_run):
    out, metrics = two_split_run
    rows = metrics["comparison"]
    assert [row["split_after"] for row in rows] == [0, 3]
    for row in rows:
        for key in ("val_accuracy_soft", "val_accuracy_hard",
                    "test_accuracy_soft", "test_accuracy_hard"):
            assert 0.0 <= row[key] <= 1.0, key
        assert row["seconds_per_epoch"] > 0
    best = max(rows, key=lambda row: row["val_accuracy_hard"])  # first of equals wins
    assert metrics["split_after"] == best["split_after"]
    assert metrics["selected_on"] == "val_hard_vote"
    assert metrics["retrained_on_train_val"] is True
    assert (metrics["n_train"], metrics["n_val"], metrics["n_test"]) == (14 + 7, 7, 7)
    assert metrics["accuracy"] == metrics["accuracy_hard"]
    for s in (0, 3):
        split_model = keras.models.load_model(out / f"split{s}" / "model.keras")
        assert split_model.name == f"voting_resnet18_split{s}"
        assert (out / f"split{s}" / "history.csv").is_file()
    final = keras.models.load_model(out / "model.keras")
    assert final.name == f"voting_resnet18_split{metrics['split_after']}"
    assert final.get_layer("vote").mode == "hard"
    with (out / "history.csv").open() as handle:
        phases = [row["phase"] for row in csv.DictReader(handle)]
    assert phases == ["split0", "split3", f"retrain_split{metrics['split_after']}"]
    assert json.loads((out / "metrics.json").read_text())["comparison"] == rows
    assert "| baseline |" in (out / "report.md").read_text()
    assert [p.name for p in out.rglob(".*")] == [".lock"], "temporary or checkpoint files left behind"


@pytest.mark.heavy
def test_reloaded_hard_voting_model_votes_like_numpy(two_split_run):
    out, _ = two_split_run
    model = keras.models.load_model(out / "split3" / "model.keras")
    faces = tiny_faces(n_subjects=2).scaled()
    outputs = model.predict(faces, verbose=0)
    np.testing.assert_allclose(outputs["vote"], hard_vote(outputs["crop_logits"]), atol=1e-5)


@pytest.mark.heavy
def test_subject_kfold_runs_and_pools_every_fold(tmp_path):
    config = preset("smoke").replace(split_after=(0,), protocol="subject-kfold", folds=2,
                                     gradcam=False)
    metrics = run_vrn(config, output=tmp_path / "run", dataset=tiny_faces(), verbose=0, log=quiet)
    assert [fold["fold"] for fold in metrics["folds"]] == ["fold1", "fold2"]
    assert metrics["n_test"] == 28 == sum(fold["n_test"] for fold in metrics["folds"])
    assert np.asarray(metrics["confusion_matrix"]).sum() == 28
    assert metrics["accuracy_soft"] == pytest.approx(
        np.mean([fold["accuracy_soft"] for fold in metrics["folds"]]))
    assert "accuracy_soft_std" in metrics
    for fold in ("fold01", "fold02"):
        assert (tmp_path / "run" / fold / "model.keras").is_file()
    assert (tmp_path / "run" / "model.keras").is_file()


def test_several_split_points_without_validation_are_refused(tmp_path):
    config = preset("smoke").replace(split_after=(0, 1), val_fraction=0.0, test_size=0.25)
    with pytest.raises(ValueError, match="needs a validation set"):
        run_vrn(config, output=tmp_path / "run", dataset=tiny_faces(), verbose=0, log=quiet)
    assert not (tmp_path / "run" / "config.json").exists()


def test_augmentation_changes_training_batches_only():
    augment = build_augmentation(channels=3, seed=0)
    x = np.random.default_rng(0).uniform(size=(4, 48, 48, 3)).astype("float32")
    trained = keras.ops.convert_to_numpy(augment(x, training=True))
    assert trained.shape == x.shape
    assert np.abs(trained - x).mean() > 1e-3
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(augment(x, training=False)), x)
    assert augment.get_layer("colour_jitter").get_config()["saturation_factor"] is not None
    assert build_augmentation(3, flip=True).layers[0].name == "flip"
    assert "flip" not in [layer.name for layer in augment.layers]
    grey = build_augmentation(channels=1, seed=0)
    assert grey.get_layer("colour_jitter").get_config()["saturation_factor"] is None
    assert grey(x[..., :1], training=True).shape == (4, 48, 48, 1)


def test_balanced_dataset_equalises_classes_and_keeps_pairs():
    labels = np.array([0] * 90 + [1] * 10)
    images = np.zeros((100, 4, 4, 1), np.uint8)
    images[labels == 1] = 255  # each image tells its class, to check pairs stay together
    ds, steps = balanced_dataset(images, labels, batch_size=10, seed=0)
    assert steps == 10
    seen = []
    for x, y in ds.take(steps):
        x, y = x.numpy(), y.numpy()
        np.testing.assert_array_equal(x[:, 0, 0, 0], y.astype(np.float32))
        seen.append(y)
    counts = np.bincount(np.concatenate(seen), minlength=2)
    assert counts.sum() == 100
    assert abs(int(counts[0]) - int(counts[1])) <= 20, counts  # 90/10 in the data


def test_learning_rate_decays_once_per_epoch(tmp_path):
    faces = tiny_faces(n_subjects=2)  # 14 faces: one batch an epoch
    config = preset("smoke").replace(epochs=3, lr=1e-3, lr_decay=0.5, batch_size=14)
    result = fit_model(config, 0, faces.images, faces.labels, 7, tmp_path, get_strategy("auto"),
                       verbose=0)
    np.testing.assert_allclose(result.history["learning_rate"], [1e-3, 5e-4, 2.5e-4], rtol=1e-6)
    best = int(np.argmin(result.history["loss"]))  # the checkpoint holds the optimizer's state too
    np.testing.assert_allclose(float(result.model.optimizer.learning_rate),
                               result.history["learning_rate"][best], rtol=1e-6)
    for key in ("loss", "vote_accuracy", "epoch_seconds"):
        assert len(result.history[key]) == 3, key
    assert list(tmp_path.iterdir()) == []  # checkpoint and CSV log cleaned up


def test_cosine_schedule_warms_up_then_falls_to_zero_on_adamw(tmp_path):
    faces = tiny_faces(n_subjects=2)  # 14 faces: one step an epoch
    config = preset("smoke").replace(epochs=3, lr=1e-3, batch_size=14, schedule="cosine",
                                     warmup_epochs=1.0, weight_decay=0.05, label_smoothing=0.1)
    result = fit_model(config, 0, faces.images, faces.labels, 7, tmp_path, get_strategy("auto"),
                       verbose=0)
    # 3 steps: step 0 warms up from lr / 25, then a cosine over the other 2 steps
    np.testing.assert_allclose(result.history["learning_rate"], [1e-3, 5e-4, 0.0], atol=1e-9)
    optimizer = result.model.optimizer
    assert isinstance(optimizer, keras.optimizers.AdamW) and optimizer.weight_decay == 0.05
    assert result.model.loss["crop_logits"].label_smoothing == 0.1


def test_learning_rate_schedules_step_by_step():
    schedule, _ = learning_rate(preset("smoke").replace(epochs=16, lr=2e-3, schedule="cosine",
                                                        warmup_epochs=1.0), 100, 16)
    values = [float(schedule(step)) for step in (0, 50, 100, 850, 1600)]
    np.testing.assert_allclose(values, [8e-5, 1.04e-3, 2e-3, 1e-3, 0.0], rtol=1e-5, atol=1e-9)
    rate, callback = learning_rate(preset("smoke").replace(lr=1e-3), 100, 4)
    assert rate == 1e-3 and isinstance(callback, keras.callbacks.LearningRateScheduler)


@pytest.mark.parametrize("change, message", [
    ({"schedule": "linear"}, "schedule must be one of"),
    ({"warmup_epochs": 1.0}, "warmup_epochs must lie in"),
    ({"label_smoothing": 1.0}, "label_smoothing must lie in"),
    ({"weight_decay": -1.0}, "weight_decay must be at least 0"),
])
def test_recipe_settings_are_checked(change, message):
    with pytest.raises(ValueError, match=message):
        preset("smoke").replace(**change).validate()


@pytest.fixture(scope="module")
def donors(tmp_path_factory):
    folder = tmp_path_factory.mktemp("donors")
    same = build_voting_resnet(7, (16, 16, 3), split_after=1)
    same.save(folder / "model.keras")
    other = build_voting_resnet(8, (16, 16, 3), split_after=0)
    other.save(folder / "eight.keras")
    return folder, same, other


def _weighted(model):
    return [layer for layer in model.layers if layer.weights]


def test_transfer_weights_from_another_split_point_copies_every_layer(donors):
    folder, donor, _ = donors
    model = build_voting_resnet(7, (16, 16, 3), split_after=3)
    report = transfer_weights(model, folder)  # a run directory holding model.keras
    assert report == {"layers_copied": len(_weighted(model)), "layers_skipped": 0}
    for layer in _weighted(model):
        for mine, theirs in zip(layer.get_weights(), donor.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(mine, theirs)


def test_transfer_weights_to_other_classes_keeps_the_new_head(donors):
    folder, _, donor = donors
    model = build_voting_resnet(7, (16, 16, 3), split_after=2)
    head = model.get_layer("logits").get_weights()
    report = transfer_weights(model, folder / "eight.keras")
    assert report == {"layers_copied": len(_weighted(model)) - 1, "layers_skipped": 1}
    for mine, before in zip(model.get_layer("logits").get_weights(), head):
        np.testing.assert_array_equal(mine, before)
    np.testing.assert_array_equal(model.get_layer("stack4_block2_conv2").get_weights()[0],
                                  donor.get_layer("stack4_block2_conv2").get_weights()[0])


def test_transfer_weights_rejects_a_file_that_is_no_model(tmp_path):
    bogus = tmp_path / "notes.keras"
    bogus.write_text("not a model")
    model = build_voting_resnet(7, (16, 16, 3), split_after=0)
    for source in (bogus, tmp_path / "missing"):
        with pytest.raises(ValueError) as error:
            transfer_weights(model, source)
        assert "init_from" in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("args, message", [
    (["--split-after", "5"], "--split-after"),
    (["--lr-decay", "0"], "--lr-decay"),
    (["--voting", "x"], "--voting"),
])
def test_bad_arguments_exit_with_one_line(tmp_path, args, message):
    result = run_cli("--recipe", "smoke", "--output", str(tmp_path / "run"), *args, timeout=120)
    assert result.returncode == 2
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert lines[-1].startswith("python -m voting_resnet.train: error:") and message in lines[-1]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_cli_two_split_points_at_48_pixels(tmp_path):
    """The paper's protocol through the CLI on 48x48 faces, baseline against module 2.

    About a minute of CPU time (module 2 crops cost 3.9 times the baseline's
    multiply-accumulates), hence slow; the fast test above covers the same
    logic on 16x16 faces.
    """
    out = tmp_path / "run"
    result = run_cli("--recipe", "smoke", "--output", str(out), "--split-after", "0", "2",
                     "--epochs", "1", "--no-gradcam", "--quiet")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert [row["split_after"] for row in metrics["comparison"]] == [0, 2]
    assert all("val_accuracy_hard" in row and "test_accuracy_soft" in row
               for row in metrics["comparison"])
    assert metrics["retrained_on_train_val"] is True
    assert (out / "split0" / "model.keras").is_file() and (out / "split2" / "model.keras").is_file()
    assert np.asarray(metrics["confusion_matrix"]).sum() == metrics["n_test"]


@pytest.mark.heavy
def test_fit_under_mirrored_strategy_on_two_logical_cpus(tmp_path):
    """One Voting ResNet run under MirroredStrategy with two replicas (logical CPUs).

    The test set (7 images at 16 pixels) and validation set are odd-sized,
    so the last batches would leave a replica empty without
    :func:`~csa_keras.training.pipeline.replica_batching`.
    """
    script = f"""
import json, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from csa_keras.data.synthetic import make_synthetic_dataset
from voting_resnet.config import preset
from voting_resnet.training import run_vrn
data = make_synthetic_dataset(seed=0, n_subjects=5, images_per_class=1, size=16, colour=True)
config = preset("smoke").replace(strategy="mirrored", gradcam=False, protocol="holdout",
                                 split_after=(0, 3), batch_size=8, test_size=0.2)
metrics = run_vrn(config, output={str(tmp_path / "run")!r}, dataset=data, verbose=0,
                  log=lambda line: None)
run = json.load(open({str(tmp_path / "run" / "config.json")!r}))["run"]
print(json.dumps({{"replicas": run["strategy"]["replicas"], "n_test": metrics["n_test"],
                  "matrix": metrics["confusion_matrix"]}}))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    assert report["n_test"] % 2 == 1
    assert np.asarray(report["matrix"]).sum() == report["n_test"]


@pytest.mark.heavy
def test_always_retrain_uses_the_epochs_selected_on_validation(tmp_path):
    """The paper's protocol (§3.3): the epoch is chosen on validation vote accuracy, then the
    model is trained again on train + validation for that many epochs."""
    config = preset("smoke").replace(epochs=2, retrain="always", gradcam=False, test_size=0.25)
    metrics = run_vrn(config, output=tmp_path / "run", dataset=tiny_faces(), verbose=0, log=quiet)
    assert metrics["retrained_on_train_val"] is True
    assert 1 <= metrics["selected_epoch"] <= 2
    assert metrics["retrain_epochs"] == metrics["selected_epoch"]
    split = next(iter(json.loads((tmp_path / "run" / "splits.json").read_text()).values()))
    assert metrics["n_train"] == len(split["train"]) + len(split["val"]) > len(split["train"])
    rows = list(csv.DictReader((tmp_path / "run" / "history.csv").open()))
    retrain = [r for r in rows if r["phase"] == "retrain_split3"]
    assert len(retrain) == metrics["retrain_epochs"]
    chosen = [r for r in rows if r["phase"] == "split3"]
    best = max(chosen, key=lambda r: (float(r["val_vote_accuracy"]), -float(r["val_loss"])))
    assert int(best["epoch"]) == metrics["selected_epoch"]


def test_a_split_point_given_twice_is_trained_once():
    assert preset("smoke").replace(split_after=(1, 1, 3)).split_after == (1, 3)
    with pytest.raises(ValueError, match="retrain must be one of never, several, always"):
        preset("smoke").replace(retrain="sometimes").validate()
    assert preset("paper").retrain == "always" and preset("smoke").retrain == "several"
