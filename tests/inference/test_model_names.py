"""Models in the box by name: ``--model csa_fer2013``, ``Predictor.pretrained(name)``, export, evaluate."""
import json
import shutil

import pytest

from csa_keras.inference import loading
from csa_keras.inference.export import default_output
from csa_keras.inference.predictor import Predictor


@pytest.fixture
def box(tiny_run, tmp_path, monkeypatch):
    """Two pretrained models installed in a package folder of the test's own."""
    root = tmp_path / "pretrained"
    for name in ("alpha_fer", "beta_fer"):
        shutil.copytree(tiny_run, root / name)
    (root / "not_a_model").mkdir()
    (root / ".alpha_fer.partial").mkdir()
    monkeypatch.setattr(loading, "PRETRAINED_ROOT", root)
    monkeypatch.setattr(loading, "PRETRAINED", root / "alpha_fer")
    return root


def test_names_are_the_folders_that_hold_a_model(box):
    assert loading.pretrained_names() == ["alpha_fer", "beta_fer"]
    assert loading.pretrained_run("beta_fer") == box / "beta_fer"
    assert loading.pretrained_run() == box / "alpha_fer"
    with pytest.raises(ValueError, match=r"name must be one of the models in the box "
                                         r"\(alpha_fer, beta_fer\). Received: name='gamma'"):
        loading.pretrained_run("gamma")


def test_a_name_resolves_unless_a_path_of_that_name_exists(box, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert loading.resolve_model_path("beta_fer") == box / "beta_fer" / "classifier.keras"
    assert loading.pretrained_name(box / "beta_fer" / "classifier.keras") == "beta_fer"
    assert loading.pretrained_name(tmp_path) is None
    (tmp_path / "beta_fer").mkdir()
    with pytest.raises(ValueError, match="beta_fer is not a run directory"):
        loading.resolve_model_path("beta_fer")
    with pytest.raises(ValueError, match=r"model gamma does not exist \(models in the box: "
                                         r"alpha_fer, beta_fer\)"):
        loading.resolve_model_path("gamma")


def test_predictor_and_export_take_the_name(box, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    predictor = Predictor.pretrained("beta_fer")
    assert predictor.source == str(box / "beta_fer" / "classifier.keras")
    run = loading.model_location("beta_fer")
    assert run == box / "beta_fer"
    model = run / "classifier.keras"
    assert default_output(run, model, "tflite") == tmp_path.joinpath(
        "export", "beta_fer", "classifier.tflite").relative_to(tmp_path)
    other = tmp_path / "run"
    assert default_output(other, model, "savedmodel") == other / "export" / "classifier_saved_model"


def test_the_shipped_models_are_addressable_by_name():
    names = loading.pretrained_names()
    assert loading.DEFAULT_MODEL in names
    for name in names:
        folder = loading.pretrained_run(name)
        metrics = json.loads((folder / "metrics.json").read_text())
        assert loading.resolve_model_path(name).parent == folder
        assert metrics["class_names"] and (folder / "MODEL_CARD.md").is_file()


def test_every_command_takes_a_model_file_a_run_directory_or_a_name(box, tmp_path, monkeypatch, capsys):
    """``--model`` means the same in predict, evaluate and export (docs/commands.md)."""
    import cv2
    import numpy as np
    from commands import call_main

    from csa_keras.evaluate import main as evaluate_main
    from csa_keras.export import main as export_main
    from csa_keras.predict import main as predict_main

    monkeypatch.chdir(tmp_path)
    face = tmp_path / "face.png"
    cv2.imwrite(str(face), np.random.default_rng(0).integers(0, 256, (48, 48), dtype=np.uint8))
    loose = tmp_path / "loose" / "mine.keras"
    loose.parent.mkdir()
    shutil.copy(box / "beta_fer" / "classifier.keras", loose)
    shutil.copy(box / "beta_fer" / "metrics.json", loose.parent)  # the class names
    for model in ("beta_fer", box / "beta_fer", loose):
        code, out, err = call_main(predict_main, ["--model", model, face, "--quiet"], capsys)
        assert code == 0, (model, err)
        assert json.loads(out)["status"] == "ok", model
    code, out, err = call_main(evaluate_main, ["--model", loose, "--output", tmp_path / "scored", "--quiet"],
                               capsys)
    assert code == 0 and out.startswith("accuracy "), err
    code, out, err = call_main(export_main, ["--model", loose, "--max-images", "4", "--latency-runs", "0"],
                               capsys)
    assert code == 0, err
    assert (loose.parent / "export" / "mine_saved_model" / "saved_model.pb").is_file()
