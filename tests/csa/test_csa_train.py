"""``python -m csa_keras.train``: the run directory contract, protocols, strategies, bad arguments."""
import csv
import json
import subprocess
import sys
import textwrap

import commands
import pytest
from commands import run_module

RUN_FILES = [
    "config.json", "autoencoder.keras", "classifier.keras", "metrics.json", "report.md",
    "history.csv", "confusion_matrix.png", "curves.png", "reconstructions.png", "gradcam.png",
    "splits.json",
]
METRIC_KEYS = [
    "task", "dataset", "protocol", "class_names", "n_train", "n_test", "accuracy",
    "balanced_accuracy", "precision_macro", "recall_macro", "f1_macro", "per_class_accuracy",
    "confusion_matrix", "psnr_db", "reconstruction_mse", "skipped",
]


def run_cli(*args, timeout=600):
    return run_module("csa_keras.train", *args, timeout=timeout)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    return commands.smoke_run("csa_keras.train", tmp_path_factory.mktemp("smoke") / "run")


def test_smoke_run_writes_every_artifact(smoke_run):
    out, result = smoke_run
    for name in RUN_FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert not list(out.glob(".*partial*")), "temporary files left behind"
    for phase in ("pretrain", "finetune"):
        assert list((out / "tensorboard" / phase).rglob("events.out.tfevents.*")), phase
    card = (out / "MODEL_CARD.md").read_text()
    assert "## Intended use" in card and "built-in synthetic faces" in card
    assert "Holdout leaks" not in (out / "report.md").read_text()  # synthetic faces do not leak
    assert "run directory" in result.stdout


def test_smoke_metrics_json_follows_the_contract(smoke_run):
    out, _ = smoke_run
    metrics = json.loads((out / "metrics.json").read_text())
    for key in METRIC_KEYS:
        assert key in metrics, key
    assert metrics["task"] == "csa"
    assert metrics["protocol"] == "holdout"
    k = len(metrics["class_names"])
    cm = metrics["confusion_matrix"]
    assert len(cm) == k and all(len(row) == k for row in cm)
    assert sum(map(sum, cm)) == metrics["n_test"]
    assert 0.0 <= metrics["accuracy"] <= 1.0
    assert set(metrics["per_class_accuracy"]) == set(metrics["class_names"])
    assert metrics["psnr_db"] > 0


def test_smoke_config_and_history(smoke_run):
    out, _ = smoke_run
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["preset"] == "smoke"
    assert config["config"]["seed"] == 0
    assert "tensorflow" in config["versions"] and "keras" in config["versions"]
    with (out / "history.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {row["phase"] for row in rows} == {"pretrain", "finetune"}
    assert "loss" in rows[0] and "val_loss" in rows[0]
    report = (out / "report.md").read_text()
    for figure in ("confusion_matrix.png", "curves.png", "reconstructions.png", "gradcam.png"):
        assert f"]({figure})" in report
    assert "70.06" in report  # the note on the paper's PSNR


def test_saved_classifier_reloads_and_predicts(smoke_run):
    import keras
    import numpy as np

    out, _ = smoke_run
    classifier = keras.models.load_model(out / "classifier.keras")
    metrics = json.loads((out / "metrics.json").read_text())
    probabilities = classifier.predict(np.zeros((2, 48, 48, 1), "float32"), verbose=0)
    assert probabilities.shape == (2, len(metrics["class_names"]))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_subject_kfold_runs_every_fold(tmp_path):
    out = tmp_path / "kfold"
    result = run_cli("--recipe", "smoke", "--protocol", "subject-kfold", "--folds", "2",
                     "--output", str(out), "--quiet", "--no-gradcam")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["folds"]) == 2
    assert "accuracy_std" in metrics
    assert sum(fold["n_test"] for fold in metrics["folds"]) == metrics["n_test"]
    assert sum(map(sum, metrics["confusion_matrix"])) == metrics["n_test"]
    for fold in ("fold01", "fold02"):
        assert (out / fold / "classifier.keras").is_file()
    assert (out / "classifier.keras").is_file()
    with (out / "history.csv").open() as handle:
        phases = {row["phase"] for row in csv.DictReader(handle)}
    assert phases == {f"fold{i}/{p}" for i in (1, 2) for p in ("pretrain", "finetune")}


@pytest.mark.parametrize("args, message", [
    (["--recipe", "nope"], "invalid choice"),
    (["--folds", "1"], "--folds"),
    (["--batch-size", "0"], "--batch-size"),
    (["--data", "/no/such/folder"], "does not exist"),
    (["--reader-option", "classes"], "KEY=VALUE"),
])
def test_bad_arguments_exit_with_one_line(args, message):
    result = run_cli(*args, timeout=120)
    assert result.returncode != 0
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert message in lines[-1]
    assert "Traceback" not in result.stderr


def test_output_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "a_file"
    target.write_text("x")
    result = run_cli("--recipe", "smoke", "--output", str(target), timeout=120)
    assert result.returncode == 2
    assert "not a folder" in result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr


def test_fit_under_mirrored_strategy_on_two_logical_cpus(tmp_path):
    """One real fit under MirroredStrategy with two replicas (logical CPU devices)."""
    script = textwrap.dedent(f"""
        import json, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from csa_keras.csa.config import preset
        from csa_keras.csa.training import run_csa
        config = preset("smoke").replace(strategy="mirrored", gradcam=False)
        metrics = run_csa(config, output={str(tmp_path / "mirrored")!r}, verbose=0)
        run = json.load(open({str(tmp_path / "mirrored" / "config.json")!r}))["run"]
        print(json.dumps({{"replicas": run["strategy"]["replicas"],
                          "accuracy": metrics["accuracy"]}}))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    assert 0.0 <= report["accuracy"] <= 1.0


def test_saved_autoencoder_is_the_one_the_psnr_was_measured_on(smoke_run):
    """``autoencoder.keras`` is saved after pretraining, before fine-tuning moves the encoder."""
    import keras
    import numpy as np

    from csa_keras.csa.config import preset
    from csa_keras.data.synthetic import make_synthetic_dataset
    from csa_keras.evaluation.metrics import reconstruction_metrics

    out, _ = smoke_run
    config = preset("smoke")
    data = make_synthetic_dataset(seed=config.seed, n_subjects=config.synthetic_subjects,
                                  images_per_class=config.synthetic_images_per_class)
    test = json.loads((out / "splits.json").read_text())["holdout"]["test"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(test) == metrics["n_test"]
    x = data.subset(test).scaled()
    autoencoder = keras.models.load_model(out / "autoencoder.keras")
    measured = reconstruction_metrics(x, autoencoder.predict(x, verbose=0))
    np.testing.assert_allclose(measured["psnr_db"], metrics["psnr_db"], rtol=1e-4)
