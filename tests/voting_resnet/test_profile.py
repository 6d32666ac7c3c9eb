"""The Table 2 profiler: counting rules on a hand-checked model and the CLI against the paper."""
import json
import os
import subprocess
import sys

import keras
import pytest

from voting_resnet.layers import CropAndMirror, Regroup
from voting_resnet.profile import count_macs, forward_elements, markdown_table, measure_peak_mb_per_image

PAPER = {  # (split_after, input_size): (GFLOPs, forward MB) of the paper's Table 2
    (0, 40): (0.87, 7.00), (0, 48): (1.26, 10.08), (1, 48): (6.66, 40.34),
    (2, 48): (4.85, 23.34), (3, 48): (3.05, 14.84),
}


def run_profile(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "voting_resnet.profile", *args],
                          capture_output=True, text=True, env=env, timeout=300)


def test_counting_rules_on_a_hand_checked_model():
    inputs = keras.Input((8, 8, 2))
    x = keras.layers.Conv2D(3, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = CropAndMirror()(x)  # 8 -> floor(40/6) = 6
    x = keras.layers.Conv2D(4, 1)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(5)(x)
    model = keras.Model(inputs, Regroup(10)(x))
    conv1 = 8 * 8 * 3 * 3 * 2 * 3
    conv2 = 10 * 6 * 6 * 1 * 1 * 3 * 4
    dense = 10 * 4 * 5
    assert count_macs(model) == conv1 + conv2 + dense
    assert count_macs(model, include_batchnorm=True) == conv1 + conv2 + dense + 4 * 8 * 8 * 3
    # input, conv1 output, relu output, crop stack, conv2 output, pooled features
    assert forward_elements(model) == 8 * 8 * 2 + 2 * 8 * 8 * 3 + 10 * 6 * 6 * 3 + 10 * 6 * 6 * 4 + 10 * 4


def test_cli_json_reproduces_table2():
    done = run_profile("--json")
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads(done.stdout)
    assert [(r["split_after"], r["input_size"]) for r in rows] == list(PAPER)
    baseline = next(r for r in rows if (r["split_after"], r["input_size"]) == (0, 48))
    for row in rows:
        paper_gmacs, paper_mb = PAPER[(row["split_after"], row["input_size"])]
        assert row["trainable_params"] == 11_172_423
        assert row["gmacs"] == pytest.approx(paper_gmacs, rel=0.01)
        assert round(row["gmacs_with_bn"], 2) == paper_gmacs
        assert row["forward_ratio"] == pytest.approx(paper_mb / PAPER[(0, 48)][1], rel=0.03)
        assert row["forward_ratio"] == pytest.approx(row["forward_mb"] / baseline["forward_mb"])
        assert row["forward_mb"] == pytest.approx(paper_mb, abs=0.01)
        assert row["forward_mb_decimal"] == pytest.approx(row["forward_mb"] * 2 ** 20 / 1e6)
        assert row["num_views"] == (10 if row["split_after"] else 1)
        assert row["measured_peak_mb_per_image"] is None
    assert "profiling" in done.stderr
    table = markdown_table(rows).splitlines()
    assert len(table) == 2 + len(rows)
    assert table[4].startswith("| Cropping after Module 1 | 48x48 | 11,172,423 | 6.635 |")
    assert "| 40.34 | 4.001 | 40.34 | 4.002 |" in table[4]


def test_cli_help_and_bad_arguments():
    done = run_profile("--help")
    assert done.returncode == 0 and "--json" in done.stdout and "--measure" in done.stdout
    done = run_profile("--measure-batches", "4", "4")
    assert done.returncode == 2
    assert "two different positive sizes" in done.stderr.strip().splitlines()[-1]


def test_measure_rejects_equal_batches():
    with pytest.raises(ValueError, match="two different positive sizes"):
        measure_peak_mb_per_image(3, 48, batches=(2, 2))


@pytest.mark.slow
def test_measured_peak_memory_grows_with_the_split():
    """Two fresh subprocesses per architecture; the split after module 3 holds more per image."""
    baseline = measure_peak_mb_per_image(0, 48, batches=(2, 10))
    split3 = measure_peak_mb_per_image(3, 48, batches=(2, 10))
    assert 5.0 < baseline < 200.0
    assert split3 > baseline
