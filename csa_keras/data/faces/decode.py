"""Image files and arrays to the one canonical form, ``uint8`` ``(H, W, 3)`` RGB.

A dataset may hold 8- or 16-bit, grey, RGB, RGBA, palette PNG or TIFF and
CMYK JPEG files; :func:`decode_image` turns each into ``uint8`` RGB and
names what is wrong with a file it cannot use (:class:`ImageDecodeError`
with a ``reason``). Pillow decodes, since it reports truncated files where
OpenCV silently fills them with grey; OpenCV is the fallback for formats
Pillow does not know. Very large images are reduced while decoding (JPEG DCT
scaling through ``Image.draft``) and at once after, so what is kept has at
most ``max_side`` pixels a side. Inline pixels (``fer2013.csv``) and arrays
handed over by a caller are checked here too (:func:`image_from_pixels`,
:func:`as_uint8_image`).

Memory per file is bounded before anything is decoded, since a few hundred
kilobytes of PNG can claim gigabytes of pixels: a file larger than
:data:`MAX_FILE_BYTES` is never read, and an image whose header (size and
mode, after JPEG's reduction) says it would take more than
:data:`MAX_DECODED_BYTES` once decoded is refused, both as
``image_too_large``. Below that, conversion to ``uint8`` runs in bands of
rows, with integer arithmetic for 16-bit pixels, and grey stays one channel
until it has been reduced. Special files (FIFOs, devices, sockets) are
refused from ``os.stat`` alone, without opening them, as
``not_a_regular_file``: reading a FIFO would wait for a writer forever.
"""
from __future__ import annotations

import io
import os
import re
import stat
import warnings
from collections.abc import Callable
from typing import BinaryIO

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from csa_keras.utils.paths import special_file_kind

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")
"""File name extensions (lower case) taken as images, by the dataset readers
and by prediction on a folder: the formats :func:`decode_image` reads."""

DECODE_REASONS = (
    "missing_file",
    "unreadable_file",
    "not_a_regular_file",
    "empty_file",
    "unreadable_image",
    "truncated_image",
    "corrupt_image",
    "image_too_large",
    "bad_pixels",
)
"""Reasons an :class:`ImageDecodeError` (and a skip in the run report) can give."""

MAX_DECODED_BYTES = 128 * 2**20
"""The most memory one decoded image may take, as Pillow holds it: width x height x
the bytes a pixel of its mode takes (1 for grey and palette, 2 for 16-bit grey,
4 for RGB and the rest). 128 MiB is a 33-megapixel colour photograph or a
67-megapixel 16-bit grey scan; a face dataset holds nothing near it. Decoding
and converting such an image peaks at about twice this."""

MAX_FILE_BYTES = 2 * MAX_DECODED_BYTES
"""The largest file read as an image: more than an uncompressed file of an image
within :data:`MAX_DECODED_BYTES` holds (a 16-bit RGB TIFF takes 6 bytes a pixel
on disk for the 4 Pillow keeps), so a larger one is refused unread."""

_PIXEL_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
"""Bytes a pixel takes in Pillow's memory, by mode; every other mode takes 4."""

_BAND_BYTES = 4 * 2**20
"""About how much of a decoded image is converted to ``uint8`` at a time."""

_ORIENTATIONS: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}
"""EXIF orientation codes as the array views Pillow's ``ImageOps.exif_transpose`` makes."""

_HDR_SIZE = re.compile(rb"\n\s*[-+]([YX])\s+(\d+)\s+[-+]([YX])\s+(\d+)\s*\n")
"""The resolution line of a Radiance HDR file: OpenCV reads the format and Pillow does not, and its
run-length coded float pixels can expand far beyond the file's size."""


class ImageDecodeError(ValueError):
    """A file that cannot be used as an image; ``reason`` is one of :data:`DECODE_REASONS`."""

    def __init__(self, reason: str, source: str | os.PathLike | bytes, detail: str = "") -> None:
        self.reason = reason
        self.source = "<bytes>" if isinstance(source, (bytes, bytearray, memoryview)) else str(source)
        self.detail = detail
        message = f"{self.source}: {reason.replace('_', ' ')}"
        super().__init__(message + (f" ({detail})" if detail else ""))

    def __reduce__(self):
        return (type(self), (self.reason, self.source, self.detail))


def _check_budget(width: int, height: int, pixel_bytes: int, what: str, source) -> None:
    """Refuse, as ``image_too_large``, an image that would take more than :data:`MAX_DECODED_BYTES`."""
    needed = width * height * pixel_bytes
    if needed > MAX_DECODED_BYTES:
        raise ImageDecodeError("image_too_large", source,
                               f"{width}x{height} {what} would take {needed} bytes decoded; "
                               f"the limit is {MAX_DECODED_BYTES}")


def _band_converter(image: Image.Image) -> tuple[int, Callable[[Image.Image], np.ndarray]]:
    """The channels of ``image`` in ``uint8`` (1 grey, 3 RGB) and how a band of its rows gets there.

    16-bit pixels scale by 1/257, rounded, in integers; 32-bit ``I`` and
    ``F`` images first look at their largest value over the whole image (``I``
    above 255 is read as 16-bit, ``F`` up to 1.0 as [0, 1]); alpha is
    composited on black with Pillow's own rounding.
    """
    mode = image.mode
    if mode == "L":
        return 1, np.asarray
    if mode == "1":
        return 1, lambda band: np.asarray(band.convert("L"))
    if mode.startswith("I;16"):
        return 1, lambda band: _from_16_bit(np.asarray(band))
    if mode in ("I", "F"):
        largest = max(float(np.nan_to_num(np.asarray(band)).max(initial=0)) for band in _bands(image))
        if mode == "I":
            wide = largest > 255
            return 1, lambda band: (_from_16_bit(np.clip(np.asarray(band), 0, 65535)) if wide
                                    else np.clip(np.asarray(band), 0, 255).astype(np.uint8))
        scale = 255.0 if largest <= 1.0 else 1.0
        return 1, lambda band: np.clip(np.rint(np.nan_to_num(np.asarray(band, dtype=np.float64)) * scale),
                                       0, 255).astype(np.uint8)
    if mode in ("RGBA", "LA", "RGBa", "La", "PA") or (mode == "P" and "transparency" in image.info):
        return 3, lambda band: _on_black(np.asarray(band.convert("RGBA")))
    if mode == "RGB":
        return 3, np.asarray
    return 3, lambda band: np.asarray(band.convert("RGB"))


def _from_16_bit(values: np.ndarray) -> np.ndarray:
    """Values in [0, 65535] to ``uint8``: ``round(v / 257)``, in integers (``v / 257`` is never a half)."""
    return ((values.astype(np.uint32) * 2 + 257) // 514).astype(np.uint8)


def _on_black(rgba: np.ndarray) -> np.ndarray:
    """RGBA composited on black as Pillow's ``paste`` with a mask rounds it."""
    blend = rgba[..., :3].astype(np.uint32) * rgba[..., 3:4] + 128
    return ((blend + (blend >> 8)) >> 8).astype(np.uint8)


def _bands(image: Image.Image):
    """``image`` as successive bands of whole rows of about :data:`_BAND_BYTES` each."""
    width, height = image.size
    rows = max(1, _BAND_BYTES // max(1, width * 4))
    if rows >= height:
        yield image
        return
    for top in range(0, height, rows):
        yield image.crop((0, top, width, min(height, top + rows)))


def _array_from_pil(image: Image.Image) -> np.ndarray:
    """A loaded Pillow image as ``uint8`` grey ``(H, W)`` or RGB ``(H, W, 3)``, converted a band at a time."""
    channels, convert = _band_converter(image)
    width, height = image.size
    out = np.empty((height, width) if channels == 1 else (height, width, 3), dtype=np.uint8)
    top = 0
    for band in _bands(image):
        out[top:top + band.height] = convert(band)
        top += band.height
    return out


def reduce_image(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """``image`` shrunk (``INTER_AREA``, aspect kept) to at most ``max_side`` pixels a side.

    Bounding every decoded image keeps detection time and memory flat on
    camera-sized photographs; an image already small enough, or
    ``max_side=None``, is returned as it is.
    """
    if max_side is None or max(image.shape[:2]) <= max_side:
        return image
    factor = max_side / max(image.shape[:2])
    new_size = (max(1, round(image.shape[1] * factor)), max(1, round(image.shape[0] * factor)))
    return cv2.resize(image, new_size, interpolation=cv2.INTER_AREA)


def _os_error_reason(error: OSError) -> str:
    """Pillow reports a file cut short as an ``OSError`` saying "truncated"; any other is corruption."""
    return "truncated_image" if "truncated" in str(error).lower() else "corrupt_image"


def _open_nonblocking(path: str, flags: int) -> int:
    """``os.open`` that cannot wait on a FIFO swapped in after the ``stat``; regular files ignore the flag."""
    return os.open(path, flags | getattr(os, "O_NONBLOCK", 0))


def read_image(
    source: str | os.PathLike | bytes, max_side: int | None = None
) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode ``source`` like :func:`decode_image` and also return its original ``(height, width)``.

    The original size (after EXIF orientation) lets a caller map a box given
    in the file's pixel coordinates onto the possibly reduced array. A path
    is checked with ``os.stat`` before it is opened: missing, a folder, a
    special file, empty or over :data:`MAX_FILE_BYTES` are refused unread.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise ImageDecodeError("empty_file", source)
        if len(data) > MAX_FILE_BYTES:
            raise ImageDecodeError("image_too_large", source,
                                   f"{len(data)} bytes; files over {MAX_FILE_BYTES} are not read")
        return _decode(io.BytesIO(data), source, max_side)
    path = os.fspath(source)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ImageDecodeError("missing_file", source) from None
    except OSError as error:
        raise ImageDecodeError("unreadable_file", source, error.strerror or "") from None
    if stat.S_ISDIR(info.st_mode):
        raise ImageDecodeError("unreadable_file", source, "a folder, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise ImageDecodeError("not_a_regular_file", source, special_file_kind(info.st_mode) or "")
    if info.st_size == 0:
        raise ImageDecodeError("empty_file", source)
    if info.st_size > MAX_FILE_BYTES:
        raise ImageDecodeError("image_too_large", source,
                               f"a file of {info.st_size} bytes; files over {MAX_FILE_BYTES} are not read")
    try:
        with open(path, "rb", opener=_open_nonblocking) as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise ImageDecodeError("not_a_regular_file", source, "replaced while being opened")
            return _decode(handle, source, max_side)
    except OSError as error:
        raise ImageDecodeError("unreadable_file", source, error.strerror or "") from None


def _decode(stream: BinaryIO, source, max_side: int | None) -> tuple[np.ndarray, tuple[int, int]]:
    """Pillow's decoding of an opened file or buffer, within :data:`MAX_DECODED_BYTES`; OpenCV when Pillow gives up."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
        return _decode_quietly(stream, source, max_side)


def _decode_quietly(stream: BinaryIO, source, max_side: int | None) -> tuple[np.ndarray, tuple[int, int]]:
    """:func:`_decode` with Pillow's warnings about the file (corrupt EXIF, a bomb's size) left to the outcome."""
    try:
        image = Image.open(stream)
    except Image.DecompressionBombError as error:
        raise ImageDecodeError("image_too_large", source, str(error).split(".")[0]) from None
    except UnidentifiedImageError:
        return _read_with_opencv(stream, source, max_side)
    except OSError as error:
        raise ImageDecodeError(_os_error_reason(error), source) from None
    except Exception as error:
        raise ImageDecodeError("corrupt_image", source, type(error).__name__) from None

    with image:
        width, height = image.size
        try:
            if max_side is not None and max(width, height) > max_side and image.format == "JPEG":
                factor = max_side / max(width, height)
                image.draft(None, (max(1, int(width * factor)), max(1, int(height * factor))))
            _check_budget(*image.size, _PIXEL_BYTES.get(image.mode, 4), f"pixels of mode {image.mode}", source)
            image.load()
            orientation = image.getexif().get(0x0112, 1)
            array = _array_from_pil(image)
        except ImageDecodeError:
            raise
        except Image.DecompressionBombError as error:
            raise ImageDecodeError("image_too_large", source, str(error).split(".")[0]) from None
        except OSError as error:
            raise ImageDecodeError(_os_error_reason(error), source) from None
        except Exception as error:
            raise ImageDecodeError("corrupt_image", source, type(error).__name__) from None
    if orientation in _ORIENTATIONS:
        array = np.ascontiguousarray(_ORIENTATIONS[orientation](array))
        if orientation >= 5:
            width, height = height, width
    return _as_rgb(reduce_image(array, max_side)), (height, width)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """A reduced grey ``(H, W)`` or RGB image as contiguous ``(H, W, 3)``: grey is repeated only now."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    return np.ascontiguousarray(image)


def _read_with_opencv(stream: BinaryIO, source, max_side: int | None) -> tuple[np.ndarray, tuple[int, int]]:
    """Formats Pillow does not identify; OpenCV decodes them or the file is not an image.

    OpenCV has no call that reads only a header, so the file is read whole
    (it is at most :data:`MAX_FILE_BYTES`) and the one format it adds that
    can expand far beyond its size, Radiance HDR, has its resolution line
    checked against :data:`MAX_DECODED_BYTES` first.
    """
    stream.seek(0)
    data = stream.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise ImageDecodeError("image_too_large", source, f"files over {MAX_FILE_BYTES} bytes are not read")
    if data.startswith(b"#?"):
        size = _HDR_SIZE.search(data[:65536])
        if size is not None:
            height, width = (int(size.group(2)), int(size.group(4)))
            if size.group(1) == b"X":
                height, width = width, height
            _check_budget(width, height, 12, "Radiance HDR pixels", source)
    decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    del data
    if decoded is None or decoded.size == 0:
        raise ImageDecodeError("unreadable_image", source, "not an image format Pillow or OpenCV can read")
    if decoded.nbytes > 2 * MAX_DECODED_BYTES:
        raise ImageDecodeError("image_too_large", source,
                               f"{decoded.shape[1]}x{decoded.shape[0]} pixels of {decoded.dtype} decoded")
    if decoded.dtype == np.uint16:
        decoded = _from_16_bit(decoded)
    elif decoded.dtype != np.uint8:
        decoded = cv2.normalize(decoded, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if decoded.ndim == 2:
        rgb = decoded
    elif decoded.shape[2] == 4:
        alpha = decoded[..., 3:4].astype(np.uint16)
        rgb = cv2.cvtColor(((decoded[..., :3] * alpha + 127) // 255).astype(np.uint8), cv2.COLOR_BGR2RGB)
    else:
        rgb = cv2.cvtColor(decoded[..., :3], cv2.COLOR_BGR2RGB)
    return _as_rgb(reduce_image(rgb, max_side)), decoded.shape[:2]
def decode_image(source: str | os.PathLike | bytes, max_side: int | None = None) -> np.ndarray:
    """Decode a file path or encoded bytes to ``uint8`` ``(H, W, 3)`` RGB, the one canonical form.

    Grey, palette, 16-bit, RGBA/LA (composited on black) and CMYK sources
    are all converted; EXIF orientation is applied as OpenCV's ``imread``
    does. With ``max_side``, a larger image is reduced while decoding
    (JPEG) and right after, keeping its aspect ratio.

    Raises :class:`ImageDecodeError` (a ``ValueError``) whose ``reason`` says
    why: ``missing_file``, ``not_a_regular_file`` (a FIFO, device or
    socket, never opened), ``empty_file``, ``unreadable_image`` (not an
    image, e.g. a text file named ``.jpg``), ``truncated_image``,
    ``corrupt_image``, ``image_too_large`` (a file over
    :data:`MAX_FILE_BYTES`, or an image over :data:`MAX_DECODED_BYTES` once
    decoded, from its header), ...
    """
    return read_image(source, max_side)[0]


def image_from_pixels(pixels: np.ndarray) -> np.ndarray | None:
    """Inline pixels (a ``fer2013.csv`` row) as a ``uint8`` image, or ``None`` if they make no image.

    A flat row must hold a square number of values; any array must be grey,
    grey with one channel, RGB or RGBA (alpha dropped) with values in
    [0, 255]. ``None`` becomes the ``bad_pixels`` skip.
    """
    array = np.asarray(pixels)
    if array.ndim == 1:
        side = round(np.sqrt(array.size))
        if side * side != array.size or side == 0:
            return None
        array = array.reshape(side, side)
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[..., :3]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3)) or array.size == 0:
        return None
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.number) or array.min() < 0 or array.max() > 255:
            return None
        array = np.rint(array).astype(np.uint8)
    return array


def as_uint8_image(image: np.ndarray) -> np.ndarray:
    """``image`` as grey ``(H, W)`` or RGB ``(H, W, 3)`` ``uint8``, or a one-line ``ValueError``.

    The crop takes decoded images only; a ``(H, W, 1)`` array loses its
    channel axis so grey images have one shape.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8. Received: image with dtype={image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"image must be grey (H, W), (H, W, 1) or RGB (H, W, 3). "
                         f"Received: image with shape={image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image must have at least one pixel. Received: image with shape={image.shape}")
    return image
