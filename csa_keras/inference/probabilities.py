"""Class probabilities from what a model outputs, through the task it belongs to.

A task knows which of its model's outputs votes (the CSA's softmax, the
Voting ResNet's ``vote``, or a re-vote of its ``crop_logits`` when asked with
``voting=``): :meth:`~csa_keras.tasks.Task.probabilities`. This module is the
one place that turns that into rows summing to 1, checks the options a
caller passes before any image is classified, and finds the number of
classes without running the model.
"""
from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import numpy as np

from csa_keras.inference.loading import task_title
from csa_keras.tasks import Task, all_tasks


def as_probabilities(scores: Any) -> np.ndarray:
    """Rows that sum to 1: a softmax or vote as it is (renormalised), anything else through a softmax."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size and (scores.min() < 0 or np.abs(scores.sum(axis=1) - 1).max() > 1e-3):
        scores = np.exp(scores - scores.max(axis=1, keepdims=True))
    scores = np.clip(scores, 0, None)
    return scores / np.maximum(scores.sum(axis=1, keepdims=True), np.finfo(np.float64).tiny)


def class_probabilities(task: Task, outputs: Any, **options: Any) -> np.ndarray:
    """``(N, K)`` class probabilities, rows summing to 1, from a model's raw outputs."""
    return as_probabilities(task.probabilities(outputs, **options))


def _takes(task: Task, option: str) -> bool:
    """Whether ``option`` is a named parameter of the task's ``probabilities``.

    The options a task takes are the keyword parameters its
    ``probabilities`` names (``voting`` for the Voting ResNet); an option
    only a ``**options`` catch-all would swallow is not one of them.
    """
    try:
        parameters = inspect.signature(task.probabilities).parameters
    except (TypeError, ValueError):
        return True
    return option in list(parameters)[1:]


def _blank_outputs(outputs: Any) -> Any:
    """Zeros shaped like one sample of a model's symbolic outputs (dict, list or one tensor)."""
    if isinstance(outputs, Mapping):
        return {name: _blank_outputs(value) for name, value in outputs.items()}
    if isinstance(outputs, (list, tuple)):
        return type(outputs)(_blank_outputs(value) for value in outputs)
    return np.zeros((1, *(1 if d is None else int(d) for d in tuple(outputs.shape)[1:])), np.float32)


def num_classes(task: Task, model, source: str, **options: Any) -> int:
    """The classes ``task`` reads from ``model``'s outputs with ``options``, checked without running it.

    An option that is not a named parameter of the task's ``probabilities``
    is refused in one line naming the tasks that take it; a value the task
    refuses raises its own ``ValueError``. The result must be
    ``(batch, K)`` with ``K >= 2``.
    """
    for option, value in options.items():
        if not _takes(task, option):
            takers = [task_title(t) for t in all_tasks().values() if t is not task and _takes(t, option)]
            where = f"{' or '.join(takers)} models" if takers else "no registered task"
            raise ValueError(f"{option} applies to {where}, and {source} is a {task_title(task)} "
                             f"model. Received: {option}={value!r}")
    shape = np.shape(task.probabilities(_blank_outputs(model.output), **options))
    if len(shape) != 2 or shape[-1] < 2:
        raise ValueError(f"{source} gives class scores of shape {shape[1:]}: a classifier gives "
                         "(batch, classes) with at least 2 classes")
    return int(shape[-1])
