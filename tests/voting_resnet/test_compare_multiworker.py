"""``run_comparison`` under ``strategy="multi-worker"``: two worker processes on localhost.

Both workers run the smallest comparison (the ``smoke`` recipe, one voter, a
few 16x16 faces) with the same output, as on machines sharing a file system
(tests/training/test_multiworker.py does the same for the training commands).
The chief must leave the one run directory, whole; the other worker must
write nothing there, return no rows and leave nothing in its temporary
folder.
"""
import json
import textwrap

import pytest
from commands import run_workers

WORKER = textwrap.dedent("""
    import json, sys
    from csa_keras.data.synthetic import make_synthetic_dataset
    from voting_resnet.comparison import RECIPES, run_comparison

    faces = make_synthetic_dataset(seed=0, n_subjects=4, images_per_class=1, size=16, colour=True)
    config = RECIPES["smoke"].replace(strategy="multi-worker", gradcam=False, test_size=0.25,
                                      split_after=(1,))
    rows = run_comparison(config, output=sys.argv[1], dataset=faces, verbose=0, log=lambda line: None)
    print(json.dumps([[r["training"], r["split_after"], r["voting"]] for r in rows]))
""")

RUN_FILES = {"config.json", "splits.json", "data.json", "comparison.json", "predictions.json",
             "report.md", "history.csv", "confusion_matrix_baseline.png",
             "confusion_matrix_best.png", "baseline", "split0", "split1", ".lock"}


@pytest.mark.slow
def test_a_multi_worker_comparison_leaves_one_run_directory(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out = tmp_path / "run"
    results, scratch, wall = run_workers(script, out, scratch_in=tmp_path)
    for code, _stdout, stderr in results:
        assert code == 0, stderr[-3000:]
    print(f"two workers ran the smoke comparison in {wall:.1f} s")

    assert {p.name for p in out.iterdir()} == RUN_FILES
    assert [p.relative_to(tmp_path).as_posix() for folder in scratch for p in folder.rglob("*")] == []
    assert [p for p in tmp_path.iterdir() if p.name not in ("run", "tmp0", "tmp1", "worker.py")] == []
    chief, other = (json.loads(stdout.strip().splitlines()[-1]) for _, stdout, _ in results)
    assert sorted(map(tuple, chief)) == sorted([
        ("baseline", 0, "none"), ("fine-tuned", 0, "none"),
        *((t, 1, v) for t in ("test-time", "fine-tuned") for v in ("soft", "hard"))])
    assert other == []
    rows = json.loads((out / "comparison.json").read_text())
    assert [[r["training"], r["split_after"], r["voting"]] for r in rows] == chief
    run = json.loads((out / "config.json").read_text())["run"]["strategy"]
    assert run["strategy"] == "CollectiveAllReduceStrategy" and run["replicas"] == 2
    assert set(json.loads((out / "splits.json").read_text())) == {"holdout"}
