"""Image decoding, Viola-Jones face preprocessing and its cache (csa_keras.data.faces)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from csa_keras.data import faces
from csa_keras.data.dataset import Sample
from csa_keras.data.faces import (
    FaceDetector,
    FaceDetectorError,
    FaceSettings,
    ImageDecodeError,
    NoFaceError,
    decode_image,
    pool,
    preprocess_image,
    preprocess_samples,
    read_image,
)
from csa_keras.data.readers import folder as folder_reader


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _grey(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


@pytest.fixture(scope="module")
def hopper_rgb(grace_hopper) -> np.ndarray:
    return _rgb(grace_hopper)


@pytest.fixture()
def blank_frame(tmp_path) -> Path:
    """A 640x480 frame with no face: a smooth grey gradient."""
    y, x = np.mgrid[0:480, 0:640]
    grey = ((x + y) / 1120 * 200 + 20).astype(np.uint8)
    path = tmp_path / "blank.png"
    Image.fromarray(grey).save(path)
    return path


def _canvas(hopper: np.ndarray, scale: float, x: int, y: int) -> np.ndarray:
    """Grace Hopper resized by ``scale`` and pasted at ``(x, y)`` on a 640x480 grey canvas."""
    canvas = np.full((480, 640, 3), 90, dtype=np.uint8)
    small = cv2.resize(hopper, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    h, w = min(small.shape[0], 480 - y), min(small.shape[1], 640 - x)
    canvas[y:y + h, x:x + w] = small[:h, :w]
    return canvas


# ----------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"detect": "sometimes"}, "detect must be one of"),
        ({"no_face": "ignore"}, "no_face must be one of"),
        ({"size": 4}, "face size"),
        ({"scale_factor": 1.0}, "scale_factor"),
        ({"min_size": 0}, "min_size"),
        ({"margin": -0.1}, "margin"),
        ({"max_side": 50}, "max_side"),
    ],
)
def test_face_settings_reject_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FaceSettings(**kwargs)


def test_face_settings_channels():
    assert FaceSettings().channels == 1
    assert FaceSettings(colour=True).channels == 3


# ----------------------------------------------------------------------------- detection


def test_detects_exactly_one_face_in_a_real_photograph(grace_hopper, hopper_rgb):
    grey = _grey(hopper_rgb)
    boxes = FaceDetector().detect(grey)
    assert len(boxes) == 1
    x, y, w, h = boxes[0]
    assert x >= 0 and y >= 0 and x + w <= grey.shape[1] and y + h <= grey.shape[0]
    assert w >= 100 and h >= 100

    face, status = preprocess_image(hopper_rgb, FaceSettings(), source=str(grace_hopper))
    assert status == "detected"
    assert face.shape == (48, 48, 1) and face.dtype == np.uint8
    expected = cv2.resize(grey[y:y + h, x:x + w], (48, 48), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(face[..., 0], expected)
    scaled = face.astype(np.float32) / 255.0
    assert 0.0 <= scaled.min() < scaled.max() <= 1.0

    colour, status = preprocess_image(hopper_rgb, FaceSettings(colour=True))
    assert status == "detected" and colour.shape == (48, 48, 3)
    np.testing.assert_array_equal(
        colour, cv2.resize(hopper_rgb[y:y + h, x:x + w], (48, 48), interpolation=cv2.INTER_AREA))


def test_largest_and_margin(hopper_rgb):
    grey = _grey(hopper_rgb)
    detector = FaceDetector()
    x, y, w, h = detector.largest(grey)
    assert detector.largest(np.full((200, 200), 128, np.uint8)) is None
    result = faces.crop_face(hopper_rgb, FaceSettings(margin=0.5), detector=detector)
    mx, my, mw, mh = result[2]
    assert (mw, mh) == (round(1.5 * w), round(1.5 * h))
    assert (mx, my) == (int(np.floor(x - w / 4 + 0.5)), int(np.floor(y - h / 4 + 0.5)))


def test_detector_rejects_colour_input(hopper_rgb):
    with pytest.raises(ValueError, match="grey uint8"):
        FaceDetector().detect(hopper_rgb)


def test_missing_cascade_names_opencv_4(monkeypatch, tmp_path):
    monkeypatch.setattr(cv2.data, "haarcascades", str(tmp_path) + "/")
    with pytest.raises(FaceDetectorError, match="4.x"):
        FaceDetector()


@pytest.mark.parametrize("detect, expected", [("auto", "detected"), ("never", "whole")])
def test_detect_policy_on_a_frame(hopper_rgb, detect, expected):
    frame = _canvas(hopper_rgb, 0.5, 100, 80)
    face, status = preprocess_image(frame, FaceSettings(detect=detect))
    assert status == expected
    if detect == "never":
        np.testing.assert_array_equal(
            face[..., 0], cv2.resize(_grey(frame), (48, 48), interpolation=cv2.INTER_AREA))


def test_small_crops_are_resized_whole_in_auto_mode():
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 256, (100, 100), dtype=np.uint8)
    face, status = preprocess_image(crop, FaceSettings())
    assert status == "whole"
    np.testing.assert_array_equal(face[..., 0], cv2.resize(crop, (48, 48), interpolation=cv2.INTER_AREA))
    tiny = rng.integers(0, 256, (30, 30), dtype=np.uint8)
    face, _ = preprocess_image(tiny, FaceSettings())
    np.testing.assert_array_equal(face[..., 0], cv2.resize(tiny, (48, 48), interpolation=cv2.INTER_LINEAR))
    same, status = preprocess_image(crop[:48, :48], FaceSettings(colour=True))
    assert status == "whole" and same.shape == (48, 48, 3)
    np.testing.assert_array_equal(same, np.repeat(crop[:48, :48, None], 3, axis=2))


def test_given_box_is_cropped_and_clipped():
    image = np.zeros((100, 120), dtype=np.uint8)
    image[10:40, 20:60] = 255
    face, status = preprocess_image(image, FaceSettings(), box=(20, 10, 40, 30))
    assert status == "given_box" and face.min() == 255
    face, status = preprocess_image(image, FaceSettings(), box=(100, 80, 50, 50))
    assert status == "given_box"
    np.testing.assert_array_equal(face[..., 0], cv2.resize(image[80:, 100:], (48, 48), interpolation=cv2.INTER_LINEAR))
    face, status = preprocess_image(image, FaceSettings(), box=(500, 500, 10, 10))
    assert face is None and status == "no_face"


def test_preprocess_image_rejects_bad_arrays():
    with pytest.raises(ValueError, match="uint8"):
        preprocess_image(np.zeros((48, 48), np.float32))
    with pytest.raises(ValueError, match="shape"):
        preprocess_image(np.zeros((48, 48, 2), np.uint8))


def test_crop_helpers_shared_with_prediction():
    assert faces.center_box(480, 640) == (80, 0, 480, 480)
    assert faces.center_box(300, 200) == (0, 50, 200, 200)
    big = np.zeros((3000, 4000, 3), np.uint8)
    assert faces.reduce_image(big, 1024).shape == (768, 1024, 3)
    assert faces.reduce_image(big, None) is big
    assert faces.as_uint8_image(np.zeros((5, 6, 1), np.uint8)).shape == (5, 6)
    with pytest.raises(ValueError, match="at least one pixel"):
        faces.as_uint8_image(np.zeros((0, 6), np.uint8))


def test_readers_take_the_image_extensions_decoding_reads():
    assert folder_reader.IMAGE_EXTENSIONS is faces.IMAGE_EXTENSIONS
    assert folder_reader.is_image_name("a.WEBP") and folder_reader.is_image_name("b.tiff")
    assert not folder_reader.is_image_name("readme.txt")


# ----------------------------------------------------------------------------- no face


def test_no_face_policies(tmp_path, grace_hopper, blank_frame):
    samples = [Sample(str(grace_hopper), "happiness"), Sample(str(blank_frame), "neutral")]

    skip = preprocess_samples(samples, FaceSettings(no_face="skip"), workers=1, cache_dir=False, progress=False)
    assert skip.kept.tolist() == [0]
    assert skip.images.shape == (1, 48, 48, 1)
    assert skip.skipped.as_dict() == {"no_face": 1}
    assert skip.skipped.examples["no_face"] == [str(blank_frame)]
    assert (skip.n_detected, skip.n_no_face) == (1, 1)
    assert skip.statuses.tolist() == ["detected", "no_face"]

    center = preprocess_samples(samples, FaceSettings(no_face="center"), workers=1, cache_dir=False, progress=False)
    assert center.kept.tolist() == [0, 1]
    assert not center.skipped
    assert (center.n_detected, center.n_no_face) == (1, 1)
    assert center.statuses.tolist() == ["detected", "center"]
    grey = np.asarray(Image.open(blank_frame))
    expected = cv2.resize(grey[:, 80:560], (48, 48), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(center.images[1, ..., 0], expected)
    assert center.boxes[1].tolist() == [80, 0, 480, 480]

    with pytest.raises(NoFaceError, match="blank.png"):
        preprocess_samples(samples, FaceSettings(no_face="error"), workers=1, cache_dir=False, progress=False)


# ----------------------------------------------------------------------------- decoding


@pytest.fixture()
def image_files(tmp_path) -> dict[str, Path]:
    """Good images in every awkward encoding, and broken files."""
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:60, 0:80]
    rgb = np.stack([x * 3, y * 4, (x + y) * 2], axis=-1).astype(np.uint8)
    files = {}

    files["grey.png"] = tmp_path / "grey.png"
    Image.fromarray(rgb[..., 0]).save(files["grey.png"])
    files["grey16.png"] = tmp_path / "grey16.png"
    Image.fromarray(rng.integers(0, 65536, (60, 80)).astype(np.uint16)).save(files["grey16.png"])
    files["rgb16.png"] = tmp_path / "rgb16.png"
    cv2.imwrite(str(files["rgb16.png"]), rng.integers(0, 65536, (60, 80, 3)).astype(np.uint16))
    files["rgba.png"] = tmp_path / "rgba.png"
    alpha = np.zeros((60, 80), np.uint8)
    alpha[:, 40:] = 255
    alpha[:30, :40] = 128
    Image.fromarray(np.dstack([rgb, alpha])).save(files["rgba.png"])
    files["palette.png"] = tmp_path / "palette.png"
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(files["palette.png"])
    files["palette.tiff"] = tmp_path / "palette.tiff"
    Image.fromarray(rgb[..., 1]).convert("P").save(files["palette.tiff"])
    files["cmyk.jpg"] = tmp_path / "cmyk.jpg"
    Image.fromarray(rgb).convert("CMYK").save(files["cmyk.jpg"], quality=95)
    files["photo.jpg"] = tmp_path / "photo.jpg"
    Image.fromarray(rgb).save(files["photo.jpg"], quality=95)

    data = files["photo.jpg"].read_bytes()
    files["truncated.jpg"] = tmp_path / "truncated.jpg"
    files["truncated.jpg"].write_bytes(data[: len(data) // 2])
    files["empty.jpg"] = tmp_path / "empty.jpg"
    files["empty.jpg"].write_bytes(b"")
    files["text.jpg"] = tmp_path / "text.jpg"
    files["text.jpg"].write_text("this is not a picture\n")
    png = (tmp_path / "grey.png").read_bytes()
    files["corrupt.png"] = tmp_path / "corrupt.png"
    files["corrupt.png"].write_bytes(png[:60] + bytes(rng.integers(0, 256, len(png) - 60, dtype=np.uint8)))
    return files


def test_decode_gives_uint8_rgb_for_every_encoding(image_files):
    for name in ("grey.png", "grey16.png", "rgb16.png", "rgba.png", "palette.png", "palette.tiff",
                 "cmyk.jpg", "photo.jpg"):
        image = decode_image(image_files[name])
        assert image.shape == (60, 80, 3), name
        assert image.dtype == np.uint8, name


def test_decode_values(image_files):
    grey = decode_image(image_files["grey.png"])
    np.testing.assert_array_equal(grey[..., 0], grey[..., 2])
    np.testing.assert_array_equal(grey[..., 0], np.asarray(Image.open(image_files["grey.png"])))

    raw16 = np.asarray(Image.open(image_files["grey16.png"])).astype(np.float64)
    np.testing.assert_array_equal(decode_image(image_files["grey16.png"])[..., 0],
                                  np.rint(raw16 / 257).astype(np.uint8))
    raw_rgb16 = cv2.cvtColor(cv2.imread(str(image_files["rgb16.png"]), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)
    diff = decode_image(image_files["rgb16.png"]).astype(int) - raw_rgb16.astype(np.float64) / 257
    assert np.abs(diff).max() <= 1.0

    rgba = np.asarray(Image.open(image_files["rgba.png"]))
    decoded = decode_image(image_files["rgba.png"])
    np.testing.assert_array_equal(decoded[:, 40:], rgba[:, 40:, :3])
    assert decoded[30:, :40].max() == 0
    np.testing.assert_allclose(decoded[:30, :40], rgba[:30, :40, :3].astype(np.float64) * 128 / 255, atol=1)

    for name in ("palette.png", "palette.tiff"):
        np.testing.assert_array_equal(decode_image(image_files[name]), _rgb(image_files[name]))

    original = np.asarray(Image.open(image_files["photo.jpg"]).convert("RGB")).astype(int)
    assert np.abs(decode_image(image_files["cmyk.jpg"]).astype(int) - original).mean() < 6


def test_decode_bytes_equals_decode_path(image_files):
    path = image_files["photo.jpg"]
    np.testing.assert_array_equal(decode_image(path.read_bytes()), decode_image(path))
    with pytest.raises(ImageDecodeError) as error:
        decode_image(b"")
    assert error.value.reason == "empty_file" and error.value.source == "<bytes>"


@pytest.mark.parametrize(
    "name, reason",
    [
        ("truncated.jpg", "truncated_image"),
        ("empty.jpg", "empty_file"),
        ("text.jpg", "unreadable_image"),
        ("corrupt.png", "corrupt_image"),
    ],
)
def test_decode_errors_name_the_reason_and_file(image_files, name, reason):
    with pytest.raises(ImageDecodeError) as error:
        decode_image(image_files[name])
    assert error.value.reason == reason
    assert name in str(error.value) and "\n" not in str(error.value)
    assert isinstance(error.value, ValueError)


def test_decode_missing_file(tmp_path):
    with pytest.raises(ImageDecodeError) as error:
        decode_image(tmp_path / "nope.png")
    assert error.value.reason == "missing_file"


def test_decode_errors_survive_pickling():
    import pickle

    error = pickle.loads(pickle.dumps(ImageDecodeError("truncated_image", "a.jpg")))
    assert (error.reason, error.source) == ("truncated_image", "a.jpg")
    assert pickle.loads(pickle.dumps(NoFaceError("b.png"))).source == "b.png"


def test_bad_files_are_counted_skips_and_the_rest_processed(image_files):
    names = list(image_files)
    samples = [Sample(str(image_files[n]), "happiness") for n in names]
    result = preprocess_samples(samples, FaceSettings(), workers=1, cache_dir=False, progress=False)
    bad = {"truncated.jpg": "truncated_image", "empty.jpg": "empty_file",
           "text.jpg": "unreadable_image", "corrupt.png": "corrupt_image"}
    good = [i for i, n in enumerate(names) if n not in bad]
    assert result.kept.tolist() == good
    assert result.images.shape == (len(good), 48, 48, 1)
    assert result.skipped.as_dict() == dict.fromkeys(bad.values(), 1)
    for name, reason in bad.items():
        assert result.skipped.examples[reason] == [str(image_files[name])]
        assert result.statuses[names.index(name)] == reason
    for row, index in enumerate(good):
        expected = cv2.resize(_grey(decode_image(image_files[names[index]])), (48, 48), interpolation=cv2.INTER_AREA)
        np.testing.assert_array_equal(result.images[row, ..., 0], expected)


def test_large_images_are_reduced_and_given_boxes_follow(tmp_path):
    image = np.full((3000, 4000, 3), 40, dtype=np.uint8)
    image[1000:1600, 2000:2600] = 250
    path = tmp_path / "big.jpg"
    Image.fromarray(image).save(path, quality=90)
    decoded, original = read_image(path, max_side=1024)
    assert original == (3000, 4000)
    assert decoded.shape == (768, 1024, 3)
    assert decode_image(path).shape == (3000, 4000, 3)

    result = preprocess_samples([Sample(str(path), "happiness", box=(2000, 1000, 600, 600))], FaceSettings(),
                                workers=1, cache_dir=False, progress=False)
    assert result.statuses.tolist() == ["given_box"]
    assert result.images[0].min() > 200
    assert np.abs(result.boxes[0] - np.array([2000, 1000, 600, 600])).max() <= 4


def test_inline_pixels_are_used_directly():
    rng = np.random.default_rng(2)
    pixels = rng.integers(0, 256, (48, 48), dtype=np.uint8)
    samples = [
        Sample("fer2013.csv#row=1", "anger", pixels=pixels),
        Sample("fer2013.csv#row=2", "anger", pixels=pixels.reshape(-1).astype(np.int64)),
        Sample("fer2013.csv#row=3", "anger", pixels=np.arange(10)),
    ]
    result = preprocess_samples(samples, FaceSettings(), workers=1, cache_dir=False, progress=False)
    assert result.kept.tolist() == [0, 1]
    np.testing.assert_array_equal(result.images[0, ..., 0], pixels)
    np.testing.assert_array_equal(result.images[1, ..., 0], pixels)
    assert result.skipped.as_dict() == {"bad_pixels": 1}


def test_empty_sample_list():
    result = preprocess_samples([], FaceSettings(colour=True), workers=1, cache_dir=False, progress=False)
    assert result.images.shape == (0, 48, 48, 3) and result.kept.size == 0


# ----------------------------------------------------------------------------- cache


def test_second_run_is_served_from_the_cache(tmp_path, grace_hopper, blank_frame, monkeypatch):
    cache = tmp_path / "cache"
    samples = [Sample(str(grace_hopper), "happiness"), Sample(str(blank_frame), "neutral")]
    settings = FaceSettings()
    first = preprocess_samples(samples, settings, workers=1, cache_dir=cache, progress=False)
    assert not first.from_cache
    entries = list(cache.iterdir())
    assert [p.suffix for p in entries] == [".npz"]

    calls = []

    def counting_detect(self, grey):
        calls.append(grey.shape)
        return []

    def no_decode(*args, **kwargs):
        raise AssertionError("the cached run decoded an image")

    monkeypatch.setattr(FaceDetector, "detect", counting_detect)
    monkeypatch.setattr(pool, "read_image", no_decode)
    second = preprocess_samples(samples, settings, workers=1, cache_dir=cache, progress=False)
    assert second.from_cache and calls == []
    np.testing.assert_array_equal(second.images, first.images)
    np.testing.assert_array_equal(second.kept, first.kept)
    np.testing.assert_array_equal(second.boxes, first.boxes)
    assert second.statuses.tolist() == first.statuses.tolist()
    assert second.skipped.as_dict() == first.skipped.as_dict() == {"no_face": 1}
    assert second.skipped.examples == first.skipped.examples
    assert (second.n_detected, second.n_no_face) == (1, 1)
    monkeypatch.undo()

    other = preprocess_samples(samples, FaceSettings(margin=0.2), workers=1, cache_dir=cache, progress=False)
    assert not other.from_cache and len(list(cache.glob("*.npz"))) == 2
    assert not list(cache.glob("*.tmp"))


def test_cache_key_follows_file_changes(tmp_path):
    path = tmp_path / "face.png"
    Image.fromarray(np.full((48, 48), 10, np.uint8)).save(path)
    samples = [Sample(str(path), "happiness")]
    key = faces.cache_key(samples, FaceSettings())
    assert faces.cache_key(samples, FaceSettings()) == key
    assert faces.cache_key(samples, FaceSettings(colour=True)) != key
    assert faces.cache_key(samples, FaceSettings(), needs_detection=True) != key
    Image.fromarray(np.full((48, 48), 200, np.uint8)).save(path)
    assert faces.cache_key(samples, FaceSettings()) != key

    cache = tmp_path / "cache"
    first = preprocess_samples(samples, FaceSettings(), workers=1, cache_dir=cache, progress=False)
    Image.fromarray(np.full((48, 48), 77, np.uint8)).save(path)
    second = preprocess_samples(samples, FaceSettings(), workers=1, cache_dir=cache, progress=False)
    assert not second.from_cache
    assert first.images.max() == 200 and second.images.max() == 77


def test_damaged_cache_entries_are_recomputed(tmp_path):
    path = tmp_path / "face.png"
    Image.fromarray(np.full((48, 48), 10, np.uint8)).save(path)
    samples = [Sample(str(path), "happiness")]
    cache = tmp_path / "cache"
    preprocess_samples(samples, FaceSettings(), workers=1, cache_dir=cache, progress=False)
    (entry,) = cache.glob("*.npz")
    entry.write_bytes(b"garbage")
    again = preprocess_samples(samples, FaceSettings(), workers=1, cache_dir=cache, progress=False)
    assert not again.from_cache and again.images.max() == 10
    assert preprocess_samples(samples, FaceSettings(), workers=1, cache_dir=cache, progress=False).from_cache


def test_cache_can_be_disabled(tmp_path, monkeypatch):
    path = tmp_path / "face.png"
    Image.fromarray(np.full((48, 48), 10, np.uint8)).save(path)
    cache = tmp_path / "env-cache"
    monkeypatch.setenv("CSA_KERAS_CACHE", str(cache))
    assert faces.default_cache_dir() == cache
    result = preprocess_samples([Sample(str(path), "anger")], FaceSettings(), workers=1, cache_dir=False,
                                progress=False)
    assert result.cache_path is None and not cache.exists()
    preprocess_samples([Sample(str(path), "anger")], FaceSettings(), workers=1, progress=False)
    assert len(list(cache.glob("*.npz"))) == 1
    monkeypatch.setenv("CSA_KERAS_CACHE", "off")
    assert faces.default_cache_dir() is None


# ----------------------------------------------------------------------------- parallel


def test_two_workers_give_the_same_arrays_as_one(tmp_path, hopper_rgb, blank_frame):
    samples = []
    for i, (scale, x, y) in enumerate([(0.5, 20, 10), (0.7, 250, 40), (0.4, 400, 200), (0.6, 100, 120)]):
        path = tmp_path / f"frame{i}.jpg"
        Image.fromarray(_canvas(hopper_rgb, scale, x, y)).save(path, quality=92)
        samples.append(Sample(str(path), "happiness"))
    samples.append(Sample(str(blank_frame), "neutral"))
    samples.append(Sample(str(tmp_path / "missing.jpg"), "neutral"))
    settings = FaceSettings(no_face="center")
    one = preprocess_samples(samples, settings, workers=1, cache_dir=False, progress=False)
    two = preprocess_samples(samples, settings, workers=2, cache_dir=False, progress=False)
    assert one.statuses.tolist() == ["detected"] * 4 + ["center", "missing_file"]
    assert two.statuses.tolist() == one.statuses.tolist()
    np.testing.assert_array_equal(two.images, one.images)
    np.testing.assert_array_equal(two.boxes, one.boxes)
    assert two.skipped.as_dict() == one.skipped.as_dict() == {"missing_file": 1}


def test_no_face_error_propagates_from_workers(tmp_path, blank_frame, grace_hopper):
    samples = [Sample(str(grace_hopper), "happiness"), Sample(str(blank_frame), "neutral")]
    with pytest.raises(NoFaceError, match="blank.png"):
        preprocess_samples(samples, FaceSettings(no_face="error"), workers=2, cache_dir=False, progress=False)


def test_bad_worker_count():
    with pytest.raises(ValueError, match="workers"):
        preprocess_samples([], FaceSettings(), workers=0)


def test_spawned_workers_give_the_same_arrays(tmp_path, hopper_rgb, monkeypatch):
    """The start method used once TensorFlow is loaded (a fork would copy its threads)."""
    import multiprocessing

    samples = []
    for i, (scale, x, y) in enumerate([(0.5, 20, 10), (0.6, 300, 100)]):
        path = tmp_path / f"frame{i}.png"
        Image.fromarray(_canvas(hopper_rgb, scale, x, y)).save(path)
        samples.append(Sample(str(path), "happiness"))
    one = preprocess_samples(samples, FaceSettings(), workers=1, cache_dir=False, progress=False)
    monkeypatch.setattr(pool, "pool_context", lambda: multiprocessing.get_context("spawn"))
    two = preprocess_samples(samples, FaceSettings(), workers=2, cache_dir=False, progress=False)
    assert two.statuses.tolist() == ["detected", "detected"]
    np.testing.assert_array_equal(two.images, one.images)


def test_a_min_size_above_the_window_searches_a_reduced_copy_and_finds_the_same_face(hopper_rgb, monkeypatch):
    grey = cv2.cvtColor(hopper_rgb, cv2.COLOR_RGB2GRAY)
    full = FaceDetector(min_size=24).detect(grey)
    searched = []
    detector = FaceDetector(min_size=48)
    detect = detector.classifier.detectMultiScale

    def spy(image, **kwargs):
        searched.append((image.shape, kwargs["minSize"]))
        return detect(image, **kwargs)

    monkeypatch.setattr(detector, "classifier", type("Spy", (), {"detectMultiScale": staticmethod(spy)})())
    reduced = detector.detect(grey)
    height, width = grey.shape
    assert searched == [((round(height / 2), round(width / 2)), (24, 24))]
    assert len(full) == len(reduced) == 1
    (x, y, w, h), (rx, ry, rw, rh) = full[0], reduced[0]
    inter = max(0, min(x + w, rx + rw) - max(x, rx)) * max(0, min(y + h, ry + rh) - max(y, ry))
    assert inter / (w * h + rw * rh - inter) > 0.8
    assert rx >= 0 and ry >= 0 and rx + rw <= width and ry + rh <= height


def test_at_the_window_size_nothing_is_reduced(hopper_rgb):
    grey = cv2.cvtColor(hopper_rgb, cv2.COLOR_RGB2GRAY)
    detector = FaceDetector(min_size=24)
    assert detector.window == 24
    direct = detector.classifier.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24))
    assert detector.detect(grey) == [tuple(int(v) for v in box) for box in direct]
