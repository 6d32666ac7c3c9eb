"""A command resolves what ``--model`` names once: one path lookup and one read of the archive's config.

From ``--model`` to a loaded model, predict, evaluate and export build one
:class:`~csa_keras.inference.loading.ModelSource` and hand it down; these
tests count the calls of the two functions it is made with.
"""
import json
import shutil

import pytest
from commands import call_main

from csa_keras.inference import loading
from csa_keras.inference.loading import ModelSource


@pytest.fixture
def counted(monkeypatch):
    """How many times the model path was resolved and the archive's config read."""
    calls = {"resolve_model_path": 0, "read_archive_config": 0}
    for name in calls:
        original = getattr(loading, name)

        def counting(*args, _name=name, _original=original, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(loading, name, counting)
    return calls


def test_a_source_knows_its_file_its_run_and_its_config(tiny_run):
    from_folder = ModelSource.resolve(tiny_run)
    assert from_folder.path == tiny_run / "classifier.keras"
    assert from_folder.run_dir == tiny_run
    assert from_folder.config["class_name"] == "Functional"
    assert from_folder.name is None and from_folder.label == str(tiny_run / "classifier.keras")
    from_file = ModelSource.resolve(tiny_run / "classifier.keras")
    assert from_file.run_dir == tiny_run and from_file.path == from_folder.path
    assert ModelSource.resolve(from_file) is from_file


def test_a_source_of_a_model_in_the_box_is_named_by_it():
    names = loading.pretrained_names()
    if not names:
        pytest.skip("no pretrained model installed")
    source = ModelSource.resolve(names[0])
    assert source.name == names[0] == source.label
    assert source.run_dir == loading.PRETRAINED_ROOT / names[0]


def test_a_bad_model_is_refused_in_one_line(tmp_path):
    with pytest.raises(ValueError, match="is not a run directory"):
        ModelSource.resolve(tmp_path)
    (tmp_path / "classifier.keras").write_bytes(b"not a zip")
    with pytest.raises(ValueError) as error:
        ModelSource.resolve(tmp_path)
    assert "\n" not in str(error.value)


def test_predict_resolves_the_model_once(tiny_run, grace_hopper, tmp_path, counted, capsys):
    from csa_keras.predict import main

    records = tmp_path / "records.jsonl"
    code, _, err = call_main(main, ["--model", str(tiny_run), "--quiet", "--output", str(records),
                                    str(grace_hopper)], capsys)
    assert code == 0, err
    assert json.loads(records.read_text().splitlines()[0])["status"] == "ok"
    assert counted == {"resolve_model_path": 1, "read_archive_config": 1}


def test_evaluate_resolves_the_model_once(tiny_run, tmp_path, counted):
    from csa_keras.inference.scoring import evaluate_model

    shared = json.loads((tiny_run / "metrics.json").read_text())["class_names"]
    metrics = evaluate_model(tiny_run, None, output=tmp_path / "scored", progress=False,
                             reader_options={"n_subjects": 2, "images_per_class": 1}, log=lambda _: None)
    assert metrics["class_names"] == shared and metrics["n_test"] == 2 * len(shared)
    assert counted == {"resolve_model_path": 1, "read_archive_config": 1}


def test_export_resolves_the_model_once(tiny_run, tmp_path, counted, capsys):
    from csa_keras.export import main

    run = shutil.copytree(tiny_run, tmp_path / "run")
    code, _, err = call_main(main, ["--model", str(run), "--to", "tflite", "--max-images", "2",
                                      "--latency-runs", "0"], capsys)
    assert code == 0, err
    assert (run / "export" / "classifier.tflite").is_file()
    assert counted == {"resolve_model_path": 1, "read_archive_config": 1}
