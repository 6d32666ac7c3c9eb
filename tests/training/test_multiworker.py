"""Multi-worker training: two worker processes on localhost train the ``smoke`` preset.

Both workers run the same training with ``--strategy multi-worker`` and the
same ``--output``, as on machines sharing a file system. The chief (worker 0)
must leave a complete run directory; the other worker must write nothing
there and leave nothing in its temporary folder; both must end with
identical weights. Each worker saves its final weights to a side folder
through a wrapper around the training function, so the comparison sees
what each process held in memory.
"""
import json
import textwrap

import numpy as np
import pytest
from commands import run_workers

WORKER = textwrap.dedent("""
    import json, os, sys
    task, output, keep = sys.argv[1:4]
    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    if task == "csa":
        from csa_keras.csa import training as module
        from csa_keras.csa.config import preset
        inner, run, name = module.fit_split, module.run_csa, "fit_split"
        final = lambda outcome: outcome.details.classifier
    else:
        from voting_resnet import training as module
        from voting_resnet.config import preset
        inner, run, name = module.fit_split, module.run_vrn, "fit_split"
        final = lambda outcome: outcome.details.model

    def keeping(*args, **kwargs):
        result = inner(*args, **kwargs)
        final(result).save_weights(os.path.join(keep, f"worker{index}.weights.h5"))
        return result

    setattr(module, name, keeping)
    metrics = run(preset("smoke").replace(strategy="multi-worker"), output=output, verbose=0,
                  log=lambda line: None)
    print(json.dumps({k: v for k, v in metrics.items() if "seconds" not in k
                      and k != "comparison"}))
""")

RUN_FILES = {
    "csa": {"config.json", "autoencoder.keras", "classifier.keras", "metrics.json", "report.md",
            "history.csv", "confusion_matrix.png", "curves.png", "reconstructions.png",
            "gradcam.png", "splits.json", "data.json", "MODEL_CARD.md", "tensorboard"},
    "vrn": {"config.json", "model.keras", "metrics.json", "report.md", "history.csv",
            "confusion_matrix.png", "curves.png", "gradcam.png", "splits.json", "data.json",
            "MODEL_CARD.md", "tensorboard"},
}


def weights(path):
    import h5py

    values = {}
    with h5py.File(path, "r") as handle:
        handle.visititems(lambda name, item: values.__setitem__(name, item[()])
                          if isinstance(item, h5py.Dataset) else None)
    return values


@pytest.mark.parametrize("task", ["csa", pytest.param("vrn", marks=pytest.mark.slow)])
def test_two_workers_on_localhost(task, tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out, keep = tmp_path / "run", tmp_path / "keep"
    keep.mkdir()
    results, scratch, wall = run_workers(script, task, out, keep, scratch_in=tmp_path)
    for code, _stdout, stderr in results:
        assert code == 0, stderr[-3000:]
    print(f"{task}: two workers trained the smoke preset in {wall:.1f} s")

    assert {p.name for p in out.iterdir()} == RUN_FILES[task] | {".lock"}  # the chief's, kept
    assert all(not any(folder.iterdir()) for folder in scratch), "a worker left files behind"
    run = json.loads((out / "config.json").read_text())["run"]["strategy"]
    assert run["strategy"] == "CollectiveAllReduceStrategy" and run["replicas"] == 2  # MWMS
    metrics = [json.loads(stdout.strip().splitlines()[-1]) for _, stdout, _ in results]
    assert metrics[0] == metrics[1]
    assert sum(map(sum, metrics[0]["confusion_matrix"])) == metrics[0]["n_test"]

    chief, other = weights(keep / "worker0.weights.h5"), weights(keep / "worker1.weights.h5")
    assert chief.keys() == other.keys() and len(chief) > 10
    for name in chief:
        np.testing.assert_array_equal(chief[name], other[name], err_msg=name)
