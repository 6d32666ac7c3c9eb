"""The kernels chosen for TensorFlow per CPU class, before it loads (csa_keras.utils.cpu)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from csa_keras.utils import cpu


@pytest.mark.parametrize(("flags", "machine", "value"), [
    ({"avx2", "fma"}, "x86_64", "1"),  # Zen 2/3, consumer Intel: TensorFlow's default would be Eigen
    ({"avx2", "avx512f", "avx512_vnni"}, "x86_64", "1"),  # TensorFlow's default there too
    ({"avx2", "avx512f", "avx512_bf16", "amx_tile"}, "AMD64", "1"),
    ({"sse4_2"}, "x86_64", None),  # no AVX2: TensorFlow decides
    ({"asimd"}, "aarch64", None),
])
def test_onednn_is_chosen_on_every_x86_64_cpu_with_avx2(flags, machine, value):
    chosen, reason = cpu.onednn_choice(flags, machine)
    assert chosen == value and reason


def _fresh(code: str, **env: str) -> dict:
    environment = {k: v for k, v in os.environ.items() if k != cpu.ONEDNN_VARIABLE}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**environment, **env})
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_the_package_sets_the_choice_before_tensorflow_and_leaves_the_users_alone():
    code = ("import json, os, csa_keras; from csa_keras.utils.cpu import onednn_choice; "
            "print(json.dumps({'value': os.environ.get('TF_ENABLE_ONEDNN_OPTS'), "
            "'chosen': onednn_choice()[0]}))")
    found = _fresh(code)
    assert found["value"] == found["chosen"]
    assert _fresh(code, TF_ENABLE_ONEDNN_OPTS="0")["value"] == "0"


def test_tensorflow_imported_first_keeps_its_own_choice_and_the_state_says_so():
    code = ("import json, os, sys, types; sys.modules.setdefault('tensorflow', types.ModuleType('tensorflow')); "
            "import csa_keras; print(json.dumps({'value': os.environ.get('TF_ENABLE_ONEDNN_OPTS')}))")
    assert _fresh(code)["value"] is None


def test_the_state_names_the_kernels_in_force(monkeypatch):
    monkeypatch.setenv(cpu.ONEDNN_VARIABLE, "0")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    state = cpu.onednn_state()
    assert state["setting"] == "0" and state["isa_cap"] == "AVX2"
    if cpu.onednn_choice()[0] == "1":
        assert "set by the user" in state["reason"]


def test_every_config_json_records_the_kernels_in_force():
    import tensorflow  # noqa: F401  (imported, TensorFlow answers which kernels it runs)

    from csa_keras.training.config import RunConfig, config_json

    kernels = json.loads(config_json(RunConfig()))["cpu_kernels"]
    assert set(kernels) >= {"onednn", "setting", "reason"} and kernels["reason"]
    assert isinstance(kernels["onednn"], bool)


def test_bfloat16_counts_only_where_the_cpu_computes_it():
    assert cpu.has_bfloat16({"avx2", "avx512f", "avx512_bf16"}) and cpu.has_bfloat16({"amx_bf16"})
    assert not cpu.has_bfloat16({"avx2", "fma", "avx512f"})
