"""Interrupted runs, through the real training command: Ctrl-C at any instant, a kill, a full
disk and a second process on the same run directory each end in one line (or nothing, for
SIGKILL) and a run that ``--resume`` finishes with every epoch.

The run is the CSA's ``smoke`` preset with 1 pretraining and 3 fine-tuning epochs, so a
finished run's ``history.csv`` has 4 rows whatever happened before.
"""
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

EPOCHS = {"pretrain": 1, "finetune": 3}
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONFAULTHANDLER="1")
"""A crash of a command (a signal, not an exit) leaves its Python stack on stderr for the report."""


def train(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "csa_keras.train", "--recipe", "smoke", "--pretrain-epochs",
            str(EPOCHS["pretrain"]), "--finetune-epochs", str(EPOCHS["finetune"]), "--no-gradcam",
            "--quiet", "--output", str(out), *extra]


def start(command: list[str]) -> subprocess.Popen:
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ENV)


def rows(path: Path) -> int:
    try:
        with path.open(newline="") as handle:
            return sum(1 for _ in csv.DictReader(handle))
    except (OSError, csv.Error):
        return 0


def assert_finished(out: Path) -> None:
    """Every epoch of both phases in the history, the metrics written, no training state left."""
    with (out / "history.csv").open(newline="") as handle:
        logged = [(r["phase"], int(r["epoch"])) for r in csv.DictReader(handle)]
    assert logged == [(phase, e) for phase, n in EPOCHS.items() for e in range(1, n + 1)]
    metrics = json.loads((out / "metrics.json").read_text())
    assert sum(map(sum, metrics["confusion_matrix"])) == metrics["n_test"]
    assert not (out / ".backup").exists()
    assert not [p for p in out.rglob("*") if ".partial" in p.name]


def resume(out: Path) -> None:
    finished = subprocess.run(train(out, "--resume"), capture_output=True, text=True, timeout=900,
                              env=ENV)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert_finished(out)


def interrupt(out: Path, at, sig: int) -> subprocess.CompletedProcess:
    """Start the training, send ``sig`` once ``at()`` is true, and return how it ended."""
    process = start(train(out))
    deadline = time.monotonic() + 600
    try:
        while not at() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if process.poll() is None:
            process.send_signal(sig)
        stdout, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.mark.parametrize("module, argv", [
    ("csa_keras.train", []),
    ("voting_resnet.train", []),
    ("voting_resnet.compare", []),
    ("csa_keras.predict", ["face.png"]),
    ("csa_keras.evaluate", ["--model", "model.keras", "--data", "data"]),
    ("csa_keras.export", ["--model", "run"]),
])
@pytest.mark.parametrize("backend", ["jax", "torch", "numpy"])
def test_a_keras_backend_other_than_tensorflow_is_one_line(module, argv, backend, tmp_path):
    result = subprocess.run([sys.executable, "-m", module, *argv], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path, env=dict(ENV, KERAS_BACKEND=backend))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"needs Keras's TensorFlow backend. Received: KERAS_BACKEND={backend}" in result.stderr


def test_ctrl_c_while_tensorflow_loads_is_one_line(tmp_path):
    process = start(train(tmp_path / "run"))
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130
    assert stderr.splitlines() == ["python -m csa_keras.train: interrupted"]


def test_ctrl_c_during_training_is_one_line_and_the_run_resumes(tmp_path):
    out = tmp_path / "run"
    log = out / ".backup" / "split" / "finetune" / "history.csv"
    ended = interrupt(out, lambda: rows(log) >= 1, signal.SIGINT)
    assert ended.returncode == 130, ended.stderr[-3000:]
    assert ended.stderr.splitlines() == [
        f"python -m csa_keras.train: interrupted; to continue, run the same command with "
        f"--output {out} --resume"]
    assert (out / ".backup").is_dir() and not (out / "metrics.json").exists()
    resume(out)


def test_a_second_process_on_one_run_directory_gets_one_line_at_once(tmp_path):
    """Two trainings started at the same moment on one ``--output``: one runs, the other is
    refused before it writes anything, and the run directory is the first one's alone."""
    out = tmp_path / "run"
    first, second = start(train(out, "--seed", "1")), start(train(out, "--seed", "2"))
    ended = {seed: (p, *p.communicate(timeout=900)) for seed, p in ((1, first), (2, second))}
    codes = sorted(p.returncode for p, _, _ in ended.values())
    assert codes == [0, 2], {seed: (p.returncode, err[-2000:]) for seed, (p, _, err) in ended.items()}
    winner = next(seed for seed, (p, _, _) in ended.items() if p.returncode == 0)
    refused = ended[3 - winner][2]
    assert refused.count("\n") == 1 and "is in use by another process" in refused, refused
    assert json.loads((out / "config.json").read_text())["config"]["seed"] == winner
    assert_finished(out)


def test_a_run_directory_is_free_again_once_its_process_ends(tmp_path):
    out = tmp_path / "run"
    killed = interrupt(out, lambda: (out / "config.json").exists(), signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    resume(out)


def can_mount_tmpfs() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            "mount -t tmpfs -o size=1m tmpfs /mnt"], capture_output=True)
    return probe.returncode == 0


FULL_DISK = """
set -u
mount -t tmpfs -o size="$SIZE" tmpfs "$DISK"
"$@" > "$LOGS/first.out" 2> "$LOGS/first.err"
echo $? > "$LOGS/first.code"
cp -a "$DISK/run" "$LOGS/left" 2>/dev/null
mount -o remount,size=400m "$DISK"
"$@" --resume > "$LOGS/resumed.out" 2> "$LOGS/resumed.err"
echo $? > "$LOGS/resumed.code"
cp -a "$DISK/run" "$LOGS/run"
"""


@pytest.mark.skipif(not can_mount_tmpfs(), reason="needs a private mount namespace for a small tmpfs")
@pytest.mark.parametrize("size", ["12m", pytest.param("1m", marks=pytest.mark.slow),
                                  pytest.param("24m", marks=pytest.mark.slow)])
def test_a_full_disk_is_one_line_naming_the_path_and_the_run_resumes_once_space_is_back(tmp_path,
                                                                                       size):
    """``--output`` on a disk too small for the run (a tmpfs of ``size``): one line naming the
    path, exit 1, no crash; once the disk has room, ``--resume`` finishes the run."""
    disk, logs = tmp_path / "disk", tmp_path / "logs"
    disk.mkdir(), logs.mkdir()
    subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", FULL_DISK, "sh",
                    *train(disk / "run")], env=dict(ENV, SIZE=size, DISK=str(disk), LOGS=str(logs)),
                   timeout=1800, check=True)
    first = (logs / "first.err").read_text()
    assert (logs / "first.code").read_text().strip() == "1", first[-3000:]
    assert first.count("\n") == 1 and "No space left on device" in first, first[-3000:]
    assert f"error: {disk / 'run'}" in first and "--resume" in first
    assert (logs / "resumed.code").read_text().strip() == "0", (logs / "resumed.err").read_text()[-3000:]
    assert_finished(logs / "run")


@pytest.mark.slow
def test_interruptions_swept_over_a_whole_run_all_resume_to_every_epoch(tmp_path):
    """SIGINT and SIGKILL in turn at evenly spaced instants of a run (start-up, data,
    pretraining, fine-tuning, the artifacts at the end); each interrupted run resumes to the
    same 4 epochs."""
    started = time.monotonic()
    reference = subprocess.run(train(tmp_path / "reference"), capture_output=True, text=True,
                               timeout=900, env=ENV)
    assert reference.returncode == 0, reference.stderr[-3000:]
    duration = time.monotonic() - started
    outcomes = []
    for i, fraction in enumerate((0.1, 0.25, 0.4, 0.55, 0.7, 0.85, 0.95)):
        out, sig = tmp_path / f"run{i}", (signal.SIGINT, signal.SIGKILL)[i % 2]
        deadline = time.monotonic() + fraction * duration
        ended = interrupt(out, lambda until=deadline: time.monotonic() >= until, sig)
        outcomes.append((fraction, sig.name, ended.returncode))
        if ended.returncode == 0:
            assert_finished(out)
            continue
        assert ended.returncode == (130 if sig == signal.SIGINT else -signal.SIGKILL), ended.stderr
        if sig == signal.SIGINT:
            assert len(ended.stderr.splitlines()) == 1, ended.stderr
        if out.exists():
            resume(out)
    print(f"reference run {duration:.1f} s; (fraction, signal, exit status): {outcomes}")
