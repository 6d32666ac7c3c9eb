"""Where the faces are and what became of an image: the one rule training and prediction share."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from csa_keras.data.faces import (
    OUTCOMES,
    FaceDetector,
    FaceSettings,
    NoFaceError,
    center_box,
    crop_face,
    detects,
    face_in_box,
    locate_faces,
)


class _Found:
    """A finder that returns fixed boxes, so the geometry can be checked by hand."""

    def __init__(self, boxes):
        self.boxes = list(boxes)
        self.calls = 0

    def detect(self, grey):
        self.calls += 1
        return list(self.boxes)


@pytest.fixture(scope="module")
def two_faces(grace_hopper) -> np.ndarray:
    """A 640x480 frame holding Grace Hopper twice, at 0.6x and 0.35x."""
    hopper = np.asarray(Image.open(grace_hopper).convert("RGB"))
    canvas = np.full((480, 640, 3), 90, np.uint8)
    big = cv2.resize(hopper, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA)
    small = cv2.resize(hopper, None, fx=0.35, fy=0.35, interpolation=cv2.INTER_AREA)
    canvas[:big.shape[0], :big.shape[1]] = big
    canvas[200:200 + small.shape[0], 400:400 + small.shape[1]] = small
    return canvas


@pytest.mark.parametrize("mode, shape, needs, expected", [
    ("auto", (192, 192), False, False),   # 4 x 48: a face crop
    ("auto", (100, 193), False, True),    # longer side over 4 x 48: a frame
    ("auto", (48, 48), True, True),       # the format says frames
    ("never", (4000, 3000), True, False),
    ("always", (10, 10), False, True),
])
def test_the_detect_rule(mode, shape, needs, expected):
    assert detects(FaceSettings(detect=mode), *shape, needs_detection=needs) is expected


def test_every_face_largest_first_or_the_largest_alone(two_faces):
    grey = cv2.cvtColor(two_faces, cv2.COLOR_RGB2GRAY)
    outcome, boxes = locate_faces(grey, FaceSettings(), every=True)
    assert outcome == "detected" and len(boxes) == 2
    assert boxes[0][2] * boxes[0][3] > boxes[1][2] * boxes[1][3]
    assert boxes[0][0] < 340 <= boxes[1][0]
    assert locate_faces(grey, FaceSettings()) == ("detected", boxes[:1])
    assert boxes[0] == FaceDetector().largest(grey)
    face, outcome, box = crop_face(two_faces, FaceSettings())
    assert outcome == "detected" and box == boxes[0]
    np.testing.assert_array_equal(face, face_in_box(two_faces, boxes[0], FaceSettings()))


def test_detected_and_given_boxes_grow_by_the_margin_and_are_clipped():
    grey = np.zeros((100, 120), np.uint8)
    finder = _Found([(10, 10, 20, 20), (50, 50, 40, 40), (110, 90, 20, 20)])
    settings = FaceSettings(detect="always", margin=0.5)
    outcome, boxes = locate_faces(grey, settings, detector=finder, every=True)
    # (50, 50, 40, 40) grown by 20 px about its centre; (110, 90, 20, 20) grown to (105, 85, 30, 30), clipped
    assert outcome == "detected" and boxes == [(40, 40, 60, 60), (5, 5, 30, 30), (105, 85, 15, 15)]
    assert locate_faces(grey, settings, box=(0, 0, 20, 10)) == ("given_box", [(0, 0, 25, 13)])


def test_a_face_crop_is_taken_whole_without_searching():
    finder = _Found([(1, 1, 5, 5)])
    assert locate_faces(np.zeros((64, 80), np.uint8), FaceSettings(margin=0.5), detector=finder) == (
        "whole", [(0, 0, 80, 64)])
    assert finder.calls == 0


@pytest.mark.parametrize("box", [None, (500, 500, 10, 10)])
def test_the_no_face_policy(box):
    grey = np.zeros((300, 400), np.uint8)
    finder = _Found([])
    located = {mode: locate_faces(grey, FaceSettings(detect="always", no_face=mode), box=box, detector=finder)
               for mode in ("skip", "center")}
    assert located == {"skip": ("no_face", []), "center": ("center", [(50, 0, 300, 300)])}
    assert center_box(300, 400) == (50, 0, 300, 300) and center_box(401, 100) == (0, 150, 100, 100)
    with pytest.raises(NoFaceError, match=r"no face found in frame\.png"):
        locate_faces(grey, FaceSettings(detect="always", no_face="error"), box=box, detector=finder,
                     source="frame.png")


def test_every_outcome_is_a_word_of_the_vocabulary(two_faces):
    grey = np.zeros((300, 400), np.uint8)
    seen = {
        locate_faces(grey, FaceSettings(detect="always"), box=(0, 0, 9, 9))[0],
        locate_faces(cv2.cvtColor(two_faces, cv2.COLOR_RGB2GRAY), FaceSettings())[0],
        locate_faces(grey, FaceSettings(detect="never"))[0],
        locate_faces(grey, FaceSettings(detect="always", no_face="center"), detector=_Found([]))[0],
        locate_faces(grey, FaceSettings(detect="always", no_face="skip"), detector=_Found([]))[0],
    }
    assert seen == set(OUTCOMES)
