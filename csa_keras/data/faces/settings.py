"""How images become faces: output size and colour, detection and no-face policies.

The CSA paper (§3.1) crops the Viola-Jones face to 48x48 grey; the Voting
ResNet keeps colour. :class:`FaceSettings` holds every choice the crop
depends on, so one frozen value describes a preprocessing run (and enters
the cache key of :mod:`csa_keras.data.faces.cache`).
"""
from __future__ import annotations

import dataclasses

AUTO_DETECT_FACTOR = 4
"""With ``detect="auto"``, an image whose longer side exceeds this many times
the output size (192 pixels at 48) is taken as a frame that needs detection.
Set above 2 so that aligned face crops such as RAF-DB's 100x100 are resized
whole rather than searched for a face they already are."""

DETECT_MODES = ("auto", "always", "never")
"""The values of ``FaceSettings.detect``."""

NO_FACE_MODES = ("skip", "center", "error")
"""The values of ``FaceSettings.no_face``."""

CHANNELS = (1, 3)
"""The channels of a face: 1 grey (the CSA's input) or 3 colour, RGB (the Voting ResNet's)."""


@dataclasses.dataclass(frozen=True)
class FaceSettings:
    """How images become faces: output size and colour, detection policy.

    ``detect``: ``auto`` detects in frames (catalogues that say
    ``needs_detection``, or images larger than ``AUTO_DETECT_FACTOR x size``)
    and resizes face crops whole; ``always`` / ``never`` force either.
    ``no_face``: what to do with a frame where the cascade finds nothing:
    ``skip`` it (counted), take the ``center`` square (counted), or raise
    :class:`~csa_keras.data.faces.crop.NoFaceError`. ``scale_factor``,
    ``min_neighbors`` and ``min_size`` (pixels) go to ``detectMultiScale``.
    ``margin`` enlarges the face box by that fraction of its width and
    height, about its centre. ``max_side`` bounds the decoded image: larger
    images are reduced right away (boxes are rescaled to match).
    """

    size: int = 48
    colour: bool = False
    detect: str = "auto"
    no_face: str = "skip"
    scale_factor: float = 1.1
    min_neighbors: int = 5
    min_size: int = 24
    margin: float = 0.0
    max_side: int = 1024

    def __post_init__(self) -> None:
        if not (isinstance(self.size, int) and self.size >= 8):
            raise ValueError(f"size must be an integer of at least 8 (face sizes are in pixels). "
                             f"Received: size={self.size!r}")
        if self.detect not in DETECT_MODES:
            raise ValueError(f"detect must be one of {', '.join(DETECT_MODES)}. Received: detect={self.detect!r}")
        if self.no_face not in NO_FACE_MODES:
            raise ValueError(f"no_face must be one of {', '.join(NO_FACE_MODES)}. Received: no_face={self.no_face!r}")
        if not self.scale_factor > 1.0:
            raise ValueError(f"scale_factor must be greater than 1. Received: scale_factor={self.scale_factor!r}")
        if not (isinstance(self.min_neighbors, int) and self.min_neighbors >= 0):
            raise ValueError(f"min_neighbors must be an integer of at least 0. "
                             f"Received: min_neighbors={self.min_neighbors!r}")
        if not (isinstance(self.min_size, int) and self.min_size >= 1):
            raise ValueError(f"min_size must be an integer of at least 1. Received: min_size={self.min_size!r}")
        if not 0.0 <= self.margin <= 2.0:
            raise ValueError(f"margin must be in [0, 2]. Received: margin={self.margin!r}")
        if not (isinstance(self.max_side, int) and self.max_side >= 2 * self.size):
            raise ValueError(f"max_side must be an integer of at least 2 x size ({2 * self.size}). "
                             f"Received: max_side={self.max_side!r}")

    @property
    def channels(self) -> int:
        """1 for grey faces, 3 for colour (RGB) ones."""
        return 3 if self.colour else 1

    def preprocessing(self, class_names: list[str] | tuple[str, ...]) -> dict:
        """How to turn a photograph into this model's input, and what its outputs are: ``preprocessing.json``.

        Written into every ``.keras`` archive the project saves
        (:mod:`csa_keras.utils.artifacts`), so the file alone says how to
        use the model: cut the face as described, resize it to
        ``size x size``, keep ``channels`` (grey as OpenCV's
        ``COLOR_BGR2GRAY``, colour as RGB), divide by 255, and read the
        softmax in ``class_names`` order.
        """
        return {
            "class_names": [str(name) for name in class_names],
            "input": {
                "shape": [self.size, self.size, self.channels],
                "colour": "rgb" if self.colour else "grey",
                "dtype": "float32",
                "scale": "pixel / 255 (values in [0, 1])",
            },
            "face": {
                "detector": "OpenCV Haar cascade haarcascade_frontalface_default.xml (Viola-Jones)",
                "detect": self.detect,
                "scale_factor": self.scale_factor,
                "min_neighbors": self.min_neighbors,
                "min_size": self.min_size,
                "margin": self.margin,
                "crop": "the detected box grown by margin about its centre, clipped to the image, "
                        "resized to shape (a face crop already is resized whole)",
            },
        }


def preprocessing_for(class_names, image_shape, detect: str = "auto") -> dict:
    """:meth:`FaceSettings.preprocessing` of a model trained on ``image_shape`` faces ``(size, size, channels)``."""
    size, channels = int(image_shape[0]), int(image_shape[-1])
    return FaceSettings(size=size, colour=channels == 3, detect=detect).preprocessing(class_names)
