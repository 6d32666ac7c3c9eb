"""Prediction in an environment without TensorFlow: the light install answers as the Keras path does.

The environment is a fresh venv whose ``site-packages`` links only the
distributions the package's ``dependencies`` name (with theirs), taken from
this environment (``benchmarks/light_install.py``): TensorFlow, Keras,
scikit-learn, SciPy and Matplotlib are absent there, not blocked, so the
command takes the path a ``pip install csa-keras`` without the ``train``
extra takes (``--runtime auto`` finds no TensorFlow and runs LiteRT).
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from csa_keras.inference.export import PARITY_LIMIT
from csa_keras.inference.loading import CSA_MODEL, DEFAULT_MODEL
from csa_keras.inference.predictor import Predictor

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import light_install  # noqa: E402

ROUNDING = 1e-6
"""The command prints probabilities rounded to 6 decimals."""
BFLOAT16_LIMIT = 0.02
"""The Keras path computes in bfloat16, the artifact in float32 (tests/inference/test_litert.py)."""


@pytest.fixture(scope="module")
def keras_records(grace_hopper):
    from csa_keras.inference.artifacts import float32_model

    predictor = Predictor.pretrained(CSA_MODEL, runtime="keras")
    float32 = Predictor(float32_model(predictor.model), class_names=predictor.class_names, grey=predictor.grey)
    return predictor.predict(grace_hopper)[0], float32.predict(grace_hopper)[0]


def _check_answer(stdout: str, keras_records) -> None:
    keras_record, float32_record = keras_records
    (line,) = stdout.splitlines()
    record = json.loads(line)
    for key in ("status", "crop", "box", "face", "label"):
        assert record[key] == keras_record[key], key
    for reference, limit in ((float32_record, PARITY_LIMIT), (keras_record, BFLOAT16_LIMIT)):
        diff = max(abs(record["probabilities"][c] - p) for c, p in reference["probabilities"].items())
        assert diff <= limit + ROUNDING, diff


def _absent(python: Path, cwd: Path) -> None:
    for module in ("tensorflow", "keras", "sklearn", "scipy", "matplotlib"):
        found = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True, text=True, cwd=cwd)
        assert found.returncode != 0 and "ModuleNotFoundError" in found.stderr, module


def test_the_predict_command_runs_without_tensorflow(tmp_path, grace_hopper, keras_records):
    python = light_install.light_environment(tmp_path)
    _absent(python, tmp_path)
    done = subprocess.run([str(python), "-m", "csa_keras.predict", "--model", CSA_MODEL, str(grace_hopper)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    _check_answer(done.stdout, keras_records)
    assert done.stderr.strip() == f"1 face in 1 file (model {CSA_MODEL})"
    default = subprocess.run([str(python), "-m", "csa_keras.predict", str(grace_hopper)],
                             capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert default.returncode == 0, default.stderr[-2000:]
    assert default.stderr.strip() == f"1 face in 1 file (model {DEFAULT_MODEL})"
    keras_default = Predictor.pretrained(DEFAULT_MODEL, runtime="keras").predict(grace_hopper)[0]
    assert json.loads(default.stdout)["label"] == keras_default["label"]
    refused = subprocess.run([str(python), "-m", "csa_keras.predict", "--runtime", "keras", str(grace_hopper)],
                             capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert refused.returncode != 0


@pytest.mark.heavy
def test_the_wheel_installed_without_tensorflow_predicts_from_its_console_script(tmp_path, grace_hopper,
                                                                                 keras_records):
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                            "--quiet", "-w", str(tmp_path / "dist"), str(ROOT)],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("csa_keras-*.whl"))
    python = light_install.light_environment(tmp_path, package=None)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target",
                                str(site), str(wheel)], capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr[-2000:]
    _absent(python, tmp_path)
    for command in ([str(python), str(site / "bin" / "csa-keras"), "predict", "--model", CSA_MODEL,
                     str(grace_hopper)],
                    [str(python), "-m", "csa_keras.predict", "--model", CSA_MODEL, str(grace_hopper),
                     "--quiet"]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
        _check_answer(done.stdout, keras_records)
    where = subprocess.run([str(python), "-c", "import csa_keras; print(csa_keras.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    assert where.startswith(str(site)), where
