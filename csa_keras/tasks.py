"""The registry of tasks: what the shared commands know of a model family.

A task (the CSA, the Voting ResNet, or one a user adds) describes itself with
a :class:`Task` and registers it, so that the commands serving every task
(train, predict, export, evaluate) look it up by name, by a run's
``config.json`` or by a loaded model, and never import one by name. The
project's own tasks are declared as entry points of the group
``csa_keras.tasks`` in the package metadata (``pyproject.toml``); a task outside
the project registers the same way from its own distribution, or at run time
with :func:`register`.

This module sits below everything else of the package: it imports no other
part of it, and loads a task's module only when the task is asked for.
"""
from __future__ import annotations

import dataclasses
import importlib.metadata
from collections.abc import Callable, Iterable, Mapping
from typing import Any

ENTRY_POINT_GROUP = "csa_keras.tasks"


@dataclasses.dataclass(frozen=True)
class Task:
    """One model family and how the shared commands drive it.

    Args:
        name: the name recorded as ``task`` in ``metrics.json`` and used in
            default run folders (``runs/<name>-<timestamp>``).
        title: the task's name in messages (``CSA``, ``Voting ResNet``).
        description: one line for ``--help`` and reports.
        model_file: the ``.keras`` file of a run directory that predicts
            (``classifier.keras``, ``model.keras``).
        run_files: every ``.keras`` file a run directory holds at its top
            level (copied from fold 1 under k-fold).
        packages: the top-level packages whose registered classes its saved
            models hold; the safe loader imports these and nothing a file
            names.
        presets: named configs (``paper``, ``quick``, ``smoke``).
        add_arguments: adds the task's own options to an ``argparse`` parser.
        config_changes: the task's settings from parsed arguments.
        fit_split: trains and scores one split of the protocol
            (see :mod:`csa_keras.training.experiment`).
        prepare_dataset: makes a loaded dataset fit the task's input (grey or
            colour, checks), or refuses it in one line.
        check_splits: refuses, in one line, splits the task cannot use.
        aggregate: ``metrics.json`` over several folds, from the folds' aggregate
            (``aggregate(config, outcomes, fold_names, metrics)``).
        extra_metrics: task keys of ``metrics.json`` from the config.
        write_report: writes ``report.md`` and the figures.
        summary: the one-line result a command prints.
        owns: whether a loaded Keras model belongs to this task.
        probabilities: class probabilities ``(N, K)`` from the model's
            outputs (a task with several outputs chooses the one that votes).
        colour: whether the task reads datasets in colour for a config.
    """

    name: str
    title: str
    description: str
    model_file: str
    run_files: tuple[str, ...]
    packages: tuple[str, ...]
    presets: Mapping[str, Any]
    add_arguments: Callable[..., None]
    config_changes: Callable[..., dict[str, Any]]
    fit_split: Callable[..., Any]
    prepare_dataset: Callable[..., Any]
    write_report: Callable[..., Any]
    summary: Callable[[dict], str]
    owns: Callable[[Any], bool]
    probabilities: Callable[[Any], Any]
    check_splits: Callable[..., None] = lambda config, splits: None
    aggregate: Callable[..., dict[str, Any]] = lambda config, outcomes, names, metrics: metrics
    extra_metrics: Callable[..., dict[str, Any]] = lambda config: {}
    colour: Callable[[Any], bool] = lambda config: False


_REGISTRY: dict[str, Task] = {}
_LOADED = False


def register(task: Task) -> Task:
    """Add ``task`` to the registry (a later registration of the same name replaces it)."""
    if not isinstance(task, Task):
        raise TypeError(f"register takes a Task. Received: {type(task).__name__}")
    _REGISTRY[task.name] = task
    return task


def _load_entry_points() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry.name not in _REGISTRY:
            task = entry.load()
            _REGISTRY.setdefault(task.name, task)


def all_tasks() -> dict[str, Task]:
    """Every registered task by name, the installed ones loaded on first use."""
    _load_entry_points()
    return dict(_REGISTRY)


def get_task(name: str) -> Task:
    """The task called ``name``, or a one-line error naming the registered ones."""
    tasks = all_tasks()
    if name not in tasks:
        known = ", ".join(sorted(tasks)) or "none (is the package installed?)"
        raise ValueError(f"task must be one of {known}. Received: task={name!r}")
    return tasks[name]


def task_of_model(model) -> Task:
    """The task a loaded Keras model belongs to, or a one-line error."""
    for task in all_tasks().values():
        if task.owns(model):
            return task
    raise ValueError(f"model {getattr(model, 'name', model)!r} belongs to no registered task "
                     f"({', '.join(sorted(all_tasks()))})")


def model_packages() -> tuple[str, ...]:
    """The packages whose classes saved models may hold: every task's, without duplicates."""
    seen: list[str] = []
    for task in all_tasks().values():
        seen += [p for p in task.packages if p not in seen]
    return tuple(seen)


def names(tasks: Iterable[Task] | None = None) -> list[str]:
    return sorted(t.name for t in (tasks if tasks is not None else all_tasks().values()))
