"""The record of an export: written to ``export.json`` beside the artifact, and read out as lines.

:func:`~csa_keras.inference.export.export_run` measures an artifact against
the Keras model and returns its record; here the record is kept under the
artifact's name in ``export.json`` (:func:`write_record`, other artifacts'
entries kept), the output that holds the class probabilities is named for
runtimes without the task's code (:func:`probabilities_output`), and the
command's summary is written (:func:`summary_lines`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from csa_keras.inference.probabilities import as_probabilities
from csa_keras.utils.files import read_json, write_json


def probabilities_output(outputs: dict[str, Any], probabilities: np.ndarray) -> str | None:
    """The output whose rows are the class probabilities the task reads (the Voting ResNet's ``vote``),
    measured, so that a runtime without the task's code knows which output to read; ``None`` if none is."""
    for name in sorted(outputs):
        value = np.asarray(outputs[name])
        if value.shape == probabilities.shape and np.allclose(as_probabilities(value), probabilities, atol=1e-6):
            return name
    return None


def write_record(path: Path, record: dict[str, Any]) -> Path:
    """``record`` under the artifact's name in ``export.json`` beside it, other entries kept."""
    report = path.parent / "export.json"
    records: dict[str, Any] = {}
    if report.is_file():
        try:
            records = read_json(report)
        except ValueError:
            records = {}
    records[path.name] = record
    return write_json(report, records)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def summary_lines(record: dict[str, Any]) -> list[str]:
    """The human-readable lines the command prints for a record of :func:`~csa_keras.inference.export.export_run`."""
    quantize = record.get("quantize", "none")
    kind = record["format"] if quantize == "none" else f"{record['format']} {quantize}"
    size = (f"size: {record['artifact_bytes']} bytes ({record['artifact_mb']:.2f} MB; "
            f"Keras file {record['keras_bytes'] / 1e6:.2f} MB")
    if "float32_bytes" in record:
        size += f"; float32 TFLite {record['float32_bytes'] / 1e6:.2f} MB, x{record['size_ratio']:.2f}"
    lines = [f"{kind} artifact: {record['artifact']}", size + ")"]
    if "calibration" in record:
        lines.append(f"int8 calibrated on {record['calibration']['source']}")
    parity = (f"parity on {record['parity_source']}: max |p_artifact - p_keras| = "
              f"{record['max_abs_diff']:.3g}, same arg-max on {record['argmax_agreement']:.1%}")
    if "clear_changes" in record:
        parity += f", a class Keras ranks clearly lower on {record['clear_changes']:.1%}"
    lines.append(parity)
    accuracy = record.get("accuracy")
    if accuracy:
        line = (f"accuracy on {accuracy['images']} test images: Keras {_percent(accuracy['keras'])}, "
                f"{kind} {_percent(accuracy['artifact'])}")
        if "float32" in accuracy:
            drop = accuracy["drop_points"]
            line += (f", float32 TFLite {_percent(accuracy['float32'])}; {abs(drop):.1f} points "
                     f"{'below' if drop >= 0 else 'above'} Keras ({'within' if accuracy['within_goal'] else 'outside'} "
                     f"the {accuracy['goal_points']:g}-point goal)")
        lines.append(line)
    for key in sorted(k for k in record if k.startswith("max_abs_diff_")):
        lines.append(f"output {key[len('max_abs_diff_'):]}: max |difference| = {record[key]:.3g}")
    if "latency_ms" in record:
        lat = record["latency_ms"]
        line = (f"single-image latency (median of {lat['runs']}): Keras {lat['keras']:.2f} ms, "
                f"{kind} {lat['artifact']:.2f} ms")
        if "float32" in lat:
            line += f", float32 TFLite {lat['float32']:.2f} ms"
        lines.append(line)
    lines.append(f"record: {record['export_json']}")
    return lines
