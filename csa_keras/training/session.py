"""The lifecycle every training command shares, whatever the task (SPEC §5).

Strategy, seeds, precision policy and the batch check come first; then the
run directory is opened (refusing an unfinished run without ``resume``),
the task's body runs, and the directory is closed: the chief completes it,
any other worker removes its private copy even when the body fails.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from csa_keras.training import rundir
from csa_keras.training.strategy import (describe, get_strategy, is_chief, seed_everything,
                                         set_precision, task_id)


def run_session(config, output: str | os.PathLike | None, task: str,
                body: Callable[..., dict[str, Any]], resume: bool,
                log: Callable[[str], None]) -> dict[str, Any]:
    """Run ``body(out, strategy, chief, run_info)`` inside an opened run directory.

    ``task`` names the default output folder. A finished run given with
    ``resume`` returns its ``metrics.json`` without training again.
    """
    config.validate()
    strategy = get_strategy(config.strategy)
    deterministic = seed_everything(config.seed, config.deterministic)
    policy = set_precision(config.precision)
    if config.batch_size % strategy.num_replicas_in_sync:
        raise ValueError(f"--batch-size {config.batch_size} is not divisible by the "
                         f"{strategy.num_replicas_in_sync} replicas")
    chief = is_chief(strategy)
    out: Path = rundir.open_run(output or rundir.default_output(task), config.to_dict(), chief,
                                resume, task_id(strategy))
    if resume and chief and (done := rundir.finished_metrics(out)) is not None:
        log(f"{out} is a finished run: nothing to resume")
        return done
    try:
        metrics = body(out, strategy, chief, {"strategy": describe(strategy),
                                              "precision_policy": policy,
                                              "op_determinism": deterministic})
    finally:
        if not chief:
            rundir.close_run(out, chief=False)
    if chief:
        rundir.close_run(out)
    return metrics
