"""The registry of tasks: what the shared commands know of a model family.

A task (the CSA, the Voting ResNet, or one a user adds) describes itself with
a subclass of :class:`Task` and registers an instance of it, so that the
commands serving every task (train, predict, export, evaluate) look it up by
name, by a run's ``config.json`` or by a loaded model (:func:`task_of_model`),
and never import one by name. The
project's own tasks are declared as entry points of the group
``csa_keras.tasks`` in the package metadata (``pyproject.toml``); a task outside
the project registers the same way from its own distribution, or at run time
with :func:`register`.

This module sits below everything else of the package: it imports no other
part of it, and loads a task's module only when the task is asked for.
"""
from __future__ import annotations

import abc
import importlib.metadata
from collections.abc import Iterable, Mapping
from typing import Any

ENTRY_POINT_GROUP = "csa_keras.tasks"

ATTRIBUTES = ("name", "title", "description", "model_file", "run_files", "packages", "presets")
"""What a task states about itself, as class attributes (:class:`Task`)."""


class Task(abc.ABC):
    """One model family and how the shared commands drive it.

    A task is a subclass that sets the attributes below and implements the
    abstract methods; the other methods have defaults that fit a task with
    one model, grey input and no checks of its own. The project registers
    one instance per task.

    Attributes:
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
    """

    name: str
    title: str
    description: str
    model_file: str
    run_files: tuple[str, ...]
    packages: tuple[str, ...]
    presets: Mapping[str, Any]

    # The training command.

    @abc.abstractmethod
    def add_arguments(self, parser) -> None:
        """Add the task's own options to an ``argparse`` parser."""

    @abc.abstractmethod
    def config_changes(self, args) -> dict[str, Any]:
        """The task's settings from parsed arguments (``None`` keeps the recipe's)."""

    # Training (see :mod:`csa_keras.training.experiment`).

    def colour(self, config) -> bool:
        """Whether datasets are read in colour for ``config`` (default: grey)."""
        return False

    @abc.abstractmethod
    def prepare_dataset(self, config, dataset, log):
        """The loaded dataset made to fit the task's input (grey or colour, checks), or a
        one-line refusal; ``log`` takes the lines it reports."""

    def check_splits(self, config, splits) -> None:
        """Refuse, in one line, splits the task cannot use (default: every split serves)."""
        return None

    @abc.abstractmethod
    def fit_split(self, config, dataset, split, folder, strategy, *, verbose, log, chief, state, resume):
        """Train and score one split of the protocol: a
        :class:`~csa_keras.training.experiment.SplitOutcome`."""

    # The run's results.

    def describe(self, metrics: dict[str, Any]) -> str:
        """The model a run's ``metrics`` score, in one line for its model card (default:
        :attr:`description`)."""
        return self.description

    def aggregate(self, config, outcomes, names, metrics: dict[str, Any]) -> dict[str, Any]:
        """``metrics.json`` over several folds, from the folds' aggregate ``metrics`` (default: as is)."""
        return metrics

    def extra_metrics(self, config) -> dict[str, Any]:
        """The task's own keys of ``metrics.json`` (default: none)."""
        return {}

    @abc.abstractmethod
    def write_report(self, out, config, dataset, outcomes, metrics):
        """Write ``report.md`` and the figures into the run directory ``out``."""

    @abc.abstractmethod
    def summary(self, metrics: dict) -> str:
        """The one-line result a command prints."""

    # Its models.

    @abc.abstractmethod
    def owns(self, model) -> bool:
        """Whether a loaded Keras model is one this task's builders write.

        Recognised by something the builders put there (the names of their
        layers and outputs, their registered classes), never by a shape any
        other model may have: :func:`task_of_model` refuses a model two tasks
        claim.
        """

    @abc.abstractmethod
    def probabilities(self, outputs, **options: Any):
        """Class probabilities ``(N, K)`` from the model's outputs; the keyword
        parameters it names are the options the task takes (``voting``)."""

    def __repr__(self) -> str:
        return f"<task {getattr(self, 'name', type(self).__name__)!r}>"


_REGISTRY: dict[str, Task] = {}
_LOADED = False


def register(task: Task) -> Task:
    """Add ``task`` to the registry (a later registration of the same name replaces it)."""
    if not isinstance(task, Task):
        raise TypeError(f"register takes a Task. Received: {type(task).__name__}")
    missing = [a for a in ATTRIBUTES if not hasattr(task, a)]
    if missing:
        raise TypeError(f"a task must set {', '.join(ATTRIBUTES)}. Received: {type(task).__name__} "
                        f"without {', '.join(missing)}")
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


def describe_model(model) -> str:
    """``a model named 'x' with 1 output (dense)``: what a message says it received."""
    outputs = list(getattr(model, "output_names", None) or [])
    count = len(getattr(model, "outputs", None) or outputs)
    named = f" ({', '.join(outputs)})" if outputs else ""
    return f"a model named {getattr(model, 'name', type(model).__name__)!r} with {count} " \
           f"output{'' if count == 1 else 's'}{named}"


def task_of_model(model) -> Task:
    """The one task whose builders wrote a loaded Keras model, or a one-line error.

    Every registered task is asked (:meth:`Task.owns`), so the order of the
    registry never decides: a model no task claims, or one two tasks claim,
    is refused.
    """
    tasks = all_tasks().values()
    owners = [task for task in tasks if task.owns(model)]
    if len(owners) == 1:
        return owners[0]
    if owners:
        raise ValueError(f"model must be built by one task, and {' and '.join(t.title for t in owners)} "
                         f"each claim it. Received: {describe_model(model)}")
    known = ", ".join(sorted(t.title for t in tasks)) or "none (is the package installed?)"
    raise ValueError(f"model must be built by a registered task ({known}). Received: {describe_model(model)}")


def model_packages() -> tuple[str, ...]:
    """The packages whose classes saved models may hold: every task's, without duplicates."""
    seen: list[str] = []
    for task in all_tasks().values():
        seen += [p for p in task.packages if p not in seen]
    return tuple(seen)


def names(tasks: Iterable[Task] | None = None) -> list[str]:
    return sorted(t.name for t in (tasks if tasks is not None else all_tasks().values()))
