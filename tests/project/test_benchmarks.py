"""The performance benchmark's bookkeeping: child processes, peak memory, A/B ratios, the report."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import throughput  # noqa: E402

FAKE_REFERENCE = """
import argparse, json, time
parser = argparse.ArgumentParser()
parser.add_argument("--model"); parser.add_argument("--split", type=int)
parser.add_argument("--mode"); parser.add_argument("--steps", type=int)
args = parser.parse_args()
print("warming up")
time.sleep(0.6)
print(json.dumps({"model": args.model, "split": args.split, "mode": args.mode,
                  "batch": 32, "images_per_s": 100.0 * args.steps, "params": 1}))
"""


def test_run_measured_reads_the_last_json_line_and_the_childs_own_peak_memory():
    hold = ("import time, numpy as np; a = np.ones((60, 1024, 1024), np.float32); time.sleep(0.6); "
            "print('{\"x\": 1}')")
    line, peak = throughput.run_measured([sys.executable, "-c", hold])
    assert line == {"x": 1}
    assert 240 < peak < 2000  # the 240 MB array the child held, not the parent's memory


def test_run_measured_failure_is_one_line_naming_the_command():
    with pytest.raises(RuntimeError, match=r"failed \(exit 3\): boom"):
        throughput.run_measured([sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"])
    with pytest.raises(RuntimeError, match="printed no JSON line"):
        throughput.run_measured([sys.executable, "-c", "print('no json')"])


def test_a_peak_that_could_not_be_read_is_reported_as_unknown():
    row = {"label": "CSA autoencoder", "mode": "infer", "batch": 32, "keras_median": 1.0,
           "keras_peak_rss_mb": None, "reference_median": 1.0, "reference_peak_rss_mb": 12.0,
           "median_ratio": 1.0}
    assert "| 1.00 | n/a | 1.00 | 12 | 1.00x |" in throughput.markdown([row])
    assert throughput._largest([None, 3.0, None]) == 3.0 and throughput._largest([None]) is None


def test_measure_alternates_keras_and_reference_and_reports_the_median_ratio(tmp_path):
    reference = tmp_path / "reference.py"
    reference.write_text(FAKE_REFERENCE)
    messages = []
    saved = []
    rows = throughput.measure(["csa"], ["infer"], repeats=2, torch_python=sys.executable,
                              reference=str(reference), csa_steps=2, log=messages.append,
                              on_row=lambda r: saved.append(len(r)))
    (row,) = rows
    assert saved == [1]
    assert [m.split(":")[0] for m in messages] == ["csa infer run 1/2", "csa infer run 2/2"]
    assert row["reference_images_per_s"] == [200.0, 200.0]
    assert len(row["keras_images_per_s"]) == 2 and min(row["keras_images_per_s"]) > 0
    expected = [k / 200.0 for k in row["keras_images_per_s"]]
    assert row["ratio_per_pair"] == pytest.approx(expected, abs=1e-3)
    assert row["median_ratio"] == pytest.approx(sum(expected) / 2, abs=1e-3)
    assert row["params"] == 776_833  # the CSA autoencoder, as the reference counts it
    assert row["keras_peak_rss_mb"] > 100 and 5 < row["reference_peak_rss_mb"] < row["keras_peak_rss_mb"]
    table = throughput.markdown(rows)
    assert "| CSA autoencoder | infer | 32 |" in table
    assert f"{row['median_ratio']:.2f}x |" in table
    json.dumps(rows)
