"""``MODEL_CARD.md``: what a trained model is for, what it was trained and scored on, its limits.

Every run directory gets one, in the form model hubs expect (intended use,
data and protocol, metrics with confidence intervals, per-class results,
limitations, licence), written from the run's own settings and metrics so
that it never claims more than was measured. The data's licence is quoted
from a licence file found at the dataset's root (``LICENSE``, ``LICENCE``,
``LICENSE.txt``, ``licence.txt``, ...), or from the ``data_licence`` setting,
or the card says it was not found. A licence file is quoted only as
text: UTF-8 without control characters (else the card says the file is not
text), at most :data:`MAX_LICENCE_CHARS` characters, cut at a word and
marked where longer (:func:`quoted_text`).
"""
from __future__ import annotations

import codecs
import datetime as _dt
import re
from pathlib import Path
from typing import Any

from csa_keras.data.protocols import LEAK_NOTE
from csa_keras.evaluation.report import per_class_table, percent
from csa_keras.utils import files

LICENCE_FILES = ("LICENSE", "LICENCE", "LICENSE.txt", "LICENCE.txt", "LICENSE.md", "licence.txt",
                 "license.txt", "COPYING")
"""Files at a dataset's root whose text is its licence."""

MAX_LICENCE_CHARS = 2000
"""The most characters of a licence file the card quotes."""

CUT_MARK = " [...]"
"""What ends a quoted text that was cut (:func:`quoted_text`)."""

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")

INTENDED_USE = (
    "Research on facial expression recognition: reproducing and extending the papers this "
    "project implements, and comparing models on labelled face data. The model classifies the "
    "expression shown by a face crop into the classes listed below; it says nothing about what a "
    "person feels. It is not meant for decisions about people (hiring, grading, policing, health, "
    "surveillance) and has not been evaluated for them."
)


def quoted_text(raw: bytes, limit: int = MAX_LICENCE_CHARS) -> str | None:
    """``raw`` as text to quote, at most ``limit`` characters; ``None`` when it is not text.

    Text is UTF-8 (a byte-order mark dropped) without control characters
    other than tab and line breaks. Longer text is cut at the last space or
    line break before ``limit`` (at ``limit`` when it holds none) and ends
    with :data:`CUT_MARK`. ``raw`` may itself be cut mid-character: only
    its complete characters are read.
    """
    try:
        text = codecs.getincrementaldecoder("utf-8-sig")().decode(raw, final=False)
    except UnicodeDecodeError:
        return None
    if _CONTROL.search(text):
        return None
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if len(text) <= limit:
        return text
    cut = text[:limit]
    at = max(cut.rfind(" "), cut.rfind("\n"), cut.rfind("\t"))
    return (cut[:at] if at > 0 else cut).rstrip() + CUT_MARK


def data_licence(data: str | None, setting: str | None = None) -> str | None:
    """The licence text of a dataset: the setting, else a licence file at its root, else ``None``."""
    if setting:
        return setting
    if data is None:
        return None
    root = Path(data)
    root = root if root.is_dir() else root.parent
    for name in LICENCE_FILES:
        path = root / name
        if path.is_file():
            try:
                with path.open("rb") as handle:
                    raw = handle.read(4 * MAX_LICENCE_CHARS + 4)
            except OSError:
                continue
            text = quoted_text(raw)
            if text is None:
                return f"{name} was found beside the data but is not text (UTF-8): read it there."
            return f"{name}: {text}"
    return None


def _limitations(metrics: dict[str, Any], dataset: dict[str, Any], subjects_leak: bool) -> list[str]:
    items = []
    if dataset.get("format") == "synthetic":
        items.append("Trained on the built-in synthetic faces, drawn to test the code: its figures "
                     "say nothing about real faces.")
    if subjects_leak:
        items.append(LEAK_NOTE)
    shape = dataset.get("image_shape") or []
    if shape:
        items.append(f"Input: {'x'.join(map(str, shape[:2]))} face crops "
                     f"({'grey' if shape[-1] == 1 else 'colour'}); photographs go through "
                     "Viola-Jones detection, which misses faces in profile, small or occluded.")
    counts = dataset.get("class_counts") or {}
    if counts and max(counts.values()) > 2 * max(1, min(counts.values())):
        items.append(f"The classes are imbalanced (from {min(counts.values())} to "
                     f"{max(counts.values())} images): per-class recall varies accordingly.")
    items.append("Expression datasets differ in who is shown, how expressions are posed or "
                 "spontaneous, and how they were labelled; accuracy on other data is not the test "
                 "accuracy below (score it with `python -m csa_keras.evaluate`).")
    return items


def write_model_card(out: Path, task_title: str, description: str, config: Any,
                     metrics: dict[str, Any], dataset: dict[str, Any], subjects_leak: bool,
                     licence: str | None = None, recreate: str | None = None,
                     notes: tuple[str, ...] | list[str] = ()) -> Path:
    """Write ``MODEL_CARD.md`` into the run directory ``out``.

    ``licence`` replaces the licence found for the data; ``recreate`` is the
    command that trains the model again, shown in a section of its own;
    ``notes`` are more measured lines for the metrics section (how the
    model was chosen, how stable its label is).
    """
    kfold = "folds" in metrics
    ci = ""
    if metrics.get("accuracy_ci_low") is not None:
        ci = (f" (95% bootstrap interval {percent(metrics['accuracy_ci_low'])} – "
              f"{percent(metrics['accuracy_ci_high'])}{', pooled over folds' if kfold else ''})")
    licence = licence or data_licence(getattr(config, "data", None),
                                      getattr(config, "data_licence", None))
    per_class = metrics.get("per_class_accuracy") or {}
    lines = [
        f"# Model card: {task_title} trained on {metrics.get('dataset')}",
        "",
        "## Model",
        "",
        f"- {description}",
        f"- trained {_dt.date.today().isoformat()} with recipe `{config.preset}`, seed "
        f"{config.seed}, precision `{metrics.get('precision_policy', 'float32')}`; every setting is "
        "in `config.json`",
        "",
        "## Intended use",
        "",
        INTENDED_USE,
        "",
        "## Data and protocol",
        "",
        f"- data: `{dataset.get('name')}` (format `{dataset.get('format')}`), "
        f"{dataset.get('n_images')} images; classes: {', '.join(metrics.get('class_names', []))}",
        f"- protocol: `{metrics.get('protocol')}`; train {metrics.get('n_train')}, validation "
        f"{metrics.get('n_val', 'n/a')}, test {metrics.get('n_test')}"
        + (f"; {metrics.get('duplicates_removed')} test images that duplicated training images "
           "removed" if metrics.get("duplicates_removed") else ""),
        "",
        "## Metrics (test images)",
        "",
        f"- accuracy {percent(metrics.get('accuracy'))}{ci}",
        f"- macro F1 {percent(metrics.get('f1_macro'))}, balanced accuracy "
        f"{percent(metrics.get('balanced_accuracy'))}",
        *[f"- {note}" for note in notes],
        "",
        *per_class_table(per_class, "accuracy (recall)"),
        "",
        "## Limitations",
        "",
        *[f"- {item}" for item in _limitations(metrics, dataset, subjects_leak)],
        "",
        *(["## Re-create it", "", "```bash", recreate, "```", ""] if recreate else []),
        "## Licence of the data",
        "",
        licence if licence else (
            "No licence file was found beside the data. Datasets of faces are usually licensed "
            "for research only: state the terms of your data here before sharing this model."),
    ]
    return files.write_text(out / "MODEL_CARD.md", "\n".join(lines) + "\n")
