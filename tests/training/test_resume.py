"""Kill and resume: a training process killed with SIGKILL goes on with ``--resume``.

Each test starts a real training process, waits until the phase it wants
to interrupt has logged an epoch, kills it with SIGKILL (no clean-up code
runs), then resumes the run and checks that it finishes with every epoch
of every phase, a complete run directory and no training state left.
"""
import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from csa_keras.training.callbacks import TrainingPhase

CSA_FILES = ["config.json", "autoencoder.keras", "classifier.keras", "metrics.json", "report.md",
             "history.csv", "confusion_matrix.png", "curves.png", "reconstructions.png",
             "splits.json"]


def logged_epochs(path: Path) -> int:
    try:
        with path.open(newline="") as handle:
            return sum(1 for _ in csv.DictReader(handle))
    except (OSError, csv.Error):
        return 0


def kill_after(command, log: Path, epochs: int, timeout: float = 300) -> dict:
    """Run ``command``, SIGKILL it once ``log`` holds ``epochs`` rows; what the kill left."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    deadline = time.monotonic() + timeout
    try:
        while logged_epochs(log) < epochs:
            if process.poll() is not None:
                pytest.fail(f"training ended before the kill: {process.stderr.read()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("no epoch logged in time")
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return {"logged": logged_epochs(log),
            "backed_up": TrainingPhase(log.parent, "loss", resume=True).completed_epochs(),
            "returncode": process.returncode}


def history_rows(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_killed_csa_run_resumes_from_its_last_epoch(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "csa_keras.train", "--recipe", "smoke",
               "--pretrain-epochs", "2", "--finetune-epochs", "4", "--no-gradcam", "--quiet",
               "--output", str(out)]
    log = out / ".backup" / "split" / "finetune" / "history.csv"
    killed = kill_after(command, log, epochs=2)
    assert killed["returncode"] == -signal.SIGKILL
    assert (out / "autoencoder.keras").is_file() and not (out / "metrics.json").exists()
    assert not list(out.glob("*.partial*"))
    lost = killed["logged"] - killed["backed_up"]
    print(f"CSA: killed after {killed['logged']} fine-tuning epochs logged, "
          f"{killed['backed_up']} backed up: {lost} completed epoch(s) lost")
    assert 0 <= lost <= 1

    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True,
                             timeout=600, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for name in CSA_FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert not (out / ".backup").exists() and not list(out.glob(".*partial*"))
    rows = history_rows(out / "history.csv")
    assert [(r["phase"], r["epoch"]) for r in rows] == (
        [("pretrain", str(e)) for e in (1, 2)] + [("finetune", str(e)) for e in range(1, 5)])
    assert all(r["val_loss"] for r in rows)
    metrics = json.loads((out / "metrics.json").read_text())
    assert sum(map(sum, metrics["confusion_matrix"])) == metrics["n_test"]


def test_resume_returns_a_finished_run_and_refuses_other_settings(tmp_path):
    from csa_keras.csa.config import preset
    from csa_keras.csa.training import run_csa
    from csa_keras.training.config import config_json

    out = tmp_path / "run"
    out.mkdir()
    config = preset("smoke").replace(gradcam=False)
    (out / "config.json").write_text(config_json(config))
    (out / "metrics.json").write_text(json.dumps({"task": "csa", "accuracy": 0.5}))
    lines = []
    assert run_csa(config, output=out, verbose=0, log=lines.append, resume=True)["accuracy"] == 0.5
    assert "finished run" in lines[0]
    with pytest.raises(ValueError) as error:
        run_csa(config.replace(finetune_epochs=3), output=out, verbose=0, resume=True)
    message = str(error.value)
    assert "resume=True" in message and "finetune_epochs" in message and "\n" not in message


VRN_SCRIPT = textwrap.dedent("""
    import sys
    from csa_keras.data.synthetic import make_synthetic_dataset
    from voting_resnet.config import preset
    from voting_resnet.training import run_vrn
    data = make_synthetic_dataset(seed=0, n_subjects=4, images_per_class=1, size=16, colour=True)
    config = preset("smoke").replace(split_after=(0, 3), epochs=2, gradcam=False, test_size=0.25,
                                     retrain="never")
    run_vrn(config, output=sys.argv[1], dataset=data, verbose=0, log=lambda line: None,
            resume=sys.argv[2] == "resume")
""")


@pytest.mark.slow
def test_killed_voting_resnet_run_resumes_without_redoing_a_finished_split_point(tmp_path):
    """Killed in the second of two split points: the first is reloaded, not trained again.

    16x16 faces keep the ResNet-18 epochs short, but its backups are full
    size (weights and Adam moments, about 130 MB each) and two processes
    trace it: about 90 s on two CPU cores, hence slow.
    """
    out = tmp_path / "run"
    script = tmp_path / "train.py"
    script.write_text(VRN_SCRIPT)
    log = out / ".backup" / "split" / "split3" / "history.csv"
    killed = kill_after([sys.executable, str(script), str(out), "fresh"], log, epochs=1)
    lost = killed["logged"] - killed["backed_up"]
    print(f"VRN: killed after {killed['logged']} epochs of split 3 logged, "
          f"{killed['backed_up']} backed up: {lost} completed epoch(s) lost")
    assert 0 <= lost <= 1
    split0 = out / ".backup" / "split" / "split0"
    assert (split0 / "done.weights.h5").is_file()
    split0_times = [r["epoch_seconds"] for r in history_rows(split0 / "history.csv")]

    resumed = subprocess.run([sys.executable, str(script), str(out), "resume"],
                             capture_output=True, text=True, timeout=600,
                             env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not (out / ".backup").exists()
    for name in ("config.json", "model.keras", "metrics.json", "report.md", "history.csv",
                 "split0/model.keras", "split3/model.keras"):
        assert (out / name).is_file(), name
    rows = history_rows(out / "history.csv")
    assert [(r["phase"], r["epoch"]) for r in rows] == [
        (p, str(e)) for p in ("split0", "split3") for e in (1, 2)]
    assert [r["epoch_seconds"] for r in rows if r["phase"] == "split0"] == split0_times


def tiny_model():
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="dense")])
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    return model


def tiny_data():
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 4)).astype("float32"), rng.normal(size=(16, 3)).astype("float32")
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(8)


def test_a_phase_killed_between_its_last_epoch_and_its_result_trains_no_further(tmp_path):
    import numpy as np

    from csa_keras.training import loop
    from csa_keras.training.strategy import get_strategy

    strategy = get_strategy("one-device")
    model = tiny_model()
    phase = TrainingPhase(tmp_path / "phase", "loss")
    model.fit(tiny_data(), epochs=3, callbacks=phase.callbacks(), verbose=0)  # no finish(): killed
    best = int(np.argmin(phase.history()["loss"]))
    again = tiny_model()
    history = loop.train_phase(again, TrainingPhase(tmp_path / "phase", "loss", resume=True),
                               tiny_data(), epochs=3, strategy=strategy, verbose=0)
    assert history == phase.history() and len(history["loss"]) == 3
    assert int(again.optimizer.iterations) == 2 * (best + 1)  # the best epoch's state
    assert (tmp_path / "phase" / "done.weights.h5").is_file()
    assert not (tmp_path / "phase" / "backup").exists()


def test_the_log_row_of_an_epoch_backed_up_just_before_the_kill_is_rewritten(tmp_path):
    from csa_keras.training import loop
    from csa_keras.training.strategy import get_strategy

    model = tiny_model()
    phase = TrainingPhase(tmp_path / "phase", "loss")
    model.fit(tiny_data(), epochs=2, callbacks=phase.callbacks(), verbose=0)
    full = phase.history()
    text = phase.log_path.read_text()
    for damaged in (text[: text.rindex("\n", 0, -1) + 1], text[:-12]):  # row missing, row cut
        phase.log_path.write_text(damaged)
        resumed = TrainingPhase(tmp_path / "phase", "loss", resume=True)
        resumed.callbacks()
        assert resumed.history() == full
    history = loop.train_phase(tiny_model(), TrainingPhase(tmp_path / "phase", "loss", resume=True),
                               tiny_data(), epochs=4, strategy=get_strategy("one-device"),
                               verbose=0)
    assert len(history["loss"]) == 4
    assert history["loss"][:2] == full["loss"] and history["epoch_seconds"][:2] == full["epoch_seconds"]


def test_a_resumed_comparison_may_add_rows_but_not_drop_them_or_change_the_recipe(tmp_path):
    from csa_keras.training import rundir
    from csa_keras.training.config import config_json
    from voting_resnet.comparison import RECIPES

    config = RECIPES["smoke"].replace(scratch_split_after=(3,))
    (tmp_path / "config.json").write_text(config_json(config))
    adds = type(config).RESUME_ADDS
    more = config.replace(scratch_split_after=(3, 2), split_after=(1, 2, 3))
    rundir.check_resume(tmp_path, more.to_dict(), adds)
    for changed, name in ((config.replace(scratch_split_after=(2,)), "scratch_split_after"),
                          (more.replace(epochs=config.epochs + 1), "epochs")):
        with pytest.raises(ValueError, match=f"resume=True: .*{name}") as error:
            rundir.check_resume(tmp_path, changed.to_dict(), adds)
        assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="scratch_split_after"):
        rundir.check_resume(tmp_path, more.to_dict())
