"""Determinism: the same seed and data on a CPU give the same ``metrics.json``.

Two processes run the same ``smoke`` command at the same time, so they also
compete for the cores: with TensorFlow op determinism on (always on without
a GPU, :func:`csa_keras.training.strategy.seed_everything`) thread timing
must not change a number. Only wall-time fields (``seconds``,
``seconds_per_epoch``) may differ.
"""
import csv
import json
import os
import subprocess
import sys

import pytest


def without_wall_time(value):
    if isinstance(value, dict):
        return {k: without_wall_time(v) for k, v in value.items() if "seconds" not in k}
    if isinstance(value, list):
        return [without_wall_time(v) for v in value]
    return value


def twice(module, tmp_path, *args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    runs = [tmp_path / f"run{i}" for i in range(2)]
    processes = [subprocess.Popen([sys.executable, "-m", module, "--recipe", "smoke", "--quiet",
                                   "--output", str(out), *args],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=env) for out in runs]
    for process in processes:
        _, stderr = process.communicate(timeout=900)
        assert process.returncode == 0, stderr[-3000:]
    return [json.loads((out / "metrics.json").read_text()) for out in runs], runs


def test_csa_smoke_runs_give_identical_metrics(tmp_path):
    (first, second), runs = twice("csa_keras.train", tmp_path, "--no-gradcam")
    assert "seconds" in first
    assert without_wall_time(first) == without_wall_time(second)
    config = json.loads((runs[0] / "config.json").read_text())
    assert config["run"]["op_determinism"] is True
    histories = [without_wall_time(list(csv.DictReader((out / "history.csv").open())))
                 for out in runs]
    assert histories[0] == histories[1] and len(histories[0]) == 2
    assert (runs[0] / "splits.json").read_text() == (runs[1] / "splits.json").read_text()


@pytest.mark.slow
def test_voting_resnet_smoke_runs_give_identical_metrics(tmp_path):
    """About 90 s on two CPU cores: a 48x48 ResNet-18, twice."""
    (first, second), _ = twice("voting_resnet.train", tmp_path, "--no-gradcam")
    assert without_wall_time(first) == without_wall_time(second)
    assert first["comparison"][0]["seconds"] > 0
