"""One output rule for every command: never another run's directory, its files or a model file.

``check_outputs(..., results=...)`` refuses an output that is a run
directory (it holds ``metrics.json``, ``config.json``, a model file ...), an
existing file or folder in one, or a ``.keras`` file; ``evaluate --output``,
``export``'s output, ``predict --output / --annotate`` and a new
``voting_resnet.compare --output`` keep it. A refused command creates
nothing: the folder it was given does not exist afterwards.
"""
import hashlib
import json
import shutil

import cv2
import numpy as np
import pytest
from commands import call_main

from csa_keras.evaluate import main as evaluate_main
from csa_keras.inference.export import ExportError, export_run
from csa_keras.predict import main as predict_main
from csa_keras.utils.paths import check_outputs, run_marker
from voting_resnet.compare import main as compare_main


def _snapshot(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _one_line(code, out, err, prog):
    lines = err.strip().splitlines()
    assert code == 2, err
    assert out == ""
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), err
    return lines[0]


def _face(path, value=120):
    cv2.imwrite(str(path), np.full((48, 48, 3), value, np.uint8))
    return path


@pytest.fixture
def other_run(tiny_run, tmp_path):
    """Another run: a copy of the tiny run with its config.json and report."""
    run = shutil.copytree(tiny_run, tmp_path / "other_run")
    (run / "config.json").write_text(json.dumps({"config": {}, "run": {}}))
    (run / "report.md").write_text("# a result\n")
    return run


def test_run_marker_names_what_makes_a_folder_a_run(tmp_path):
    assert run_marker(tmp_path) is None and run_marker(tmp_path / "none") is None
    (tmp_path / "model.KERAS").write_bytes(b"")
    assert run_marker(tmp_path) == "model.KERAS"
    (tmp_path / "splits.json").write_text("{}")
    assert run_marker(tmp_path) == "splits.json"
    (tmp_path / "metrics.json").write_text("{}")
    assert run_marker(tmp_path) == "metrics.json"


def test_check_outputs_keeps_results_out_of_other_runs(other_run, tmp_path):
    def refused(output, folder=True, own=None):
        with pytest.raises(ValueError) as caught:
            check_outputs({"output": output}, {}, folders=("output",) if folder else (), results=("output",),
                          own=own)
        return str(caught.value)

    assert "must not be another run's directory: it holds metrics.json" in refused(other_run)
    assert "must not be another run's directory" in refused(tmp_path / "x" / ".." / "other_run")
    assert "must not replace a file of another run's directory" in refused(other_run / "report.md", False)
    assert "must not be a model file" in refused(tmp_path / "new.keras", False)
    assert "must not be a model file" in refused(other_run / "classifier.keras", False)
    # a new name inside a run, a fresh folder, and the command's own run are fine
    check_outputs({"output": other_run / "export" / "m.tflite"}, {}, results=("output",))
    check_outputs({"output": tmp_path / "fresh"}, {}, folders=("output",), results=("output",))
    check_outputs({"output": other_run / "report.md"}, {}, results=("output",), own=other_run)
    # without results=, a training run's own folder stays its to resume
    check_outputs({"output": other_run}, {}, folders=("output",))


def test_evaluate_into_another_run_is_refused_and_the_run_kept(other_run, tmp_path, capsys):
    before = _snapshot(other_run)
    line = _one_line(*call_main(evaluate_main, ["--model", other_run, "--output", other_run, "--quiet"], capsys),
                     "python -m csa_keras.evaluate")
    assert "--output must not be another run's directory" in line
    assert _snapshot(other_run) == before


def test_a_refused_evaluation_creates_no_folder(tiny_run, tmp_path, capsys):
    """Refused after the model and the data are read (they share one class): no output folder."""
    data = tmp_path / "data"
    for name in ("anger", "neutral", "contempt"):
        (data / name).mkdir(parents=True)
        for i in range(2):
            _face(data / name / f"{i}.png", 60 + 40 * i)
    output = tmp_path / "deep" / "evaluation"
    line = _one_line(*call_main(evaluate_main, ["--model", tiny_run, "--data", data, "--output", output,
                                                "--quiet"], capsys), "python -m csa_keras.evaluate")
    assert "share 1" in line
    assert not output.exists() and not (tmp_path / "deep").exists()


@pytest.mark.parametrize("flags, message", [
    (["--output", "{run}/report.md"], "--output must not replace a file of another run's directory"),
    (["--output", "{run}/metrics.json"], "--output must not replace a file of another run's directory"),
    (["--output", "records.keras"], "--output must not be a model file"),
    (["--annotate", "{run}"], "--annotate must not be another run's directory"),
])
def test_predict_outputs_never_replace_another_runs_results(tiny_run, other_run, tmp_path, monkeypatch, capsys,
                                                           flags, message):
    monkeypatch.chdir(tmp_path)
    image = _face(tmp_path / "face.png")
    before = _snapshot(other_run)
    argv = [image, "--model", tiny_run, *(f.format(run=other_run) for f in flags)]
    assert message in _one_line(*call_main(predict_main, argv, capsys), "python -m csa_keras.predict")
    assert _snapshot(other_run) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face.png", "other_run"]


def test_predict_refused_after_the_output_checks_creates_no_annotate_folder(tmp_path, capsys):
    image = _face(tmp_path / "face.png")
    annotate = tmp_path / "annotated"
    line = _one_line(*call_main(predict_main, [image, "--model", tmp_path / "missing", "--annotate", annotate],
                                capsys), "python -m csa_keras.predict")
    assert "does not exist" in line and not annotate.exists()


def test_export_into_another_run_is_refused(tiny_run, other_run, tmp_path):
    before = _snapshot(other_run)
    with pytest.raises(ExportError, match="output must not be another run's directory"):
        export_run(tiny_run, format="savedmodel", output=other_run, latency_runs=0)
    with pytest.raises(ExportError, match="must not replace a file of another run's directory"):
        (other_run / "old.tflite").write_bytes(b"x")
        before = _snapshot(other_run)
        export_run(tiny_run, format="tflite", output=other_run / "old.tflite", latency_runs=0)
    assert _snapshot(other_run) == before


def test_a_new_comparison_into_another_run_is_refused(other_run, tmp_path, capsys):
    before = _snapshot(other_run)
    line = _one_line(*call_main(compare_main, ["--recipe", "smoke", "--output", other_run, "--quiet"], capsys),
                     "python -m voting_resnet.compare")
    assert "--output must not be another run's directory: it holds metrics.json" in line
    assert _snapshot(other_run) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other_run"]
