"""Shared test set-up: quiet TensorFlow, a headless matplotlib, a private cache."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Keep face-detection caches of the suite out of the user's cache folder."""
    os.environ["CSA_KERAS_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield


@pytest.fixture(scope="session")
def grace_hopper() -> Path:
    """A real photograph of one face, shipped with matplotlib."""
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    assert path.exists(), path
    return path
