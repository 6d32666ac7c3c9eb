"""``python -m csa_keras.export`` checks the run before writing, and leaves nothing half-made.

A run whose model or files are wrong (a model of the wrong input shape, a
model naming a module that does not exist, a ``config.json`` that is a list)
is one line and exit status 2 with nothing written; an artifact is written
into a temporary folder beside the destination and moved into place only
once it matches the Keras model, so a failure or Ctrl-C at any point leaves
the destination as it was and no temporary folder behind.
"""
import json
import shutil
import zipfile

import numpy as np
import pytest
from commands import call_main, error_line, run_module

from csa_keras.export import main as export_main
from csa_keras.inference import artifacts
from csa_keras.inference.export import ExportError, export_run

PROG = "python -m csa_keras.export"


def quiet(_line):
    pass


def _save_run(folder, input_shape=(48, 48, 1)):
    """An untrained small CSA classifier saved like a run directory."""
    import keras

    from csa_keras.csa.model import build_classifier, build_encoder

    folder.mkdir(parents=True)
    keras.utils.set_random_seed(0)
    build_classifier(build_encoder(input_shape=input_shape, filters=(4, 4, 8, 8)), 3).save(
        folder / "classifier.keras")
    (folder / "metrics.json").write_text(json.dumps({"task": "csa", "class_names": ["a", "b", "c"]}))
    return folder


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    return _save_run(tmp_path_factory.mktemp("export_checks") / "good")


@pytest.fixture
def run(good_run, tmp_path):
    """A fresh copy of the good run, for a test to break or export into."""
    return shutil.copytree(good_run, tmp_path / "run")


def _listing(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def _one_error(code, out, err):
    return error_line(code, out, err, PROG)


def _with_missing_module(run):
    """The run's model with its first convolution saying it comes from a module that does not exist."""
    path = run / "classifier.keras"
    members = {}
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            members[name] = archive.read(name)
    config = json.loads(members["config.json"])
    layer = next(layer for layer in config["config"]["layers"] if layer["class_name"] == "Conv2D")
    layer["module"] = "no_such_package.layers"
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


@pytest.mark.parametrize("case, message", [
    ("wrong input shape", "input_shape must be (batch, size, size, 1 or 3): square grey or colour images. "
                          "Received: input_shape=(None, 40, 48, 2)"),
    ("missing module", "cannot load"),
    ("config.json a list", "config.json must hold a JSON object. Received: a JSON list"),
    ("config.json not JSON", "config.json must be a readable JSON file"),
    ("config a list", "config.json must hold an object under 'config'. Received: a JSON list"),
    ("splits.json without test", "splits.json must map each split to an object with a 'test' list"),
])
def test_a_wrong_run_is_one_line_and_nothing_is_written(good_run, tmp_path, case, message, capsys):
    run = tmp_path / "run"
    if case == "wrong input shape":
        _save_run(run, input_shape=(40, 48, 2))
    else:
        shutil.copytree(good_run, run)
    if case == "missing module":
        _with_missing_module(run)
    files = {"config.json a list": ("config.json", "[1, 2]"),
             "config.json not JSON": ("config.json", "{\"config\": "),
             "config a list": ("config.json", json.dumps({"config": [], "run": {}})),
             "splits.json without test": ("splits.json", json.dumps({"holdout": {"train": [0]}}))}
    if case in files:
        name, text = files[case]
        (run / name).write_text(text)
    before = _listing(tmp_path)
    line = _one_error(*call_main(export_main, ["--model", run, "--latency-runs", "0"], capsys))
    assert message in line
    assert _listing(tmp_path) == before


def test_a_config_list_from_the_shell_is_one_line(run):
    (run / "config.json").write_text("[]")
    result = run_module("csa_keras.export", "--model", run, timeout=300)
    line = _one_error(result.returncode, result.stdout, result.stderr)
    assert line.endswith("config.json must hold a JSON object. Received: a JSON list")
    assert not (run / "export").exists()


def test_an_output_folder_holding_the_model_is_refused(run, capsys):
    (run / "saved_model.pb").write_bytes(b"")  # a run directory that looks like a SavedModel to replace
    line = _one_error(*call_main(export_main, ["--model", run, "--output", run, "--latency-runs", "0"], capsys))
    assert (f"--output must not hold an input. Received: --output='{run}', which holds "
            f"--model='{run / 'classifier.keras'}'") in line
    assert (run / "classifier.keras").is_file()


def test_an_export_is_checked_then_moved_into_place(run):
    first = export_run(run, "savedmodel", max_images=4, latency_runs=0, log=quiet)
    target = run / "export" / "classifier_saved_model"
    assert first["artifact"] == str(target.resolve()) and (target / "saved_model.pb").is_file()
    again = export_run(run, "savedmodel", max_images=4, latency_runs=0, log=quiet)
    assert again["max_abs_diff"] == 0.0
    tflite = export_run(run, "tflite", max_images=4, latency_runs=0, log=quiet)
    assert tflite["max_abs_diff"] <= 1e-4
    assert sorted(p.name for p in (run / "export").iterdir()) == [
        "classifier.tflite", "classifier_saved_model", "export.json"]


@pytest.mark.parametrize("format", ["savedmodel", "tflite"])
@pytest.mark.parametrize("failure", ["interrupt", "mismatch"])
def test_a_failed_export_leaves_the_destination_as_it_was(run, tmp_path, monkeypatch, format, failure):
    target = tmp_path / "new" / "deeper" / ("model.tflite" if format == "tflite" else "model_saved_model")
    predictor = artifacts.saved_model_predictor if format == "savedmodel" else artifacts.tflite_predictor

    def failing(path, *args):
        if failure == "interrupt":
            raise KeyboardInterrupt
        predict = predictor(path, *args)
        return lambda images: np.asarray(predict(images)) * 0.5

    monkeypatch.setattr(artifacts, predictor.__name__, failing)
    error = KeyboardInterrupt if failure == "interrupt" else ExportError
    with pytest.raises(error, match=None if failure == "interrupt" else "does not match the Keras model"):
        export_run(run, format, output=target, max_images=4, latency_runs=0, log=quiet)
    assert not (tmp_path / "new").exists()  # the folders it made are gone too

    monkeypatch.undo()
    export_run(run, format, output=target, max_images=4, latency_runs=0, log=quiet)
    before = {p.relative_to(target.parent).as_posix(): p.read_bytes()
              for p in target.parent.rglob("*") if p.is_file()}
    monkeypatch.setattr(artifacts, predictor.__name__, failing)
    with pytest.raises(error):
        export_run(run, format, output=target, max_images=4, latency_runs=0, log=quiet)
    after = {p.relative_to(target.parent).as_posix(): p.read_bytes()
             for p in target.parent.rglob("*") if p.is_file()}
    assert after == before  # the earlier artifact and its record, whole; no temporary folder
