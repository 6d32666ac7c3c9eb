"""Fixtures the prediction tests share: a tiny untrained CSA saved as a run directory, and videos
of synthetic faces."""
import json

import cv2
import numpy as np
import pytest

from csa_keras.data.face_painter import draw_face

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


def write_face_clip(path, frames: int, expressions, seed: int = 0, fps: float = 10.0):
    """A 160x120 MJPG video of synthetic 96-pixel faces, frame ``i`` showing
    ``expressions[i % len(expressions)]``; returns ``path``."""
    rng = np.random.default_rng(seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (160, 120))
    assert writer.isOpened()
    for i in range(frames):
        canvas = np.full((120, 160), 90, np.uint8)
        canvas[12:108, 32:128] = draw_face(expressions[i % len(expressions)], rng, size=96)
        writer.write(cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path
