"""A finished run packed as the package's pretrained model: small, no optimizer state, a card."""
import json
import zipfile

import h5py
import pytest

from csa_keras.csa.config import preset
from csa_keras.csa.training import run_csa
from csa_keras.inference.predictor import Predictor
from csa_keras.inference.pretrained import package_pretrained


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrained")
    run_csa(preset("smoke").replace(gradcam=False), output=root / "run", verbose=0,
            log=lambda _: None)
    dest = package_pretrained(root / "run", "python -m csa_keras.train --recipe smoke",
                              "Research use only.", dest=root / "csa_fer2013")
    return root, dest


def test_the_packed_folder_is_a_run_prediction_can_use(packed, grace_hopper):
    root, dest = packed
    assert sorted(p.name for p in dest.iterdir()) == ["MODEL_CARD.md", "classifier.keras",
                                                      "config.json", "metrics.json"]
    assert not list(root.glob(".csa_fer2013*")), "temporary folders left behind"
    metrics = json.loads((dest / "metrics.json").read_text())
    run = json.loads((root / "run" / "metrics.json").read_text())
    assert metrics["class_names"] == run["class_names"] and metrics["accuracy"] == run["accuracy"]
    assert metrics["accuracy_ci_low"] <= metrics["accuracy"] <= metrics["accuracy_ci_high"]
    predictor = Predictor.from_run(dest, detect="always")
    records = predictor.predict(grace_hopper)
    assert records[0]["status"] == "ok" and records[0]["label"] in run["class_names"]


def test_the_packed_model_holds_no_optimizer_state(packed, tmp_path):
    _, dest = packed
    with zipfile.ZipFile(dest / "classifier.keras") as archive:
        archive.extract("model.weights.h5", tmp_path)
    with h5py.File(tmp_path / "model.weights.h5") as weights:
        assert "optimizer" not in weights
    assert (dest / "classifier.keras").stat().st_size < 8 * 2**20


def test_the_card_gives_the_command_and_the_licence(packed):
    card = (packed[1] / "MODEL_CARD.md").read_text()
    assert "## Re-create it" in card and "python -m csa_keras.train --recipe smoke" in card
    assert card.rstrip().endswith("Research use only.")


def test_the_packed_config_names_no_path_of_the_training_machine():
    from csa_keras.inference.pretrained import anonymous_config

    config = {"config": {"data": "/home/someone/datasets/fer2013", "seed": 0},
              "run": {"dataset": {"name": "fer2013", "root": "/home/someone/datasets/fer2013"}}}
    clean = anonymous_config(config)
    assert clean["config"]["data"] == "path/to/fer2013" and "root" not in clean["run"]["dataset"]
    assert config["run"]["dataset"]["root"].startswith("/home")  # the run's own file is untouched
