"""The run directory of SPEC §5, written so that a crash never leaves a torn file.

Every artifact goes to a temporary name in the same folder and is renamed
into place (``os.replace`` is atomic on one file system), so a run killed at
any moment leaves each earlier artifact whole and no half-written one.
"""
from __future__ import annotations

import csv
import datetime as _dt
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable


def default_output(command: str) -> Path:
    """``runs/<command>-<timestamp>`` (SPEC §5)."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{command}-{stamp}"


def prepare(path: str | os.PathLike) -> Path:
    """Create the output folder, or fail in one line if it cannot be one."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--output {path} exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"cannot create --output {path}: {error.strerror}") from None
    if not os.access(path, os.W_OK):
        raise ValueError(f"--output {path} is not writable")
    return path


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.stem}.partial{path.suffix}")


def write_text(path: str | os.PathLike, text: str) -> Path:
    path = Path(path)
    tmp = _temporary(path)
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
    tmp = _temporary(path)
    model.save(tmp)
    os.replace(tmp, path)
    return path


def save_figure(fig, path: str | os.PathLike, **kwargs: Any) -> Path:
    path = Path(path)
    tmp = _temporary(path)
    fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", **kwargs)
    os.replace(tmp, path)
    return path


def write_history(path: str | os.PathLike, phases: Iterable[tuple[str, dict[str, list]]]) -> Path:
    """One ``history.csv`` for all phases: a row per epoch, a ``phase`` column."""
    rows, keys = [], []
    for phase, history in phases:
        names = list(history)
        keys += [k for k in names if k not in keys]
        n = max((len(v) for v in history.values()), default=0)
        for epoch in range(n):
            row = {"phase": phase, "epoch": epoch + 1}
            row.update({k: history[k][epoch] for k in names if epoch < len(history[k])})
            rows.append(row)
    path = Path(path)
    tmp = _temporary(path)
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["phase", "epoch", *keys])
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
    return path
