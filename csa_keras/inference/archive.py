"""The bounds a ``.keras`` archive must keep before Keras reads a byte of it.

A ``.keras`` file is data from anywhere, and Keras trusts what it declares:
it extracts members to disk (its own guard lets any member under 256 MiB
through) and allocates every array its weights file declares. So the
project's loader (:func:`csa_keras.inference.loading.load_model`) checks,
from metadata alone:

* ``config.json``: at most :data:`MAX_CONFIG_BYTES`, nested at most
  :data:`MAX_CONFIG_DEPTH` deep, both checked before it is parsed
  (:func:`read_archive_config`);
* the archive: at most :data:`MAX_ARCHIVE_MEMBERS` members of at most
  :data:`MAX_ARCHIVE_BYTES` together, as its zip directory declares them;
* the weights file: no more bytes of arrays declared than it holds
  (:func:`check_weights`, read from the HDF5 metadata, no array read), no
  links, numeric arrays only.

Every refusal is one ``ValueError`` line naming the member or dataset.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
import zipfile
import zlib
from typing import Any

import numpy as np

MAX_CONFIG_BYTES = 16 * 2**20
"""The largest ``config.json`` a ``.keras`` archive may hold (real models: a few hundred kB)."""

MAX_CONFIG_DEPTH = 128
"""The deepest nesting of lists and objects a ``config.json`` may have (real models: under 20)."""

ARCHIVE_MEMBERS = ("config.json", "model.weights.h5")
"""The files every Keras 3 ``.keras`` archive holds."""

WEIGHTS_MEMBER = "model.weights.h5"
"""The archive member holding the weights, an HDF5 file."""

MAX_ARCHIVE_MEMBERS = 256
"""The most members a ``.keras`` archive may hold (the project's models: 4)."""

MAX_ARCHIVE_BYTES = 2**30
"""The most bytes the members of a ``.keras`` archive may hold together, uncompressed, as the zip
declares them (the largest model of the project, a Voting ResNet of 11 M parameters: about 45 MB)."""

MAX_WEIGHTS_BYTES = 2**30
"""The most bytes of arrays a weights file may declare: 268 M float32 parameters."""

WEIGHTS_EXPANSION = 2
"""How many times the bytes it holds a weights file may declare in arrays (plus :data:`WEIGHTS_SLACK`).

Keras writes every variable whole and uncompressed, so a file it wrote
declares fewer bytes than it holds (the shipped CSA: 6.30 MB of arrays in a
6.34 MB file); HDF5 compression of trained weights gains little, which the
factor leaves room for. A file that declares more stores them as a fill
value or compressed zeros, and Keras would allocate every declared byte.
"""

WEIGHTS_SLACK = 2**20
"""Bytes of arrays any weights file may declare whatever its size (a tiny model's metadata outweighs its arrays)."""

MAX_WEIGHTS_OBJECTS = 100_000
"""The most groups and datasets a weights file may hold (a Voting ResNet: under 2,000)."""

SPOOL_BYTES = 64 * 2**20
"""The most bytes of a compressed weights member :func:`check_weights` inflates in memory; more go to disk."""

_DEPTH_CHUNK = 2**20


def _config_depth(raw: bytes) -> int:
    """How deep lists and objects nest in the JSON text ``raw``, brackets inside strings left out.

    Vectorised (NumPy over the bytes, a running sum in chunks) so that the
    largest config allowed is measured in well under a second and a few
    times its size in memory, whatever it holds.
    """
    text = np.frombuffer(raw.replace(b"\\\\", b"").replace(b'\\"', b""), np.uint8)
    outside = ~np.logical_xor.accumulate(text == ord('"'))
    steps = (outside & ((text == ord("[")) | (text == ord("{")))).astype(np.int8)
    steps -= outside & ((text == ord("]")) | (text == ord("}")))
    steps = steps[steps != 0]
    level = deepest = 0
    for start in range(0, len(steps), _DEPTH_CHUNK):
        running = np.cumsum(steps[start:start + _DEPTH_CHUNK], dtype=np.int64) + level
        deepest, level = max(deepest, int(running.max())), int(running[-1])
    return deepest


def _declared_members(path: str | os.PathLike) -> int | None:
    """The member count the end record of the zip ``path`` declares, read before the zip directory is
    parsed (a directory of millions of empty members would be parsed into as many objects);
    ``None`` where no end record is found (the zip reader then says what is wrong)."""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 22 - 0xFFFF))
        tail = handle.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) < at + 22:
        return None
    return int.from_bytes(tail[at + 10:at + 12], "little")  # 0xFFFF: a zip64 count, over any bound


def _check_members(path: str | os.PathLike, archive: zipfile.ZipFile) -> None:
    """Refuse an archive of more than :data:`MAX_ARCHIVE_MEMBERS` members or :data:`MAX_ARCHIVE_BYTES`."""
    infos = archive.infolist()
    if len(infos) > MAX_ARCHIVE_MEMBERS:
        raise ValueError(f"{path} holds {len(infos)} members, more than the {MAX_ARCHIVE_MEMBERS} "
                         "a model archive may have")
    total = 0
    for info in infos:
        total += info.file_size
        if total > MAX_ARCHIVE_BYTES:
            raise ValueError(f"{path} declares more than {MAX_ARCHIVE_BYTES} bytes uncompressed "
                             f"(at member {info.filename}, {info.file_size} bytes), more than "
                             "a model archive may hold")


def read_archive_config(path: str | os.PathLike) -> dict[str, Any]:
    """The model config stored in a ``.keras`` archive, read and bounded without Keras.

    A ``.keras`` file is a zip of ``config.json``, ``metadata.json`` and
    ``model.weights.h5``. A truncated or foreign file, a config larger than
    :data:`MAX_CONFIG_BYTES` or nested deeper than :data:`MAX_CONFIG_DEPTH`,
    or one that is not a JSON object, fails here in one ``ValueError`` line,
    and so does an archive of more than :data:`MAX_ARCHIVE_MEMBERS` members or
    :data:`MAX_ARCHIVE_BYTES` uncompressed, checked from the zip directory
    before any member is read.
    """
    try:
        count = _declared_members(path)
        if count is not None and count > MAX_ARCHIVE_MEMBERS:
            raise ValueError(f"{path} declares {count} members, more than the {MAX_ARCHIVE_MEMBERS} "
                             "a model archive may have")
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            missing = [name for name in ARCHIVE_MEMBERS if name not in names]
            if missing:
                raise ValueError(f"{path} is not a complete .keras model: it lacks {', '.join(missing)}")
            info = archive.getinfo("config.json")
            if info.file_size > MAX_CONFIG_BYTES:
                raise ValueError(f"{path} holds a config.json of {info.file_size} bytes, more than "
                                 f"the {MAX_CONFIG_BYTES} a model config may have")
            _check_members(path, archive)
            with archive.open(info) as member:
                raw = member.read(MAX_CONFIG_BYTES + 1)
    except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError, RuntimeError):
        raise ValueError(f"{path} is not a Keras model file (a truncated or foreign archive, "
                         "not a Keras 3 .keras zip)") from None
    except OSError as error:
        raise ValueError(f"cannot read model {path}: {error.strerror or error}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ValueError(f"{path} holds a config.json larger than the {MAX_CONFIG_BYTES} bytes "
                         "a model config may have")
    depth = _config_depth(raw)
    if depth > MAX_CONFIG_DEPTH:
        raise ValueError(f"{path} holds a config.json nested {depth} deep, deeper than the "
                         f"{MAX_CONFIG_DEPTH} a model config may be")
    try:
        config = json.loads(raw)
    except (ValueError, RecursionError):
        raise ValueError(f"{path} holds an unreadable config.json (not JSON)") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path} holds a config.json that is not a model config "
                         f"(a JSON {type(config).__name__}, not an object)")
    return config


def _walk_weights(path: str | os.PathLike, weights) -> int:
    """The bytes of arrays the HDF5 file ``weights`` declares, read from its metadata only.

    Hard links are followed (a dataset reached twice is counted twice, as
    Keras reads it twice); a soft or external link, a dataset that is not
    of numbers, or more than :data:`MAX_WEIGHTS_OBJECTS` objects is refused.
    """
    import h5py

    total, seen, stack = 0, 0, [("", weights)]
    while stack:
        prefix, group = stack.pop()
        for name in group:
            seen += 1
            if seen > MAX_WEIGHTS_OBJECTS:
                raise ValueError(f"{path} holds a {WEIGHTS_MEMBER} of more than {MAX_WEIGHTS_OBJECTS} "
                                 "groups and datasets, more than a model's weights have")
            where = f"{prefix}/{name}"
            link = group.get(name, getlink=True)
            if not isinstance(link, h5py.HardLink):
                raise ValueError(f"{path} holds a {WEIGHTS_MEMBER} whose {where} is a "
                                 f"{type(link).__name__}, not weights")
            item = group[name]
            if isinstance(item, h5py.Group):
                stack.append((where, item))
                continue
            if not isinstance(item, h5py.Dataset) or item.dtype.kind not in "biuf":
                raise ValueError(f"{path} holds a {WEIGHTS_MEMBER} whose {where} is not an array "
                                 f"of numbers ({getattr(item, 'dtype', type(item).__name__)})")
            total += math.prod(item.shape or ()) * item.dtype.itemsize
            if total > MAX_WEIGHTS_BYTES:
                raise ValueError(f"{path} holds a {WEIGHTS_MEMBER} whose dataset {where} "
                                 f"{tuple(item.shape)} {item.dtype} brings its arrays over the "
                                 f"{MAX_WEIGHTS_BYTES} bytes a model's weights may have")
    return total


@contextlib.contextmanager
def _seekable(member, info: zipfile.ZipInfo):
    """``member`` as a file that seeks in constant time: itself if stored, else inflated once."""
    if info.compress_type == zipfile.ZIP_STORED:
        yield member
        return
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        shutil.copyfileobj(member, spool)
        spool.seek(0)
        yield spool


def check_weights(path: str | os.PathLike) -> int:
    """Refuse, in one line, a weights file that declares more array bytes than it may (module
    docstring); return the bytes it declares.

    The HDF5 file is opened inside the zip, its arrays unread (its metadata
    is read through the member as a file), after :func:`read_archive_config`
    has bounded the member's size. A compressed member is first inflated
    into a spooled temporary file (in memory up to :data:`SPOOL_BYTES`, on
    disk beyond): HDF5 reads its metadata by seeking back and forth, and each
    backward seek in a deflated zip member inflates it again from its start
    (seconds for a ResNet-18's 22 MB). Its arrays may declare at most
    :data:`MAX_WEIGHTS_BYTES`, and at most :data:`WEIGHTS_EXPANSION` times
    the bytes the file holds plus :data:`WEIGHTS_SLACK`.
    """
    import h5py

    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(WEIGHTS_MEMBER)
            with archive.open(info) as member, _seekable(member, info) as source, \
                    h5py.File(source, "r") as weights:
                declared = _walk_weights(path, weights)
    except ValueError:
        raise
    except (OSError, KeyError, zipfile.BadZipFile, EOFError, zlib.error, RuntimeError) as error:
        text = str(error).strip().splitlines()
        raise ValueError(f"{path} holds a {WEIGHTS_MEMBER} that is not readable HDF5 "
                         f"({text[0] if text else type(error).__name__})") from None
    limit = min(MAX_WEIGHTS_BYTES, WEIGHTS_EXPANSION * info.file_size + WEIGHTS_SLACK)
    if declared > limit:
        raise ValueError(f"{path} holds a {WEIGHTS_MEMBER} of {info.file_size} bytes that declares "
                         f"{declared} bytes of arrays, more than the {limit} it may "
                         f"({WEIGHTS_EXPANSION} times its size and {WEIGHTS_SLACK} more)")
    return declared


def registered_names(config: dict[str, Any]) -> set[str]:
    """The ``package>Class`` names of the registered (non-Keras) classes a saved config uses."""
    found: set[str] = set()
    stack: list[Any] = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            name = item.get("registered_name")
            if isinstance(name, str) and ">" in name:
                found.add(name)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found
