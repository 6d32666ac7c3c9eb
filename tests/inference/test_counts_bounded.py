"""A count given by a setting never sizes an allocation alone: it is bounded by a documented limit.

``calibration_images 1000000000`` once made the synthetic fallback of int8
calibration ask for 2.1 TiB; the built-in faces' counts sized their arrays
the same way. Each is now a one-line error naming the setting, in bounded
time and memory.
"""
import time
import tracemalloc

import pytest

from csa_keras.csa.config import preset
from csa_keras.data.synthetic import MAX_SYNTHETIC_PIXELS, make_synthetic_dataset
from csa_keras.inference.export import ExportError, check_settings
from csa_keras.inference.quantize import MAX_CALIBRATION_IMAGES, synthetic_calibration_images


def _refused(error, call, *fragments):
    tracemalloc.start()
    start = time.perf_counter()
    with pytest.raises(error) as caught:
        call()
    seconds, peak = time.perf_counter() - start, tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    message = str(caught.value)
    assert "\n" not in message and all(f in message for f in fragments), message
    assert seconds < 1 and peak < 16 * 2**20
    return message


def test_a_billion_calibration_images_is_refused_before_the_model_loads():
    _refused(ExportError, lambda: check_settings("tflite", None, 0, None, "int8", 10**9),
             f"calibration_images must be at most {MAX_CALIBRATION_IMAGES}", "calibration_images=1000000000")
    check_settings("tflite", None, 0, None, "int8", MAX_CALIBRATION_IMAGES)


def test_the_synthetic_calibration_fallback_is_bounded_too():
    _refused(ValueError, lambda: synthetic_calibration_images((48, 48, 1), 10**9),
             "calibration_images", str(MAX_CALIBRATION_IMAGES))
    assert synthetic_calibration_images((48, 48, 1), 9).shape == (9, 48, 48, 1)


def test_the_built_in_faces_are_bounded():
    _refused(ValueError, lambda: make_synthetic_dataset(n_subjects=10**9), "n_subjects=1000000000",
             str(MAX_SYNTHETIC_PIXELS))
    _refused(ValueError, lambda: make_synthetic_dataset(size=10**6), "1000000x1000000")
    _refused(ValueError, lambda: preset("smoke").replace(synthetic_subjects=10**6).validate(),
             "synthetic_subjects x synthetic_images_per_class must be at most")
    _refused(ValueError, lambda: preset("smoke").replace(synthetic_images_per_class=0).validate(),
             "synthetic_images_per_class must be >= 1")
