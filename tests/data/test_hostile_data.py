"""Hostile files: decompression bombs, special files and broken label files.

Each ends as a counted skip with a reason or one ``ValueError`` line, in
bounded memory and time. Bombs are built by hand (a PNG is a header, one
IDAT of deflated zero rows and an end; no big array is ever made), decoded
in a fresh interpreter whose peak RSS is measured. FIFOs are watched
(``fifos.watched_fifos``): code that opens one fails its test instead of
hanging it.
"""
from __future__ import annotations

import io
import json
import socket
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from fifos import watched_fifos
from PIL import Image, ImageOps

from csa_keras.data.faces import MAX_DECODED_BYTES, MAX_FILE_BYTES, ImageDecodeError, decode_image, read_image
from csa_keras.data.loader import load_dataset
from csa_keras.data.readers import read_affectnet, read_catalogue, read_ckplus, read_fer2013, read_jaffe, read_rafdb
from csa_keras.data.readers import rows as rows_module

BOMB_GROWTH_MB = 64
"""The most a refused bomb may grow the process: half the decode budget, so nothing was decoded."""

UNDER_BUDGET_GROWTH_MB = 300
"""The most decoding an image just under the budget may grow the process (the image, its uint8 copy, bands)."""

SPARSE_BYTES = 3 * 2**30


def _deflated_zero_rows(rows: int, row_bytes: int) -> bytes:
    """``rows`` rows of ``row_bytes`` zero bytes, deflated a block of rows at a time."""
    stream, row = zlib.compressobj(9), bytes(row_bytes)
    per_block, out = max(1, 2**24 // row_bytes), []
    while rows:
        n = min(rows, per_block)
        out.append(stream.compress(row * n))
        rows -= n
    return b"".join(out) + stream.flush()


def png_bomb(path: Path, width: int, height: int, colour_type: int, bit_depth: int) -> Path:
    """A real PNG of zeros (grey ``colour_type=0`` or RGB ``2``), whatever its size, in a few hundred KB."""
    channels = {0: 1, 2: 3}[colour_type]
    idat = _deflated_zero_rows(height, 1 + width * channels * bit_depth // 8)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def tiff_bomb(path: Path, width: int, height: int) -> Path:
    """A real 8-bit grey TIFF of zeros in one deflated strip."""
    strip = _deflated_zero_rows(height, width)
    tags = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 8), (262, 3, 1),
            (273, 4, 8 + 2 + 12 * 9 + 4), (277, 3, 1), (278, 4, height), (279, 4, len(strip))]
    ifd = struct.pack("<H", len(tags)) + b"".join(
        struct.pack("<HHI", tag, kind, 1) + (struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value))
        for tag, kind, value in tags)
    path.write_bytes(b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + strip)
    return path


def bmp_bomb(path: Path, width: int, height: int) -> Path:
    """A real 8-bit palette BMP of zeros, run-length encoded (RLE8): a 1 MB file with a huge header size."""
    row = b"".join(struct.pack("BB", min(255, width - x), 0) for x in range(0, width, 255)) + b"\x00\x00"
    pixels = row * height + b"\x00\x01"
    palette = b"".join(struct.pack("BBBB", i, i, i, 0) for i in range(256))
    offset = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(pixels), 2835, 2835, 256, 0)
    path.write_bytes(b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + info + palette + pixels)
    return path


def sparse_file(path: Path, size: int = SPARSE_BYTES) -> Path:
    """A file of ``size`` zero bytes that takes no disk space."""
    with open(path, "wb") as handle:
        handle.truncate(size)
    return path


BOMBS = {
    "16-bit grey PNG 13000x13000": lambda d: png_bomb(d / "grey16.png", 13000, 13000, 0, 16),
    "8-bit RGB PNG 10000x10000": lambda d: png_bomb(d / "rgb.png", 10000, 10000, 2, 8),
    "grey TIFF 12000x12000": lambda d: tiff_bomb(d / "grey.tif", 12000, 12000),
    "RLE8 BMP 12000x12000": lambda d: bmp_bomb(d / "rle.bmp", 12000, 12000),
    "3 GB non-image named .png": lambda d: sparse_file(d / "sparse.png"),
}

_MEASURE = textwrap.dedent("""
    import json, resource, sys
    from csa_keras.data.faces import ImageDecodeError, read_image
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        image, _ = read_image(sys.argv[1], max_side=1024)
        outcome = {"shape": list(image.shape)}
    except ImageDecodeError as error:
        outcome = {"reason": error.reason, "message": str(error)}
    outcome["grown_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    print(json.dumps(outcome))
""")


def measure_decode(path: Path) -> dict:
    """``read_image(path, max_side=1024)`` in a fresh interpreter: its outcome and peak RSS growth in MB."""
    result = subprocess.run([sys.executable, "-c", _MEASURE, str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def bomb_folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bombs")


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_a_bomb_is_refused_from_its_header_in_bounded_memory(bomb_folder, name):
    path = BOMBS[name](bomb_folder)
    outcome = measure_decode(path)
    assert outcome.get("reason") == "image_too_large", outcome
    assert "\n" not in outcome["message"] and path.name in outcome["message"]
    assert "bytes" in outcome["message"]
    assert outcome["grown_mb"] < BOMB_GROWTH_MB, outcome


def test_an_image_just_under_the_budget_is_decoded_without_float_copies(tmp_path):
    """8000x8000 16-bit grey is 128 MB decoded; float64 would have been 512 MB more."""
    assert MAX_DECODED_BYTES >= 8000 * 8000 * 2
    outcome = measure_decode(png_bomb(tmp_path / "grey16.png", 8000, 8000, 0, 16))
    assert outcome.get("shape") == [1024, 1024, 3], outcome
    assert outcome["grown_mb"] < UNDER_BUDGET_GROWTH_MB, outcome


def test_a_file_over_the_cap_is_not_read_even_as_bytes(tmp_path):
    path = sparse_file(tmp_path / "big.jpg", MAX_FILE_BYTES + 1)
    with pytest.raises(ImageDecodeError) as error:
        decode_image(path)
    assert error.value.reason == "image_too_large" and str(MAX_FILE_BYTES + 1) in str(error.value)


def test_opencv_formats_are_checked_from_their_header(tmp_path):
    path = tmp_path / "small.hdr"
    assert cv2.imwrite(str(path), np.full((20, 30, 3), 0.5, np.float32))
    image, size = read_image(path.read_bytes())
    assert image.shape == (20, 30, 3) and size == (20, 30)
    bomb = b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 30000 +X 20000\n" + bytes(64)
    with pytest.raises(ImageDecodeError) as error:
        read_image(bomb)
    assert error.value.reason == "image_too_large" and "20000x30000" in str(error.value)


def test_16_bit_pixels_round_as_before():
    values = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, "PNG")
    decoded = decode_image(buffer.getvalue())
    np.testing.assert_array_equal(decoded[..., 0], np.rint(values / 257).astype(np.uint8))
    np.testing.assert_array_equal(decoded[..., 0], decoded[..., 2])


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_as_pillow_applies_it(orientation):
    pixels = np.random.default_rng(orientation).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG", exif=exif)
    image, (height, width) = read_image(buffer.getvalue())
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(buffer.getvalue()))).convert("RGB"))
    np.testing.assert_array_equal(image, expected)
    assert (height, width) == expected.shape[:2]


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_composited_on_black_as_pillow_pastes_it(mode):
    pixels = np.random.default_rng(0).integers(0, 256, (20, 30, len(mode)), dtype=np.uint8)
    source = Image.fromarray(pixels, mode)
    buffer = io.BytesIO()
    source.save(buffer, "PNG")
    rgba = source.convert("RGBA")
    expected = Image.new("RGB", rgba.size, (0, 0, 0))
    expected.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))
    np.testing.assert_array_equal(decode_image(buffer.getvalue()), np.asarray(expected))


# ----------------------------------------------------------------------------- special files


def _grey_png(path: Path, value: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((48, 48), value, np.uint8)).save(path)
    return path


def test_read_image_refuses_special_files_without_opening_them(tmp_path):
    with watched_fifos(tmp_path / "photo.jpg") as opened, pytest.raises(ImageDecodeError) as error:
        read_image(tmp_path / "photo.jpg")
    assert error.value.reason == "not_a_regular_file" and error.value.detail == "a FIFO"
    assert not opened.is_set()
    with pytest.raises(ImageDecodeError) as error:
        read_image("/dev/null")
    assert (error.value.reason, error.value.detail) == ("not_a_regular_file", "a character device")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "s.png"))
        with pytest.raises(ImageDecodeError) as error:
            read_image(tmp_path / "s.png")
    assert (error.value.reason, error.value.detail) == ("not_a_regular_file", "a socket")


def test_folder_reader_counts_special_files_and_the_loader_uses_the_rest(tmp_path):
    root = tmp_path / "faces"
    for label in ("anger", "happiness"):
        for i in range(2):
            _grey_png(root / label / f"{i}.png", 60 + 40 * i)
    sparse_file(root / "anger" / "huge.png")
    with watched_fifos(root / "anger" / "fifo.png", root / "happiness" / "fifo.jpg") as opened:
        catalogue = read_catalogue(root)
        dataset = load_dataset(root, cache_dir=False, workers=1, progress=False)
    assert not opened.is_set()
    assert catalogue.skipped.as_dict() == {"not_a_regular_file": 2}
    assert dataset.skipped.as_dict() == {"image_too_large": 1, "not_a_regular_file": 2}
    assert len(dataset.labels) == 4


def test_jaffe_and_ckplus_count_special_files(tmp_path):
    jaffe = tmp_path / "jaffe"
    for name in ("KA.AN1.39.tiff", "KA.HA1.29.tiff"):
        _grey_png(jaffe / name)
    ck = tmp_path / "ck"
    for seq in ("001", "002"):
        for frame in range(3):
            _grey_png(ck / "cohn-kanade-images" / "S010" / seq / f"S010_{seq}_0000000{frame}.png")
        (ck / "Emotion" / "S010" / seq).mkdir(parents=True)
    (ck / "Emotion" / "S010" / "001" / "S010_001_00000002_emotion.txt").write_text("   5.0000000e+00\n")
    fifos = (jaffe / "KA.SU1.40.tiff", ck / "cohn-kanade-images" / "S010" / "001" / "S010_001_00000009.png",
             ck / "Emotion" / "S010" / "002" / "S010_002_00000002_emotion.txt")
    with watched_fifos(*fifos) as opened:
        assert read_jaffe(jaffe).skipped.as_dict() == {"not_a_regular_file": 1}
        assert read_ckplus(ck).skipped.as_dict() == {"not_a_regular_file": 2}
    assert not opened.is_set()


def test_special_label_files_are_one_line_errors(tmp_path):
    fer_folder = tmp_path / "fer"
    fer_folder.mkdir()
    raf = tmp_path / "raf" / "basic" / "EmoLabel"
    raf.mkdir(parents=True)
    lists = tmp_path / "affectnet" / "Manually_Annotated_file_lists"
    lists.mkdir(parents=True)
    folder = tmp_path / "folder"
    _grey_png(folder / "anger" / "a.png")
    fifos = (tmp_path / "fer2013.csv", fer_folder / "fer2013.csv", raf / "list_patition_label.txt",
             lists / "training.csv", folder / "manifest.csv")
    calls = [lambda: read_catalogue(fifos[0]), lambda: read_fer2013(fifos[0]), lambda: read_catalogue(fer_folder),
             lambda: read_fer2013(fer_folder), lambda: read_rafdb(tmp_path / "raf"),
             lambda: read_affectnet(tmp_path / "affectnet"), lambda: read_catalogue(folder)]
    with watched_fifos(*fifos) as opened:
        for call in calls:
            with pytest.raises(ValueError) as error:
                call()
            assert "a FIFO, not a regular file" in str(error.value) and "\n" not in str(error.value)
    assert not opened.is_set()


def test_a_special_image_listed_by_rafdb_is_skipped_when_decoded(tmp_path):
    basic = tmp_path / "basic"
    (basic / "EmoLabel").mkdir(parents=True)
    (basic / "EmoLabel" / "list_patition_label.txt").write_text("train_00001.jpg 4\ntrain_00002.jpg 4\n")
    _grey_png(basic / "Image" / "aligned" / "train_00001_aligned.jpg")
    with watched_fifos(basic / "Image" / "aligned" / "train_00002_aligned.jpg") as opened:
        dataset = load_dataset(tmp_path, cache_dir=False, workers=1, progress=False)
    assert not opened.is_set()
    assert dataset.skipped.as_dict() == {"not_a_regular_file": 1}


# ----------------------------------------------------------------------------- label files


def _fer_rows(n: int) -> list[str]:
    return [f"3,{' '.join(['7'] * 2304)},Training" for _ in range(n)]


def test_a_csv_without_header_is_one_short_line(tmp_path):
    path = tmp_path / "fer2013.csv"
    path.write_text("\n".join(_fer_rows(3)) + "\n")
    with pytest.raises(ValueError) as error:
        read_fer2013(path)
    message = str(error.value)
    assert "\n" not in message and len(message) < len(str(path)) + 250, message
    assert str(path) in message and "emotion,pixels,Usage" in message and "'3,7 7 7" in message


def test_an_invalid_utf8_byte_skips_its_row_only(tmp_path):
    rows = ["emotion,pixels,Usage", *_fer_rows(5)]
    data = "\n".join(rows).encode()
    position = data.index(b"\n", data.index(b"\n", data.index(b"\n") + 1) + 1) + 10
    path = tmp_path / "fer2013.csv"
    path.write_bytes(data[:position] + b"\xff" + data[position + 1:])
    catalogue = read_fer2013(path)
    assert len(catalogue.samples) == 4
    assert catalogue.skipped.as_dict() == {"bad_encoding": 1}
    assert catalogue.skipped.examples["bad_encoding"] == [f"{path}#row=3"]

    raf = tmp_path / "basic" / "EmoLabel"
    raf.mkdir(parents=True)
    (raf / "list_patition_label.txt").write_bytes(b"train_00001.jpg 4\ntrain_\xff0002.jpg 4\n")
    _grey_png(tmp_path / "basic" / "Image" / "aligned" / "train_00001_aligned.jpg")
    assert read_rafdb(tmp_path).skipped.examples["bad_encoding"] == [f"{raf / 'list_patition_label.txt'}:2"]


def test_unparsable_and_endless_rows_are_one_line_errors_naming_the_row(tmp_path, monkeypatch):
    path = tmp_path / "fer2013.csv"
    path.write_text("\n".join(["emotion,pixels", *_fer_rows(2), "3," + "7 " * 100_000]) + "\n")
    with pytest.raises(ValueError, match=r"fer2013\.csv: row 3: field larger than field limit"):
        read_fer2013(path)
    monkeypatch.setattr(rows_module, "MAX_LINE_CHARS", 10_000)
    with pytest.raises(ValueError, match=r"fer2013\.csv: row 3: a line longer than 10000 characters"):
        read_fer2013(path)


def test_a_3gb_csv_without_line_breaks_is_refused_after_one_line(tmp_path):
    path = sparse_file(tmp_path / "fer2013.csv")
    with pytest.raises(ValueError) as error:
        read_fer2013(path)
    assert "its header row: a line longer than" in str(error.value) and "\n" not in str(error.value)
