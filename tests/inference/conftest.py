"""Fixtures the prediction tests share: a tiny untrained CSA saved as a run directory."""
import json

import pytest

TINY_CLASSES = ["anger", "happiness", "surprise"]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """An untrained CSA classifier of a small encoder, saved like a run directory."""
    import keras

    from csa_keras.csa.model import build_classifier, build_encoder

    out = tmp_path_factory.mktemp("tiny_run")
    keras.utils.set_random_seed(0)
    build_classifier(build_encoder(filters=(4, 4, 8, 8)), len(TINY_CLASSES)).save(out / "classifier.keras")
    (out / "metrics.json").write_text(json.dumps({"task": "csa", "class_names": TINY_CLASSES}))
    return out
