"""Files written so that a crash never leaves a torn one.

Every artifact goes to a temporary name in the same folder and is renamed
into place (``os.replace`` is atomic on one file system), so a process killed
at any moment leaves each earlier file whole and no half-written one.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any


def temporary_name(path: Path) -> Path:
    """``.<stem>.partial<suffix>`` beside ``path``: where a file is written before it is renamed."""
    return path.with_name(f".{path.stem}.partial{path.suffix}")


def write_text(path: str | os.PathLike, text: str) -> Path:
    path = Path(path)
    tmp = temporary_name(path)
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: write them as ``null``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return write_text(path, json.dumps(_finite(obj), indent=2, default=str) + "\n")


def save_model(model, path: str | os.PathLike) -> Path:
    """``model.save`` to a temporary ``.keras`` name, then rename into place."""
    path = Path(path)
    tmp = temporary_name(path)
    model.save(tmp)
    os.replace(tmp, path)
    return path


def save_figure(fig, path: str | os.PathLike, **kwargs: Any) -> Path:
    path = Path(path)
    tmp = temporary_name(path)
    fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", **kwargs)
    os.replace(tmp, path)
    return path


def writable_folder(path: str | os.PathLike, setting: str) -> Path:
    """``path`` as a folder this process can write, created if needed, or a one-line error.

    ``setting`` names the setting the path came from (``output``,
    ``annotate``), which the error names.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{setting} {path} is not a folder (a file of that name exists)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"{setting} {path} cannot be created: {error.strerror}") from None
    if not os.access(path, os.W_OK):
        raise ValueError(f"{setting} {path} is not writable")
    return path
