"""Property-based tests: whatever bytes a dataset holds, every reader and the decoder give counted skips or one line.

Random bytes, image files with a real header and random bytes after it,
small real images with bytes changed or cut, random file names and random
CSV rows and label lines: each either becomes a sample or is counted under
a documented skip reason naming its file or row, or the whole read ends in
one ``ValueError`` line. Example counts are small so the file runs in
seconds; hypothesis keeps no database here.
"""
from __future__ import annotations

import csv
import io
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from csa_keras.data.faces import DECODE_REASONS, ImageDecodeError, decode_image
from csa_keras.data.loader import load_dataset
from csa_keras.data.readers import read_affectnet, read_fer2013, read_rafdb

PROPERTY = settings(max_examples=30, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

LOADED = set(DECODE_REASONS) | {"no_face"}
"""Skips the loader adds to any reader's: decoding and the no-face policy."""

READER_REASONS = {
    "folder": {"unknown_class_folder", "not_an_image_extension", "image_outside_class_folder",
               "empty_class_folder", "not_a_regular_file"},
    "ckplus": {"unlabelled_sequence", "unknown_label", "ambiguous_label", "missing_image",
               "not_an_image_extension", "not_a_regular_file"},
    "fer2013-csv": {"bad_encoding", "bad_row", "unknown_label", "wrong_pixel_count", "non_numeric_pixels",
                    "pixel_out_of_range", "unknown_usage"},
    "rafdb": {"bad_encoding", "bad_row", "unknown_label", "unknown_split", "missing_image"},
    "affectnet": {"dropped_contempt", "dropped_none", "dropped_uncertain", "dropped_no_face", "unknown_label",
                  "bad_encoding", "bad_row", "bad_box", "missing_image"},
    "jaffe": {"unparsable_name", "unknown_label", "not_an_image_extension", "not_a_regular_file"},
}
"""The skip reasons each format documents (docs/datasets.md)."""


def _seed_images() -> list[bytes]:
    """Small real images in every format and awkward mode the decoder reads."""
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8))
    images = [(rgb, "PNG"), (rgb, "JPEG"), (rgb, "BMP"), (rgb, "WEBP"), (rgb.convert("P"), "GIF"),
              (rgb.convert("L"), "TIFF"), (rgb.convert("RGBA"), "PNG"), (rgb.convert("CMYK"), "JPEG"),
              (Image.fromarray(rng.integers(0, 65536, (12, 16)).astype(np.uint16)), "PNG")]
    out = []
    for image, kind in images:
        buffer = io.BytesIO()
        image.save(buffer, kind)
        out.append(buffer.getvalue())
    return out


SEEDS = _seed_images()
MAGIC = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM", b"II*\x00", b"MM\x00*", b"GIF89a", b"RIFF\x00\x00\x00\x00WEBP",
         b"P5\n", b"#?RADIANCE\n"]


def _mutated(seed: bytes, edits: list[tuple[int, int]]) -> bytes:
    data = bytearray(seed)
    for position, value in edits:
        data[position % len(data)] = value
    return bytes(data)


image_bytes = st.one_of(
    st.binary(max_size=600),
    st.builds(bytes.__add__, st.sampled_from(MAGIC), st.binary(max_size=600)),
    st.builds(_mutated, st.sampled_from(SEEDS), st.lists(st.tuples(st.integers(0, 10**5), st.integers(0, 255)),
                                                          min_size=1, max_size=6)),
    st.builds(lambda seed, cut: seed[:cut], st.sampled_from(SEEDS), st.integers(0, 2000)),
)
"""Bytes that are not, or not quite, an image."""

file_stems = st.text(st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)),
                     min_size=1, max_size=12).filter(lambda s: not s.startswith("."))


def _one_line(error: BaseException) -> None:
    assert isinstance(error, ValueError) and "\n" not in str(error) and len(str(error)) < 600, repr(error)


def _load(root: Path, format: str):
    """``load_dataset`` in this process without cache, or ``None`` after checking its error is one line."""
    try:
        return load_dataset(root, format=format, cache_dir=False, workers=1, progress=False)
    except ValueError as error:
        _one_line(error)
        return None


def _check_reasons(dataset, format: str) -> None:
    assert set(dataset.skipped.counts) <= READER_REASONS[format] | LOADED, dataset.skipped


@PROPERTY
@given(data=image_bytes)
def test_decoding_any_bytes_gives_an_image_or_a_named_reason(data):
    try:
        image = decode_image(data, max_side=64)
    except ImageDecodeError as error:
        assert error.reason in DECODE_REASONS and "\n" not in str(error)
    else:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 and max(image.shape) <= 64


@PROPERTY
@given(files=st.lists(st.tuples(st.sampled_from(["anger", "Happy", "bored", "train/fear"]), file_stems,
                                st.sampled_from([".png", ".JPG", ".tif", ".txt", ""]), image_bytes),
                      min_size=1, max_size=5))
def test_folder_reader_counts_every_file(files):
    with tempfile.TemporaryDirectory() as folder:
        root, written = Path(folder) / "faces", 0
        for label, stem, suffix, data in files:
            path = root / label / (stem + suffix)
            if not path.parent.is_dir():
                path.parent.mkdir(parents=True)
            if path.exists():
                continue
            path.write_bytes(data)
            written += 1
        dataset = _load(root, "folder")
        if dataset is not None:
            _check_reasons(dataset, "folder")
            assert len(dataset.labels) + dataset.skipped.total == written


@PROPERTY
@given(files=st.lists(st.tuples(st.one_of(file_stems, st.from_regex(r"\A[A-Z]{2}\.[A-Z]{2}[0-9]\.[0-9]{1,3}\Z")),
                                st.sampled_from([".tiff", ".tif", ".png", ""]), image_bytes), min_size=1, max_size=4))
def test_jaffe_reader_counts_every_file(files):
    with tempfile.TemporaryDirectory() as folder:
        root, written = Path(folder), 0
        for stem, suffix, data in files:
            path = root / (stem + suffix)
            if not path.exists():
                path.write_bytes(data)
                written += 1
        dataset = _load(root, "jaffe")
        if dataset is not None:
            _check_reasons(dataset, "jaffe")
            assert len(dataset.labels) + dataset.skipped.total == written


@PROPERTY
@given(frames=st.lists(image_bytes, min_size=0, max_size=4), emotion=st.binary(max_size=40),
       extra=st.sampled_from(["", "notes.txt", "S010_001_x.png/"]))
def test_ckplus_reader_never_fails_on_content(frames, emotion, extra):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        sequence = root / "cohn-kanade-images" / "S010" / "001"
        sequence.mkdir(parents=True)
        for i, data in enumerate(frames):
            (sequence / f"S010_001_{i:08d}.png").write_bytes(data)
        if extra:
            (sequence / extra.rstrip("/")).mkdir() if extra.endswith("/") else (sequence / extra).write_text("x")
        labels = root / "Emotion" / "S010" / "001"
        labels.mkdir(parents=True)
        (labels / "S010_001_00000003_emotion.txt").write_bytes(emotion)
        dataset = _load(root, "ckplus")
        if dataset is not None:
            _check_reasons(dataset, "ckplus")


def _text_lines(data: bytes) -> list[str]:
    """The lines a reader sees in ``data``: UTF-8 (bad bytes kept aside), a leading BOM dropped, split at line ends."""
    text = data.decode("utf-8-sig", "surrogateescape")
    return re.split(r"\r\n|\r|\n", text[:-1] if text.endswith(("\n", "\r")) else text) if text else []


def _records(data: bytes) -> int:
    """Non-empty CSV records in ``data`` after its header, as the ``csv`` module splits them."""
    text = data.decode("utf-8-sig", "surrogateescape")
    return max(0, sum(1 for row in csv.reader(io.StringIO(text, newline="")) if row) - 1)


row_bytes = st.one_of(st.binary(max_size=80), st.text(max_size=60).map(lambda s: s.encode("utf-8", "surrogatepass")))


@PROPERTY
@given(lines=st.lists(st.one_of(row_bytes, st.sampled_from([b"train_00001.jpg 4", b"test_00002.jpg 9", b"x 1"])),
                      max_size=8), joiner=st.sampled_from([b"\n", b"\r\n", b"\r"]))
def test_rafdb_reader_counts_every_line(lines, joiner):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "basic" / "EmoLabel").mkdir(parents=True)
        data = joiner.join(lines)
        (root / "basic" / "EmoLabel" / "list_patition_label.txt").write_bytes(data)
        (root / "basic" / "Image" / "aligned").mkdir(parents=True)
        (root / "basic" / "Image" / "aligned" / "train_00001_aligned.jpg").write_bytes(SEEDS[1])
        try:
            catalogue = read_rafdb(root)
        except ValueError as error:
            _one_line(error)
            return
        assert set(catalogue.skipped.counts) <= READER_REASONS["rafdb"]
        assert len(catalogue.samples) + catalogue.skipped.total == sum(1 for line in _text_lines(data) if line.split())


GOOD_FER = "3," + " ".join(["7"] * 2304) + ",Training"


@PROPERTY
@given(before=st.lists(st.just(GOOD_FER), max_size=3),
       row=row_bytes.filter(lambda b: not set(b) & set(b"\r\n\"")), after=st.lists(st.just(GOOD_FER), max_size=2))
def test_fer2013_skips_name_the_right_row(before, row, after):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fer2013.csv"
        path.write_bytes(b"\n".join([b"emotion,pixels,Usage", *(r.encode() for r in before), row,
                                     *(r.encode() for r in after)]) + b"\n")
        try:
            catalogue = read_fer2013(path)
        except ValueError as error:
            _one_line(error)
            assert not before and not after
            return
        assert set(catalogue.skipped.counts) <= READER_REASONS["fer2013-csv"]
        where = f"{path}#row={len(before) + 1}"
        sources = [s.source for s in catalogue.samples]
        examples = [source for found in catalogue.skipped.examples.values() for source in found]
        assert len(catalogue.samples) + catalogue.skipped.total == len(before) + len(after) + (row != b"")
        assert row == b"" or (where in sources) != (where in examples)


@PROPERTY
@given(body=st.lists(row_bytes, max_size=6), header=st.sampled_from([b"emotion,pixels,Usage", b"emotion,pixels", b""]))
def test_fer2013_any_rows_give_skips_or_one_line(body, header):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fer2013.csv"
        data = b"\n".join([header, *body])
        path.write_bytes(data)
        try:
            catalogue = read_fer2013(path)
        except ValueError as error:
            _one_line(error)
            return
        assert set(catalogue.skipped.counts) <= READER_REASONS["fer2013-csv"]
        assert len(catalogue.samples) + catalogue.skipped.total == _records(data)


@PROPERTY
@given(before=st.lists(row_bytes.filter(lambda b: not set(b) & set(b"\r\n\"")), max_size=4))
def test_fer2013_an_unparsable_row_is_one_line_naming_it(before):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fer2013.csv"
        path.write_bytes(b"\n".join([b"emotion,pixels", *before, b"3," + b"7 " * 70_000, GOOD_FER.encode()]))
        with pytest.raises(ValueError) as error:
            read_fer2013(path)
        _one_line(error.value)
        assert f"row {len(before) + 1}: field larger than field limit" in str(error.value)


AFFECTNET_HEADER = (b"subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,"
                    b"valence,arousal")


AFFECTNET_ROWS = [b"1/a.jpg,0,0,10,10,,1,0,0", b"1/b.jpg,0,0,0,10,,1,0,0", b"1/a.jpg,1e999,0,10,10,,3,0,0",
                  b"1/a.jpg,0,0,9,9,,8,0,0", b"../../a.jpg,0,0,9,9,,2,0,0"]


@PROPERTY
@given(body=st.lists(st.one_of(row_bytes, st.sampled_from(AFFECTNET_ROWS)), max_size=6))
def test_affectnet_reader_counts_every_row(body):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "Manually_Annotated_file_lists").mkdir()
        (root / "Manually_Annotated_Images" / "1").mkdir(parents=True)
        (root / "Manually_Annotated_Images" / "1" / "a.jpg").write_bytes(SEEDS[1])
        data = b"\n".join([AFFECTNET_HEADER, *body])
        (root / "Manually_Annotated_file_lists" / "training.csv").write_bytes(data)
        try:
            catalogue = read_affectnet(root)
        except ValueError as error:
            _one_line(error)
            return
        assert set(catalogue.skipped.counts) <= READER_REASONS["affectnet"]
        assert len(catalogue.samples) + catalogue.skipped.total == _records(data)
