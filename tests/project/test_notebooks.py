"""The notebooks in ``notebooks/`` run, tell their story with the library, and ship with figures.

Each notebook is executed with nbclient under ``FER_NOTEBOOK_SMOKE=1`` (its
tiny ``smoke`` settings) and ``FER_NOTEBOOK_OUTPUT`` in a temporary folder,
by a kernel of the Python running the tests: a kernelspec written for
``sys.executable`` and found through ``JUPYTER_PATH``, so the run does not
depend on which kernels the machine has installed.
"""
import ast
import json
import sys
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
NAMES = ["01_csa_pretraining.ipynb", "02_csa_classification.ipynb", "03_voting_resnet.ipynb"]
KERNEL = "csa-keras-tests"
MODEL_CODE = ("keras.layers.", "layers.Conv2D", "layers.Dense", "keras.Sequential", "keras.Model(")


@pytest.fixture(scope="module")
def kernel_path(tmp_path_factory):
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
                 "--IPKernelApp.capture_fd_output=False"],
        "display_name": "Python (tests)",
        "language": "python",
    }))
    return root


def code_cells(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    return [cell for cell in nb.cells if cell.cell_type == "code"]


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.heavy) if n.startswith("03") else n
                                  for n in NAMES])
def test_notebook_runs_in_smoke_mode(name, kernel_path, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("JUPYTER_PATH", str(kernel_path))
    monkeypatch.setenv("FER_NOTEBOOK_SMOKE", "1")
    monkeypatch.setenv("FER_NOTEBOOK_OUTPUT", str(tmp_path))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.delenv("MPLBACKEND", raising=False)
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(nb, kernel_name=KERNEL, timeout=600,
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    texts = [o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert any("smoke" in t for t in texts), "the notebook ignored FER_NOTEBOOK_SMOKE"
    assert any(tmp_path.rglob("*.png")), "no figure written under FER_NOTEBOOK_OUTPUT"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_defines_no_model_code(name):
    for cell in code_cells(name):
        tree = ast.parse(cell.source)
        assert not any(isinstance(node, ast.ClassDef) for node in ast.walk(tree)), cell.source
        for text in MODEL_CODE:
            assert text not in cell.source, f"{name} builds a model itself: {text}"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_committed_with_outputs_of_a_full_run(name):
    cells = code_cells(name)
    assert all(cell.get("execution_count") for cell in cells), "not every cell was executed"
    outputs = [o for cell in cells for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 2, "no figures saved"
    texts = "".join(o.get("text", "") for o in outputs)
    assert "smoke" not in texts, "saved from a smoke run"
