"""The on-disk cache of preprocessing results, so a rerun does no decoding and no detection.

An entry is one ``.npz`` file named by :func:`cache_key`, a digest of every
source file (path, size, modification time), inline pixels, boxes, the
:class:`FaceSettings` and the library versions: editing a file or changing
a setting makes a new key, and an old entry is never served for it. Entries
are written to a unique temporary name and renamed into place, so parallel
runs and crashes never leave a torn one; a damaged entry is recomputed.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import PIL

from csa_keras.data.dataset import Sample, SkipLog
from csa_keras.data.faces.result import PreprocessResult
from csa_keras.data.faces.settings import FaceSettings

CACHE_VERSION = 3
"""Bumped whenever preprocessing changes what it produces, so old caches are ignored."""

CACHE_ENV = "CSA_KERAS_CACHE"
"""The environment variable naming the cache folder (``off`` disables the cache)."""

_DISABLED_CACHE_VALUES = ("off", "0", "false", "no", "none")


def default_cache_dir() -> Path | None:
    """``$CSA_KERAS_CACHE`` (``off`` disables), else ``$XDG_CACHE_HOME/csa_keras``, else ``~/.cache/csa_keras``."""
    value = os.environ.get(CACHE_ENV)
    if value is not None and value.strip():
        if value.strip().lower() in _DISABLED_CACHE_VALUES:
            return None
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "csa_keras"


def resolve_cache_dir(cache_dir: str | os.PathLike | bool | None) -> Path | None:
    """The folder a ``cache_dir`` argument means: ``False`` none, ``None``/``True`` :func:`default_cache_dir`."""
    if cache_dir is False:
        return None
    if cache_dir is None or cache_dir is True:
        return default_cache_dir()
    return Path(cache_dir).expanduser()


def cache_key(samples: Sequence[Sample], settings: FaceSettings, needs_detection: bool = False) -> str:
    """A digest of everything a preprocessing result depends on.

    Each file enters with its absolute path, size and ``mtime_ns`` (so an
    edited or replaced file invalidates the entry), inline pixels with a
    hash of their bytes; then the box of each sample, the settings, whether
    the catalogue needs detection, and the versions of this cache format,
    OpenCV and Pillow.
    """
    digest = hashlib.blake2b(digest_size=20)
    header = {
        "cache_version": CACHE_VERSION,
        "settings": dataclasses.asdict(settings),
        "needs_detection": bool(needs_detection),
        "opencv": cv2.__version__,
        "pillow": PIL.__version__,
        "n": len(samples),
    }
    digest.update(json.dumps(header, sort_keys=True).encode())
    for sample in samples:
        if sample.pixels is not None:
            pixels = np.ascontiguousarray(sample.pixels)
            content = hashlib.blake2b(pixels.tobytes(), digest_size=16).hexdigest()
            identity = ["pixels", str(pixels.dtype), list(pixels.shape), content]
        else:
            path = os.path.abspath(sample.source)
            try:
                stat = os.stat(path)
                identity = ["file", path, stat.st_size, stat.st_mtime_ns]
            except OSError:
                identity = ["file", path, None, None]
        box = None if sample.box is None else [float(v) for v in sample.box]
        digest.update(json.dumps([sample.source, identity, box]).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def cache_file(folder: Path, key: str) -> Path:
    """Where the entry for ``key`` lives in ``folder``."""
    return folder / f"faces-v{CACHE_VERSION}-{key}.npz"


def _skiplog_to_json(log: SkipLog) -> str:
    return json.dumps({"counts": dict(log.counts), "examples": log.examples})


def _skiplog_from_json(text: str) -> SkipLog:
    data = json.loads(text)
    log = SkipLog()
    for reason, n in data["counts"].items():
        log.counts[reason] += int(n)
    log.examples = {reason: list(examples) for reason, examples in data["examples"].items()}
    return log


def save_cache(path: Path, result: PreprocessResult, key: str) -> None:
    """Write ``result`` to ``path`` atomically; a cache that cannot be written only warns.

    The temporary file has a unique name (``mkstemp``), so two processes
    filling the same entry at once never write into one file.
    """
    meta = {"key": key, "n_detected": result.n_detected, "n_no_face": result.n_no_face,
            "cache_version": CACHE_VERSION}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=path.parent, prefix=path.stem + ".", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as stream:
                np.savez(
                    stream,
                    images=result.images,
                    kept=result.kept,
                    statuses=result.statuses.astype(str),
                    boxes=result.boxes,
                    skipped=np.array(_skiplog_to_json(result.skipped)),
                    meta=np.array(json.dumps(meta)),
                )
            os.replace(temp, path)
        except BaseException:
            if os.path.exists(temp):
                os.unlink(temp)
            raise
    except OSError as error:
        warnings.warn(f"face cache not written to {path}: {error}", RuntimeWarning, stacklevel=3)


def load_cache(path: Path, key: str, n_samples: int, settings: FaceSettings) -> PreprocessResult | None:
    """The cached result at ``path``, or ``None`` if absent, unreadable or not for ``key``."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            images, kept = data["images"], data["kept"]
            statuses, boxes = data["statuses"], data["boxes"]
            skipped = _skiplog_from_json(str(data["skipped"]))
    except Exception:
        return None
    expected = (len(kept), settings.size, settings.size, settings.channels)
    if meta.get("key") != key or images.shape != expected or len(statuses) != n_samples:
        return None
    return PreprocessResult(
        images=images, kept=kept.astype(np.int64), skipped=skipped, statuses=statuses.astype(object),
        boxes=boxes, n_detected=int(meta["n_detected"]), n_no_face=int(meta["n_no_face"]),
        from_cache=True, cache_path=str(path),
    )
