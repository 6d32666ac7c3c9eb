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
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")
"""File name extensions (lower case) taken as images, by the dataset readers
and by prediction on a folder: the formats :func:`decode_image` reads."""

DECODE_REASONS = (
    "missing_file",
    "unreadable_file",
    "empty_file",
    "unreadable_image",
    "truncated_image",
    "corrupt_image",
    "image_too_large",
    "bad_pixels",
)
"""Reasons an :class:`ImageDecodeError` (and a skip in the run report) can give."""

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


def _rgb_from_pil(image: Image.Image) -> np.ndarray:
    """Any Pillow mode as ``uint8`` RGB: 16-bit scaled by 1/257, alpha composited on black."""
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        values = np.asarray(image)
        if mode != "I" or values.max(initial=0) > 255:
            values = np.clip(values.astype(np.float64), 0, 65535) / 257.0
        grey = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float64))
        if values.max(initial=0) <= 1.0:
            values = values * 255.0
        grey = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode in ("P", "PA") and (mode == "PA" or "transparency" in image.info):
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (0, 0, 0))
        background.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))
        image = background
    if image.mode in ("1", "L"):
        grey = np.asarray(image.convert("L"))
        return np.repeat(grey[..., None], 3, axis=2)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image)


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


def read_image(
    source: str | os.PathLike | bytes, max_side: int | None = None
) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode ``source`` like :func:`decode_image` and also return its original ``(height, width)``.

    The original size (after EXIF orientation) lets a caller map a box given
    in the file's pixel coordinates onto the possibly reduced array.
    """
    is_bytes = isinstance(source, (bytes, bytearray, memoryview))
    if is_bytes:
        data = bytes(source)
        if not data:
            raise ImageDecodeError("empty_file", source)
        stream: io.BytesIO | str = io.BytesIO(data)
    else:
        path = Path(source)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise ImageDecodeError("missing_file", source) from None
        except OSError as error:
            raise ImageDecodeError("unreadable_file", source, error.strerror or "") from None
        if path.is_dir():
            raise ImageDecodeError("unreadable_file", source, "a folder, not a file")
        if size == 0:
            raise ImageDecodeError("empty_file", source)
        stream = str(path)

    try:
        image = Image.open(stream)
    except Image.DecompressionBombError as error:
        raise ImageDecodeError("image_too_large", source, str(error).split(".")[0]) from None
    except UnidentifiedImageError:
        return _read_with_opencv(source, max_side)
    except PermissionError as error:
        raise ImageDecodeError("unreadable_file", source, error.strerror or "") from None
    except OSError as error:
        raise ImageDecodeError(_os_error_reason(error), source) from None
    except Exception as error:
        raise ImageDecodeError("corrupt_image", source, type(error).__name__) from None

    with image:
        width, height = image.size
        if max_side is not None and max(width, height) > max_side and image.format == "JPEG":
            factor = max_side / max(width, height)
            image.draft(None, (max(1, int(width * factor)), max(1, int(height * factor))))
        try:
            image.load()
            drafted = image.size
            oriented = ImageOps.exif_transpose(image)
            if oriented.size != drafted and oriented.size == drafted[::-1]:
                width, height = height, width
            rgb = _rgb_from_pil(oriented)
        except Image.DecompressionBombError as error:
            raise ImageDecodeError("image_too_large", source, str(error).split(".")[0]) from None
        except OSError as error:
            raise ImageDecodeError(_os_error_reason(error), source) from None
        except Exception as error:
            raise ImageDecodeError("corrupt_image", source, type(error).__name__) from None
    return np.ascontiguousarray(reduce_image(rgb, max_side)), (height, width)


def _read_with_opencv(source: str | os.PathLike | bytes, max_side: int | None) -> tuple[np.ndarray, tuple[int, int]]:
    """Formats Pillow does not identify; OpenCV decodes them or the file is not an image."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        buffer = np.frombuffer(bytes(source), dtype=np.uint8)
    else:
        buffer = np.fromfile(str(source), dtype=np.uint8)
    decoded = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    if decoded is None or decoded.size == 0:
        raise ImageDecodeError("unreadable_image", source, "not an image format Pillow or OpenCV can read")
    if decoded.dtype == np.uint16:
        decoded = np.rint(decoded / 257.0).astype(np.uint8)
    elif decoded.dtype != np.uint8:
        decoded = cv2.normalize(decoded, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if decoded.ndim == 2:
        rgb = cv2.cvtColor(decoded, cv2.COLOR_GRAY2RGB)
    elif decoded.shape[2] == 4:
        alpha = decoded[..., 3:4].astype(np.uint16)
        rgb = cv2.cvtColor(((decoded[..., :3] * alpha + 127) // 255).astype(np.uint8), cv2.COLOR_BGR2RGB)
    else:
        rgb = cv2.cvtColor(decoded[..., :3], cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(reduce_image(rgb, max_side)), decoded.shape[:2]


def decode_image(source: str | os.PathLike | bytes, max_side: int | None = None) -> np.ndarray:
    """Decode a file path or encoded bytes to ``uint8`` ``(H, W, 3)`` RGB, the one canonical form.

    Grey, palette, 16-bit, RGBA/LA (composited on black) and CMYK sources
    are all converted; EXIF orientation is applied as OpenCV's ``imread``
    does. With ``max_side``, a larger image is reduced while decoding
    (JPEG) and right after, keeping its aspect ratio.

    Raises :class:`ImageDecodeError` (a ``ValueError``) whose ``reason`` says
    why: ``missing_file``, ``empty_file``, ``unreadable_image`` (not an image,
    e.g. a text file named ``.jpg``), ``truncated_image``, ``corrupt_image``,
    ``image_too_large`` (Pillow's decompression-bomb limit), ...
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
