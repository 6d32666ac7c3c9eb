"""The paper's Table 3 measured: does voting after a module beat the plain ResNet-18?

One resumable experiment on a dataset's train / validation / test split,
with every model scored on the same test images:

1. ``baseline``: the ResNet-18 without a split (``split_after=0``), trained
   with the recipe, the epoch chosen on validation vote accuracy;
2. ``test-time``: the baseline's weights in the model split after module 1,
   2 and 3 (the crop layer has no weights, so they load as they are), with
   soft and hard voting: voting at no training cost;
3. ``fine-tuned``: each of those voters trained further from the baseline's
   weights, as the paper initialises its RAF-DB models from its AffectNet
   ones, with soft and hard voting;
4. the control: the baseline itself fine-tuned with the voters' recipe (a
   ``fine-tuned`` row with ``split_after=0``), so that a voter's gain over
   the baseline can be told apart from the extra training it had;
5. ``from-scratch`` (``scratch_split_after``, none by default): a voter
   trained from scratch with exactly the baseline's recipe and epochs, the
   paper's own design (it trains every architecture with one schedule);
   fine-tuning from the baseline (3) is this project's.

Every row holds the test accuracy, macro F1, the 95% bootstrap interval of
the accuracy, the exact McNemar p-value against the baseline on the same
test images, the epochs, the training throughput and the wall time. Rows are
written to ``comparison.json`` as soon as they are measured, and every model
to its folder, so ``resume`` goes on from the last finished row (and a
training from its last completed epoch). A resumed comparison may add rows
(more voters in ``split_after`` or ``scratch_split_after``); every other
setting must be the run's.

Recipes (:data:`RECIPES`, ``--recipe``): ``paper`` is the paper's RAF-DB schedule for each
model (40 epochs, batch 135, Adam 2e-4 x 0.95 per epoch; for a GPU);
``converge`` this project's recipe for a converged baseline in few images
(AdamW, a warm-up then a cosine, label smoothing, horizontal flips);
``cpu`` a schedule that fits about 2.5 hours on two CPU cores with bfloat16
(6 baseline epochs at a higher rate, then 2 short epochs of 3,000 images per
voter); ``smoke`` runs in seconds for tests.
"""
from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from csa_keras.data.dataset import FaceDataset
from csa_keras.data.faces import preprocessing_for
from csa_keras.data.protocols import Split
from csa_keras.evaluation.figures import read_history_csv
from csa_keras.evaluation.metrics import classification_metrics
from csa_keras.evaluation.statistics import bootstrap_interval, mcnemar_p
from csa_keras.training.experiment import Experiment, run_lifecycle
from csa_keras.training.loop import chief_value
from csa_keras.training.rundir import write_history
from csa_keras.utils import files
from csa_keras.utils.artifacts import save_model
from csa_keras.utils.messages import must
from voting_resnet.comparison_report import write_comparison_report
from voting_resnet.comparison_stats import complete_rows, model_folder, row_key
from voting_resnet.config import VRNConfig
from voting_resnet.layers.voting import VOTING_MODES, vote
from voting_resnet.models.resnet18 import VOTER_SPLIT_POINTS, build_voting_resnet
from voting_resnet.training import MODEL_FILE, crop_logits, fit_model, prepare_dataset, transfer_weights

_VOTERS = " ".join(map(str, VOTER_SPLIT_POINTS))

TRAININGS = ("baseline", "test-time", "fine-tuned", "from-scratch")
"""How a row's model was trained (the ``training`` key of a row)."""


@dataclasses.dataclass(frozen=True)
class CompareConfig(VRNConfig):
    """The comparison's settings: the recipe of the baseline, then how voters are fine-tuned.

    ``epochs``, ``lr``, ``lr_decay`` and ``batch_size`` train the baseline;
    ``finetune_epochs`` epochs of ``finetune_images`` training images each
    (``None``: the whole training set) at ``finetune_lr`` x ``lr_decay`` per
    epoch fine-tune each voter of ``split_after`` from it.
    """

    RESUME_ADDS: ClassVar[tuple[str, ...]] = ("split_after", "scratch_split_after")

    split_after: tuple[int, ...] = VOTER_SPLIT_POINTS
    scratch_split_after: tuple[int, ...] = ()
    retrain: str = "never"
    finetune_epochs: int = 2
    finetune_images: int | None = 3000
    finetune_lr: float = 1e-4
    bootstrap_seed: int = 0

    def checks(self) -> list[tuple[bool, str]]:
        return [
            *super().checks(),
            (0 not in self.split_after,
             must("split_after", f"name voters ({_VOTERS.replace(' ', ', ')}): the baseline is always compared",
                  list(self.split_after))),
            (all(s in VOTER_SPLIT_POINTS for s in self.scratch_split_after),
             must("scratch_split_after", f"take values in {_VOTERS}",
                  list(self.scratch_split_after))),
            (self.finetune_epochs >= 0, must("finetune_epochs", "be at least 0",
                                             self.finetune_epochs)),
            (self.finetune_images is None or self.finetune_images >= 1,
             must("finetune_images", "be at least 1", self.finetune_images)),
            (self.finetune_lr > 0, must("finetune_lr", "be positive", self.finetune_lr)),
        ]


RECIPES: dict[str, CompareConfig] = {
    "cpu": CompareConfig(preset="cpu", epochs=6, batch_size=64, lr=1e-3, lr_decay=0.75,
                         finetune_epochs=2, finetune_images=3000, finetune_lr=1e-4,
                         precision="auto"),
    "converge": CompareConfig(preset="converge", epochs=16, batch_size=64, lr=2e-3,
                              schedule="cosine", warmup_epochs=1.0, label_smoothing=0.1,
                              weight_decay=0.05, flip=True, finetune_epochs=2,
                              finetune_images=6000, finetune_lr=2e-4, precision="auto"),
    "paper": CompareConfig(preset="paper", epochs=40, batch_size=135, lr=2e-4, lr_decay=0.95,
                           finetune_epochs=40, finetune_images=None, finetune_lr=2e-4,
                           precision="auto"),
    "smoke": CompareConfig(preset="smoke", epochs=1, batch_size=16, finetune_epochs=1,
                           finetune_images=16, synthetic_subjects=6,
                           synthetic_images_per_class=1),
}


PREDICTIONS = "predictions.json"
"""Every row's test predictions, keyed by :func:`row_key`, with the test indices and labels:
what paired tests between any two rows (McNemar against the control) are computed from."""


def _read_json(path: Path) -> Any:
    try:
        return files.read_json(path)
    except files.FileTooLarge:
        raise
    except (OSError, ValueError):
        return None


def _read_predictions(path: Path) -> dict[str, list[int]]:
    saved = _read_json(path)
    rows = saved.get("rows") if isinstance(saved, dict) else None
    return rows if isinstance(rows, dict) else {}


def rewrite_report(output: str | os.PathLike) -> list[dict[str, Any]]:
    """Complete the rows of the comparison in ``output`` and write ``report.md`` again, training
    nothing: for a comparison written by an earlier version, or stopped before its end.

    Reads ``config.json``, ``comparison.json`` and ``predictions.json``
    (without it, ``p_vs_control`` stays empty); a folder without the first
    two is refused in one line. A trained row's ``seconds`` is read again
    from ``history.csv`` where it holds the row's training: every epoch,
    those of an earlier process of a resumed run included. Returns the
    completed rows.
    """
    out = Path(output)
    saved, rows = _read_json(out / "config.json"), _read_rows(out / "comparison.json")
    if not isinstance(saved, dict) or not isinstance(saved.get("config"), dict) or not rows:
        raise ValueError(f"output {out} holds no comparison to report (config.json and "
                         "comparison.json)")
    fields = {f.name for f in dataclasses.fields(CompareConfig)}
    settings = {k: tuple(v) if isinstance(v, list) else v
                for k, v in saved["config"].items() if k in fields}
    settings["reader_options"] = tuple(tuple(p) for p in settings.get("reader_options", ()))
    config = CompareConfig(**settings)
    dataset = saved.get("run", {}).get("dataset") or {}
    if not dataset.get("class_names"):
        raise ValueError(f"output {out}: config.json names no classes (run.dataset.class_names)")
    dataset.setdefault("name", "?")
    dataset.setdefault("n_images", "?")
    phases = read_history_csv(out / "history.csv") if (out / "history.csv").is_file() else {}
    for row in rows:
        trained = phases.get(model_folder(row["training"], row["split_after"]))
        if row["training"] in ("fine-tuned", "from-scratch") and trained:
            row["seconds"] = round(_training_seconds(trained), 1)
    rows = complete_rows(rows, _read_json(out / PREDICTIONS))
    files.write_json(out / "comparison.json", rows)
    write_comparison_report(out, config, dataset, rows)
    return rows


def _read_rows(path: Path) -> list[dict[str, Any]]:
    try:
        rows = files.read_json(path)
    except files.FileTooLarge:
        raise
    except (OSError, ValueError):
        return []
    return rows if isinstance(rows, list) else []


@dataclasses.dataclass
class _Scorer:
    """Scores models on the comparison's fixed validation and test images."""

    config: CompareConfig
    dataset: FaceDataset
    val: np.ndarray
    test: np.ndarray
    baseline_correct: np.ndarray | None = None

    def rows(self, model, split_after: int, training: str, epochs: float, seconds: float,
             images_per_second: float | None) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
        """One row per voting mode (one for the baseline), and the test predictions of each."""
        labels, names = self.dataset.labels, self.dataset.class_names
        val_logits = crop_logits(model, self.dataset.images[self.val], self.config.batch_size)
        test_logits = crop_logits(model, self.dataset.images[self.test], self.config.batch_size)
        modes = ("none",) if split_after == 0 else VOTING_MODES
        rows, predictions = [], {}
        for mode in modes:
            voting = "soft" if mode == "none" else mode
            predicted = vote(test_logits, voting).argmax(axis=1)
            correct = predicted == labels[self.test]
            metrics = classification_metrics(labels[self.test], predicted, names)
            low, high = bootstrap_interval(correct, seed=self.config.bootstrap_seed)
            val_accuracy = float(np.mean(vote(val_logits, voting).argmax(axis=1) == labels[self.val]))
            p_value = (None if self.baseline_correct is None or training == "baseline"
                       else mcnemar_p(correct, self.baseline_correct))
            rows.append({
                "split_after": split_after, "voting": mode, "training": training,
                "accuracy": metrics["accuracy"], "f1_macro": metrics["f1_macro"],
                "balanced_accuracy": metrics["balanced_accuracy"],
                "ci_low": low, "ci_high": high, "p_vs_baseline": p_value,
                "val_accuracy": val_accuracy, "epochs": round(float(epochs), 3),
                "train_images_per_second": images_per_second, "seconds": round(seconds, 1),
                "n_test": len(self.test), "confusion_matrix": metrics["confusion_matrix"],
            })
            predictions[mode] = predicted
        if len(modes) == 2:
            truth = labels[self.test]
            p_modes = mcnemar_p(predictions["soft"] == truth, predictions["hard"] == truth)
            for row in rows:
                row["p_soft_vs_hard"] = p_modes
        return rows, predictions


def _history(folder: Path) -> dict[str, list[float]]:
    """The Keras history a model's folder keeps in ``history.csv`` (empty before training)."""
    phases = read_history_csv(folder / "history.csv") if (folder / "history.csv").is_file() else {}
    return next(iter(phases.values()), {})


def _training_seconds(history: dict[str, list[float]]) -> float:
    return float(np.nansum(history.get("epoch_seconds", [])))


def _throughput(history: dict[str, list[float]], images_per_epoch: int) -> float | None:
    seconds = _training_seconds(history)
    epochs = len(history.get("epoch_seconds", []))
    return round(epochs * images_per_epoch / seconds, 2) if seconds > 0 else None


def _with_baseline_weights(baseline_file: Path, split_after: int, num_classes: int,
                           input_shape: tuple[int, ...]):
    """The model split after ``split_after`` holding the baseline's weights."""
    model = build_voting_resnet(num_classes=num_classes, input_shape=input_shape,
                                split_after=split_after)
    transfer_weights(model, baseline_file)
    return model


def run_comparison(config: CompareConfig, output: str | os.PathLike | None = None,
                   dataset: FaceDataset | None = None, verbose: int | str = "auto",
                   log: Callable[[str], None] = print, resume: bool = False) -> list[dict[str, Any]]:
    """Measure every row of the comparison (module docstring); returns ``comparison.json``'s rows.

    ``output`` defaults to ``runs/compare-<timestamp>``; ``resume`` goes on
    with the run a killed process left there (same settings), keeping every
    row and model it finished. The data, protocol, precision and strategy
    settings, the run directory's ``config.json``, ``splits.json`` and
    ``data.json`` and its closing are those of every training command
    (:func:`~csa_keras.training.experiment.run_lifecycle`), on the first split
    of the protocol. Under ``strategy="multi-worker"`` only the chief writes
    and scores; every other worker takes part in each training and returns
    no rows.
    """
    return run_lifecycle(config, _compare, name="compare", prepare=prepare_dataset,
                         colour=config.channels == 3, output=output, dataset=dataset,
                         verbose=verbose, log=log, resume=resume, choose=_first_split)


def _first_split(config: CompareConfig, splits: list[Split]) -> list[Split]:
    """The protocol's first split, which must hold validation images: every model is chosen on them."""
    split = splits[0]
    if split.val is None or not len(split.val):
        raise ValueError(must("val_fraction", "be above 0: every model is chosen on validation",
                              config.val_fraction))
    return [split]


def _compare(run: Experiment) -> list[dict[str, Any]]:
    """Every row measured in the opened run, each written as soon as it is.

    Which trainings run is the chief's decision (:func:`~csa_keras.training.loop.chief_value`),
    from its run directory: another worker of a multi-worker run has only a
    scratch folder, and must take part in exactly the chief's trainings. It
    keeps its models there, since loading the baseline to fine-tune from
    creates variables, which every worker must do alike; it scores nothing
    and writes no record.
    """
    config, out, chief, strategy, log = run.config, run.out, run.chief, run.strategy, run.log
    split, dataset = run.splits[0], run.dataset
    path = out / "comparison.json"
    rows = _read_rows(path) if run.resume and chief else []
    train, val, test = np.asarray(split.train), np.asarray(split.val), np.asarray(split.test)
    scorer = _Scorer(config, dataset, val, test)
    images, labels, k = dataset.images, dataset.labels, dataset.num_classes
    preprocessing = preprocessing_for(dataset.class_names, images.shape[1:], config.detect)
    input_shape = tuple(images.shape[1:])

    def done(training: str, split_after: int) -> bool:
        return bool(chief_value(strategy, any(r["training"] == training
                                               and r["split_after"] == split_after for r in rows)))

    saved_predictions = _read_predictions(out / PREDICTIONS) if run.resume and chief else {}

    def record(scored: tuple[list[dict[str, Any]], dict[str, np.ndarray]]) -> None:
        new_rows, predicted = scored
        for row in new_rows:
            saved_predictions[row_key(row)] = predicted[row["voting"]].tolist()
        files.write_json(out / PREDICTIONS, {"test": test.tolist(),
                                             "labels": labels[test].tolist(),
                                             "rows": saved_predictions})
        rows.extend(new_rows)
        files.write_json(path, rows)

    def fit(tuned: CompareConfig, s: int, folder: Path, state: str,
            images_per_epoch: int | None = None):
        result = fit_model(tuned, s, images[train], labels[train], k, folder, strategy,
                           val=(images[val], labels[val]), verbose=run.verbose,
                           state=run.state / state, resume=run.resume,
                           images_per_epoch=images_per_epoch)
        write_history(folder / "history.csv", [(folder.name, result.history)])
        save_model(result.model, folder / MODEL_FILE, preprocessing=preprocessing)
        return result

    baseline_file = out / "baseline" / MODEL_FILE
    if chief_value(strategy, not baseline_file.is_file()):
        log(f"baseline: training on {len(train)} images for up to {config.epochs} epochs")
        fit(config.replace(split_after=(0,)), 0, out / "baseline", "baseline")
    if not chief:
        _train_as_the_chief(config, done, fit, out)
        return []
    started = time.perf_counter()
    history = _history(out / "baseline")
    baseline = _with_baseline_weights(baseline_file, 0, k, input_shape)
    base_rows, predictions = scorer.rows(
        baseline, 0, "baseline", len(history.get("loss", [])),
        _training_seconds(history) + time.perf_counter() - started,
        _throughput(history, len(train)))
    scorer.baseline_correct = predictions["none"] == labels[test]
    if not any(r["training"] == "baseline" for r in rows):
        record((base_rows, predictions))

    for s in config.split_after:
        if not any(r["training"] == "test-time" and r["split_after"] == s for r in rows):
            started = time.perf_counter()
            log(f"test-time voting after module {s} with the baseline's weights")
            voter = _with_baseline_weights(baseline_file, s, k, input_shape)
            record(scorer.rows(voter, s, "test-time", 0, time.perf_counter() - started, None))

    per_epoch = config.finetune_images or len(train)
    for s in (0, *config.split_after):
        if config.finetune_epochs == 0 or done("fine-tuned", s):
            continue
        log("fine-tuning the baseline with the voters' recipe (the control)" if s == 0 else
            f"fine-tuning the voter after module {s} from the baseline")
        result = fit(_fine_tuning(config, s, str(baseline_file)), s,
                       out / model_folder("fine-tuned", s), f"finetune{s}", config.finetune_images)
        record(scorer.rows(result.model, s, "fine-tuned",
                           len(result.history.get("loss", [])) * per_epoch / len(train),
                           _training_seconds(result.history), _throughput(result.history, per_epoch)))

    for s in config.scratch_split_after:
        if done("from-scratch", s):
            continue
        log(f"training the voter after module {s} from scratch with the baseline's recipe "
            f"(the paper's design) on {len(train)} images for up to {config.epochs} epochs")
        result = fit(config.replace(split_after=(s,)), s, out / model_folder("from-scratch", s),
                       f"scratch{s}")
        record(scorer.rows(result.model, s, "from-scratch", len(result.history.get("loss", [])),
                           _training_seconds(result.history), _throughput(result.history, len(train))))

    folders = ["baseline", *(model_folder("fine-tuned", s) for s in (0, *config.split_after)),
               *(model_folder("from-scratch", s) for s in config.scratch_split_after)]
    write_history(out / "history.csv", [
        (folder, h) for folder in folders if (h := _history(out / folder))])
    rows = complete_rows(rows, _read_json(out / PREDICTIONS))
    files.write_json(path, rows)
    write_comparison_report(out, config, dataset.summary(), rows)
    return rows


def _fine_tuning(config: CompareConfig, split_after: int, init_from: str) -> CompareConfig:
    """The recipe of a voter (or of the control, ``split_after=0``) fine-tuned from the baseline."""
    return config.replace(split_after=(split_after,), epochs=config.finetune_epochs,
                          lr=config.finetune_lr, warmup_epochs=0.0, init_from=init_from)


def _train_as_the_chief(config: CompareConfig, done: Callable[[str, int], bool],
                        fit: Callable[..., Any], out: Path) -> None:
    """Another worker's part: the trainings the chief runs, in its order, scoring nothing.

    It fine-tunes from the baseline in its own folder, which a resumed run whose baseline was
    trained before does not have there: such a comparison resumes on one machine."""
    for s in (0, *config.split_after):
        if config.finetune_epochs and not done("fine-tuned", s):
            fit(_fine_tuning(config, s, str(out / "baseline" / MODEL_FILE)), s,
                out / model_folder("fine-tuned", s), f"finetune{s}", config.finetune_images)
    for s in config.scratch_split_after:
        if not done("from-scratch", s):
            fit(config.replace(split_after=(s,)), s, out / model_folder("from-scratch", s),
                f"scratch{s}")
