"""The PNG figures of a run: confusion matrix, curves, reconstructions, Grad-CAM.

Each function draws on a :class:`matplotlib.figure.Figure` of its own (no
pyplot state, so it works headless, in threads and in notebooks alike),
writes the PNG through :func:`csa_keras.training.files.save_figure` (a
temporary name renamed into place) and returns the path.
"""
from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from sklearn.metrics import ConfusionMatrixDisplay

from csa_keras.evaluation.metrics import normalize_confusion_matrix, psnr
from csa_keras.utils import files

History = Mapping[str, Sequence[float]]

DPI = 110


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    return files.save_figure(fig, path, dpi=DPI, bbox_inches="tight")


def _as_images(images: np.ndarray, what: str) -> np.ndarray:
    """(N, H, W) or (N, H, W, 1|3) -> float (N, H, W[, 3]) in [0, 1] for ``imshow``.

    Integer images are taken as 0-255, float images as already in [0, 1].
    """
    images = np.asarray(images)
    scale = 255.0 if np.issubdtype(images.dtype, np.integer) else 1.0
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] != 3):
        raise ValueError(f"{what} must be (N, H, W) or (N, H, W, 1|3). Received: {what} with shape {images.shape}")
    images = images.astype(np.float64) / scale
    return np.clip(images, 0.0, 1.0)


def plot_confusion_matrix(cm: np.ndarray | Sequence[Sequence[int]],
                          class_names: Sequence[str],
                          path: str | os.PathLike,
                          title: str | None = None) -> Path:
    """Two annotated panels: counts, and row-normalised (each true class sums to 1)."""
    cm = np.asarray(cm)
    names = [str(n) for n in class_names]
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] != len(names):
        raise ValueError(f"confusion matrix of shape {cm.shape} does not match "
                         f"{len(names)} class names")
    k = len(names)
    side = max(4.0, 0.6 * k + 2.0)
    fig = Figure(figsize=(2 * side + 1.0, side + 0.6))
    counts_ax, norm_ax = fig.subplots(1, 2)
    ConfusionMatrixDisplay(cm.astype(np.int64), display_labels=names).plot(
        ax=counts_ax, cmap="Blues", values_format="d", colorbar=False, xticks_rotation=45)
    counts_ax.set_title(f"counts (n = {int(cm.sum())})")
    ConfusionMatrixDisplay(normalize_confusion_matrix(cm), display_labels=names).plot(
        ax=norm_ax, cmap="Blues", values_format=".2f", colorbar=False, xticks_rotation=45)
    norm_ax.images[-1].set_clim(0.0, 1.0)
    norm_ax.set_title("row-normalised (recall per class)")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def read_history_csv(path: str | os.PathLike) -> dict[str, dict[str, list[float]]]:
    """A ``history.csv`` as ``{phase: {metric: [value per epoch]}}``.

    Reads the run directory's file (a ``phase`` column) and Keras'
    ``CSVLogger`` files (no ``phase``: one phase named ``"train"``). Empty
    cells (a metric a phase does not log) are left out.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"history file {path} does not exist")
    files.check_size(path, files.MAX_CSV_BYTES)
    phases: dict[str, dict[str, list[float]]] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames:
            raise ValueError(f"history file {path} has no header row")
        for row in reader:
            phase = phases.setdefault(row.get("phase") or "train", {})
            for key, value in row.items():
                if key in ("phase", "epoch") or key is None or value in (None, ""):
                    continue
                try:
                    phase.setdefault(key, []).append(float(value))
                except ValueError:
                    raise ValueError(f"history file {path}: column {key!r} holds "
                                     f"{value!r}, not a number") from None
    if not any(phases.values()):
        raise ValueError(f"history file {path} holds no epochs")
    return phases


def _phases(history) -> dict[str, dict[str, list[float]]]:
    if isinstance(history, (str, os.PathLike)):
        return read_history_csv(history)
    if not isinstance(history, Mapping) or not history:
        raise ValueError("history must be a Keras history dict, a dict of them per phase, "
                         "or the path of a history.csv")
    if all(isinstance(v, Mapping) for v in history.values()):
        return {str(phase): {k: [float(x) for x in v] for k, v in metrics.items()}
                for phase, metrics in history.items()}
    if any(isinstance(v, Mapping) for v in history.values()):
        raise ValueError("history mixes phases (dicts) and metrics (lists)")
    return {"": {k: [float(x) for x in v] for k, v in history.items()}}


def plot_curves(history: History | Mapping[str, History] | str | os.PathLike,
                path: str | os.PathLike) -> Path:
    """Loss and accuracy per epoch, training and validation, in one row of panels.

    ``history`` is a Keras ``History.history`` dict, a dict of them per phase
    (``{"pretrain": ..., "finetune": ...}``) or a ``history.csv``. Each phase
    gets one panel per quantity it logged (``loss``, ``accuracy``, any other
    metric), with its ``val_`` twin on the same axes; the autoencoder's phase
    has loss only.
    """
    panels = []
    for phase, metrics in _phases(history).items():
        names = [k for k in metrics if not k.startswith("val_") and k != "learning_rate"]
        names += [k[4:] for k in metrics if k.startswith("val_") and k[4:] not in metrics]
        names.sort(key=lambda k: (k != "loss", k))
        for name in names:
            panels.append((phase, name, metrics.get(name), metrics.get(f"val_{name}")))
    if not panels:
        raise ValueError("history holds no metric to plot")
    fig = Figure(figsize=(4.2 * len(panels), 3.4))
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (phase, name, train, val) in zip(axes, panels):
        for series, label, style in ((train, "train", "-o"), (val, "validation", "--s")):
            if series:
                ax.plot(np.arange(1, len(series) + 1), series, style, markersize=3, label=label)
        ax.set_title(f"{phase}: {name}" if phase else name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)


def plot_reconstructions(originals: np.ndarray, reconstructions: np.ndarray,
                         path: str | os.PathLike, n: int = 8) -> Path:
    """The first ``n`` faces (top row) over their reconstructions, each titled with its PSNR."""
    originals = np.asarray(originals)
    reconstructions = np.asarray(reconstructions)
    if originals.shape != reconstructions.shape:
        raise ValueError(f"originals {originals.shape} and reconstructions "
                         f"{reconstructions.shape} differ in shape")
    n = min(int(n), len(originals))
    if n < 1:
        raise ValueError("no images to plot")
    top = _as_images(originals[:n], "originals")
    bottom = _as_images(reconstructions[:n], "reconstructions")
    values = psnr(top, bottom)
    fig = Figure(figsize=(1.6 * n, 4.2))
    axes = np.asarray(fig.subplots(2, n, squeeze=False))
    for i in range(n):
        for row, images, title in ((0, top, "original"),
                                   (1, bottom, f"{values[i]:.1f} dB" if np.isfinite(values[i])
                                    else "exact")):
            ax = axes[row, i]
            ax.imshow(images[i], cmap="gray", vmin=0.0, vmax=1.0)
            ax.set_title(title, fontsize=9)
            ax.set_axis_off()
    fig.suptitle("test faces (top) and reconstructions (bottom), PSNR with MAX = 1")
    return _save(fig, path)


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """An RGB face in [0, 1] blended with a jet-coloured heatmap in [0, 1]."""
    face = _as_images(np.asarray(image)[None], "image")[0]
    if face.ndim == 2:
        face = np.repeat(face[..., None], 3, axis=-1)
    heatmap = np.asarray(heatmap, dtype=np.float64)
    if heatmap.shape != face.shape[:2]:
        raise ValueError(f"heatmap {heatmap.shape} does not match image {face.shape[:2]}")
    colour = colormaps["jet"](np.clip(heatmap, 0.0, 1.0))[..., :3]
    return np.clip((1.0 - alpha) * face + alpha * colour, 0.0, 1.0)


def plot_gradcam(images: np.ndarray, heatmaps: np.ndarray, titles: Sequence[str],
                 path: str | os.PathLike, alpha: float = 0.4) -> Path:
    """Each face (top row) and its Grad-CAM heatmap overlaid in jet colours (bottom row)."""
    faces = _as_images(images, "images")
    heatmaps = np.asarray(heatmaps)
    if len(heatmaps) != len(faces) or len(titles) != len(faces):
        raise ValueError(f"{len(faces)} images, {len(heatmaps)} heatmaps and "
                         f"{len(titles)} titles: they must match")
    if len(faces) == 0:
        raise ValueError("no images to plot")
    n = len(faces)
    fig = Figure(figsize=(1.9 * n, 4.4))
    axes = np.asarray(fig.subplots(2, n, squeeze=False))
    for i in range(n):
        axes[0, i].imshow(faces[i], cmap="gray", vmin=0.0, vmax=1.0)
        axes[0, i].set_title(str(titles[i]), fontsize=8)
        axes[1, i].imshow(overlay(faces[i], heatmaps[i], alpha))
        for ax in axes[:, i]:
            ax.set_axis_off()
    fig.suptitle("Grad-CAM")
    return _save(fig, path)
