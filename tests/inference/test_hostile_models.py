"""Hostile ``.keras`` archives: bounded before Keras reads them, in bounded memory and time.

A weights file may declare arrays it does not store (HDF5 allocates lazily),
and a zip directory may declare members of any size: both are refused from
metadata alone (:func:`csa_keras.inference.archive.read_archive_config`,
:func:`~csa_keras.inference.archive.check_weights`).
"""
import io
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csa_keras.inference.archive import (
    MAX_ARCHIVE_BYTES,
    MAX_ARCHIVE_MEMBERS,
    MAX_CONFIG_BYTES,
    MAX_WEIGHTS_BYTES,
    WEIGHTS_EXPANSION,
    WEIGHTS_SLACK,
    check_weights,
    read_archive_config,
)
from csa_keras.inference.loading import PRETRAINED_ROOT

ROOT = Path(__file__).resolve().parents[2]
CONFIG = json.dumps({"module": "keras", "class_name": "Sequential", "registered_name": None,
                     "config": {"name": "model", "layers": []}}).encode()


def _weights(datasets=(), written=(), external=False) -> bytes:
    """An HDF5 file in memory: ``datasets`` ``(name, shape, dtype)`` declared, not written (HDF5
    stores nothing for them); ``written`` ones filled with ones."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        group = h5.create_group("layers/dense/vars")
        for name, shape, dtype in datasets:
            group.create_dataset(name, shape=shape, dtype=dtype)
        for name, shape, dtype in written:
            group.create_dataset(name, data=np.ones(shape, dtype))
        if external:
            group["0"] = h5py.ExternalLink("/etc/hostname", "/")
    return buffer.getvalue()


def _archive(path: Path, weights: bytes = b"", extra: int = 0, compression: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.0.0"}))
        archive.writestr("config.json", CONFIG)
        archive.writestr("model.weights.h5", weights)
        for i in range(extra):
            archive.writestr(f"assets/{i}", b"")
    return path


def _declare_sizes(path: Path, sizes: dict[str, int]) -> Path:
    """Patch the uncompressed sizes the zip directory declares for some members (nothing else changes)."""
    raw = bytearray(path.read_bytes())
    at = raw.find(b"PK\x01\x02")
    while at >= 0:
        name_length = int.from_bytes(raw[at + 28:at + 30], "little")
        name = raw[at + 46:at + 46 + name_length].decode()
        if name in sizes:
            raw[at + 24:at + 28] = sizes[name].to_bytes(4, "little")
        at = raw.find(b"PK\x01\x02", at + 46)
    path.write_bytes(bytes(raw))
    return path


def _refused_in_a_fresh_interpreter(path: Path) -> tuple[str, float, int]:
    """``load_model(path)``'s one-line error, its seconds and the peak resident memory (bytes) of the
    process, TensorFlow's included."""
    script = (
        "import sys, time\n"
        "import keras\n"
        "from csa_keras.inference.loading import import_task_packages, load_model\n"
        "import_task_packages()\n"
        "start = time.perf_counter()  # TensorFlow's import left out of the seconds\n"
        "try:\n"
        "    load_model(sys.argv[1])\n"
        "    print('LOADED')\n"
        "except ValueError as error:\n"
        "    print('ERROR', error)\n"
        "print('SECONDS', time.perf_counter() - start)\n"
        "print([line for line in open('/proc/self/status') if line.startswith('VmHWM')][0].strip())\n")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True,
                          timeout=300, cwd=ROOT, env=env)
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and len(lines) == 3, done.stdout + done.stderr
    assert lines[0].startswith("ERROR "), lines
    peak_kb = int(lines[2].split()[1])
    return lines[0][len("ERROR "):], float(lines[1].split()[1]), peak_kb * 1024


def test_a_weights_file_declaring_gigabytes_is_refused_before_keras_allocates_them(tmp_path):
    """4 GiB of float32 declared, just under Keras's own guard, in a file of a few kB."""
    path = _archive(tmp_path / "lazy.keras", _weights([("0", (2**30 - 1,), "float32")]))
    assert path.stat().st_size < 64 * 2**10
    message, seconds, peak = _refused_in_a_fresh_interpreter(path)
    assert "layers/dense/vars/0" in message and str(MAX_WEIGHTS_BYTES) in message and str(path) in message
    print(f"refused in {seconds:.2f} s, peak resident memory {peak / 2**20:.0f} MiB")
    assert seconds < 10 and peak < 2**30


def test_weights_declaring_more_than_the_file_holds_are_refused(tmp_path):
    """Under the fixed ceiling, but 64 MB declared in a file that stores none of it."""
    path = _archive(tmp_path / "fill.keras", _weights([("0", (4096, 4096), "float32")]))
    with pytest.raises(ValueError, match="declares 67108864 bytes of arrays") as caught:
        check_weights(path)
    assert "model.weights.h5" in str(caught.value) and "\n" not in str(caught.value)


def test_links_and_non_numbers_in_the_weights_are_refused(tmp_path):
    with pytest.raises(ValueError, match="ExternalLink, not weights"):
        check_weights(_archive(tmp_path / "link.keras", _weights(external=True)))
    with pytest.raises(ValueError, match="not an array of numbers"):
        check_weights(_archive(tmp_path / "text.keras", _weights(written=[("0", (3,), "S4")])))
    with pytest.raises(ValueError, match="not readable HDF5"):
        check_weights(_archive(tmp_path / "empty.keras", b""))


def test_members_declaring_gigabytes_are_refused_from_the_zip_directory(tmp_path):
    """A few hundred bytes of zip whose directory declares 3.9 GB in members under 256 MiB each."""
    path = _archive(tmp_path / "bomb.keras", extra=16)
    _declare_sizes(path, {f"assets/{i}": 2**28 - 1 for i in range(16)})
    start = time.perf_counter()
    with pytest.raises(ValueError, match=f"more than {MAX_ARCHIVE_BYTES} bytes uncompressed") as caught:
        read_archive_config(path)
    assert time.perf_counter() - start < 1
    assert "assets/" in str(caught.value) and "\n" not in str(caught.value)
    message, seconds, peak = _refused_in_a_fresh_interpreter(path)
    assert "bytes uncompressed" in message and seconds < 1 and peak < 2**30


def test_too_many_members_are_refused_before_the_directory_is_parsed(tmp_path):
    path = _archive(tmp_path / "many.keras", extra=MAX_ARCHIVE_MEMBERS)
    with pytest.raises(ValueError, match=f"declares {MAX_ARCHIVE_MEMBERS + 3} members"):
        read_archive_config(path)


@pytest.mark.parametrize("spool_bytes", [64 * 2**20, 1024], ids=["in memory", "spilled to disk"])
def test_a_deflated_archive_is_checked_as_its_stored_twin(tmp_path, monkeypatch, spool_bytes):
    """A compressed weights member (the shipped Voting ResNet's) declares what the same file stored does,
    and a hostile one is refused alike."""
    from csa_keras.inference import archive

    monkeypatch.setattr(archive, "SPOOL_BYTES", spool_bytes)
    weights = _weights(written=[("0", (64, 64), "float32"), ("1", (64,), "float16")])
    stored = check_weights(_archive(tmp_path / "stored.keras", weights))
    deflated = _archive(tmp_path / "deflated.keras", weights, compression=zipfile.ZIP_DEFLATED)
    assert check_weights(deflated) == stored == 64 * 64 * 4 + 64 * 2
    lazy = _archive(tmp_path / "lazy.keras", _weights([("0", (4096, 4096), "float32")]),
                    compression=zipfile.ZIP_DEFLATED)
    with pytest.raises(ValueError, match="declares 67108864 bytes of arrays"):
        check_weights(lazy)


def test_models_keras_writes_pass_the_bounds(tmp_path):
    """The shipped pretrained models and a model saved here declare no more than they hold."""
    import keras

    from csa_keras.inference.loading import load_model

    for path in sorted(PRETRAINED_ROOT.glob("*/*.keras")):
        read_archive_config(path)
        with zipfile.ZipFile(path) as archive:
            held = sum(info.file_size for info in archive.infolist())
        assert 0 < check_weights(path) <= held  # the members as stored uncompressed
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4), keras.layers.BatchNormalization()])
    model.save(tmp_path / "tiny.keras")
    assert check_weights(tmp_path / "tiny.keras") == (8 * 4 + 4 + 4 * 4) * 4
    assert load_model(tmp_path / "tiny.keras").count_params() == model.count_params()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(0, 2**31), max_size=12), members=st.integers(0, MAX_ARCHIVE_MEMBERS + 8))
def test_any_member_sizes_and_counts_are_refused_exactly_over_the_bounds(tmp_path, sizes, members):
    path = _archive(tmp_path / "a.keras", _weights(), extra=max(members, len(sizes)))
    _declare_sizes(path, {f"assets/{i}": size for i, size in enumerate(sizes)})
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
    over = len(infos) > MAX_ARCHIVE_MEMBERS or sum(i.file_size for i in infos) > MAX_ARCHIVE_BYTES
    try:
        read_archive_config(path)
    except ValueError as error:
        assert over and "\n" not in str(error) and str(path) in str(error)
    else:
        assert not over


_DTYPES = st.sampled_from(["float16", "float32", "float64", "int8", "int64", "bool"])
_SHAPES = st.lists(st.integers(0, 1 << 16), min_size=0, max_size=3).map(tuple)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(declared=st.lists(st.tuples(_SHAPES, _DTYPES), max_size=6),
       written=st.lists(st.tuples(st.integers(1, 4096), _DTYPES), max_size=4))
def test_any_declared_shapes_are_refused_exactly_over_the_bounds(tmp_path, declared, written):
    weights = _weights([(f"d{i}", shape, dtype) for i, (shape, dtype) in enumerate(declared)],
                       [(f"w{i}", (n,), dtype) for i, (n, dtype) in enumerate(written)])
    path = _archive(tmp_path / "w.keras", weights)
    total = sum(int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
                for shape, dtype in declared + [((n,), d) for n, d in written])
    limit = min(MAX_WEIGHTS_BYTES, WEIGHTS_EXPANSION * len(weights) + WEIGHTS_SLACK)
    start = time.perf_counter()
    try:
        assert check_weights(path) == total
    except ValueError as error:
        assert total > limit and "\n" not in str(error)
    else:
        assert total <= limit
    assert time.perf_counter() - start < 2


def test_a_config_bound_still_comes_first(tmp_path):
    """An oversized config.json is named as before, though its size also passes the archive's bound."""
    path = _archive(tmp_path / "c.keras")
    _declare_sizes(path, {"config.json": MAX_CONFIG_BYTES + 1})
    with pytest.raises(ValueError, match="config.json of"):
        read_archive_config(path)
