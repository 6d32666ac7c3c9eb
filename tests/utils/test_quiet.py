"""TensorFlow's C++ start-up lines stay off stderr from the Python API, as from the commands.

Each case runs a fresh Python, since TensorFlow is imported once per process
and the test process has it already.
"""
import json
import os
import re
import subprocess
import sys

# What TensorFlow writes to descriptor 2 while it starts on a machine without a GPU: absl's
# banner, information and warning records, and the "error" of a failed cuInit.
START_UP = re.compile(r"absl::InitializeLog|^[IW]\d{4} |cuInit|DT_BFLOAT16", re.MULTILINE)

PREDICT = """
import json, os, sys
from csa_keras.inference.predictor import Predictor

records = list(Predictor.pretrained().predict(sys.argv[1]))
print(json.dumps({"labels": [r["label"] for r in records],
                  "level": os.environ.get("TF_CPP_MIN_LOG_LEVEL")}))
"""


def python(code, *args, **env):
    environ = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                          text=True, timeout=300, env=dict(environ, **env))


def test_import_csa_keras_imports_no_tensorflow():
    result = python("import sys, csa_keras; print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]
    assert result.stderr == ""


def test_prediction_from_python_writes_no_tensorflow_start_up_lines(grace_hopper):
    result = python(PREDICT, grace_hopper)
    assert result.returncode == 0, result.stderr
    assert not START_UP.search(result.stderr), result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(out["labels"]) == 1
    assert out["level"] is None, "the library left TF_CPP_MIN_LOG_LEVEL in the environment"


def test_a_level_the_user_sets_is_honoured():
    code = "import csa_keras, tensorflow as tf; tf.config.list_physical_devices()"
    result = python(code, TF_CPP_MIN_LOG_LEVEL="0")
    assert result.returncode == 0, result.stderr
    assert re.search(r"^I\d{4} ", result.stderr, re.MULTILINE), result.stderr
