"""What this CPU can do, and the one kernel choice that has to be made before TensorFlow loads.

TensorFlow's Linux x86 wheel runs its convolutions, matrix products,
pooling and batch normalisation through two libraries: oneDNN, which picks
its kernels for the CPU at run time (AVX2, AVX-512, AMX), and Eigen, compiled
into the wheel for AVX only (TensorFlow's start-up line "rebuild TensorFlow
with the appropriate compiler flags" to use AVX2 and FMA). Which one runs is
decided once, when TensorFlow is imported, by ``TF_ENABLE_ONEDNN_OPTS``; left
unset, TensorFlow turns oneDNN on only for CPUs with AVX-512 VNNI, AVX-512
BF16 or AMX. On the CPUs most people have, AVX2 without those (AMD Zen 2/3,
Intel's consumer cores), that leaves every convolution to Eigen's AVX code.

Measured side by side on an AMD EPYC Zen 3 (AVX2 and FMA, 2 cores,
``benchmarks/levers.py``, docs/performance.md): oneDNN trained the CSA
autoencoder 1.39x and the Voting ResNet split after module 3 2.22x as fast as
TensorFlow's default there. :func:`configure_onednn` therefore turns oneDNN
on for every x86-64 CPU with AVX2 (on the others TensorFlow's own rule is
unchanged), unless the user set ``TF_ENABLE_ONEDNN_OPTS`` either way. The
package calls it when it is imported; TensorFlow imported before the package
keeps the choice it was imported with, and :func:`onednn_state` says which
one is in force (``config.json`` records it).

Nothing here imports TensorFlow.
"""
from __future__ import annotations

import os
import platform
import sys

ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"
"""TensorFlow's switch between its oneDNN kernels ("1") and its Eigen ones ("0"), read at import."""

BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
"""CPU flags (``/proc/cpuinfo``) of the instructions that make bfloat16 matrix products fast."""

TF_ONEDNN_CPU_FLAGS = ("avx512_vnni", "avx512_bf16", "amx_tile")
"""The CPU flags for which TensorFlow turns oneDNN on by itself (its default elsewhere is off)."""

X86_64 = ("x86_64", "amd64")


def cpu_flags() -> set[str]:
    """The flags of the first CPU in ``/proc/cpuinfo`` (empty where there is none, as on macOS)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def has_bfloat16(flags: set[str] | None = None) -> bool:
    """Whether the CPU computes bfloat16 products in hardware (:data:`BF16_CPU_FLAGS`), not emulated."""
    return bool((cpu_flags() if flags is None else flags) & set(BF16_CPU_FLAGS))


def onednn_choice(flags: set[str] | None = None, machine: str | None = None) -> tuple[str | None, str]:
    """The project's value of ``TF_ENABLE_ONEDNN_OPTS`` for a CPU, and why.

    ``"1"`` on an x86-64 CPU with AVX2 (where TensorFlow's default would be
    Eigen unless the CPU has :data:`TF_ONEDNN_CPU_FLAGS`), None (TensorFlow
    decides) elsewhere.
    """
    flags = cpu_flags() if flags is None else flags
    machine = (machine or platform.machine()).lower()
    if machine not in X86_64:
        return None, f"{machine} CPU: TensorFlow's own choice"
    if "avx2" not in flags:
        return None, "x86-64 CPU without AVX2: TensorFlow's own choice"
    if flags & set(TF_ONEDNN_CPU_FLAGS):
        return "1", "x86-64 CPU with AVX-512 VNNI, BF16 or AMX: oneDNN (TensorFlow's default there too)"
    return "1", "x86-64 CPU with AVX2: oneDNN (TensorFlow's default there would be Eigen)"


def configure_onednn() -> str | None:
    """Set ``TF_ENABLE_ONEDNN_OPTS`` to :func:`onednn_choice` unless the user set it or TensorFlow
    is already imported; returns the value now in the environment."""
    if ONEDNN_VARIABLE not in os.environ and "tensorflow" not in sys.modules:
        value, _ = onednn_choice()
        if value is not None:
            os.environ[ONEDNN_VARIABLE] = value
    return os.environ.get(ONEDNN_VARIABLE)


def onednn_state() -> dict:
    """Which kernels TensorFlow runs in this process, for ``config.json`` and reports.

    ``onednn`` is TensorFlow's own answer (None before TensorFlow is
    imported); ``setting`` the variable's value, ``reason`` the project's rule
    for this CPU, ``isa_cap`` oneDNN's ``ONEDNN_MAX_CPU_ISA`` where set.
    """
    enabled = None
    if "tensorflow" in sys.modules:
        try:
            from tensorflow.python.util import _pywrap_util_port

            enabled = bool(_pywrap_util_port.IsMklEnabled())
        except (ImportError, AttributeError):
            enabled = None
    value, reason = onednn_choice()
    setting = os.environ.get(ONEDNN_VARIABLE)
    if setting is not None and setting != value:
        reason = f"{ONEDNN_VARIABLE}={setting} set by the user or before the package was imported"
    state = {"onednn": enabled, "setting": setting, "reason": reason}
    if os.environ.get("ONEDNN_MAX_CPU_ISA"):
        state["isa_cap"] = os.environ["ONEDNN_MAX_CPU_ISA"]
    return state
