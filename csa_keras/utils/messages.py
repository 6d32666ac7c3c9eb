"""Error messages in Keras's style: the setting, what it must be, what it received.

``batch_size must be at least 1. Received: batch_size=0``: the library names
settings; a command turns them into its flags (:func:`csa_keras.utils.cli.flag_message`).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def must(setting: str, rule: str, received: Any) -> str:
    """``<setting> must <rule>. Received: <setting>=<received>``."""
    return f"{setting} must {rule}. Received: {setting}={received!r}"


def one_of(setting: str, choices: Sequence[Any], received: Any) -> str:
    """The message of a setting that takes one of ``choices``."""
    return must(setting, f"be one of {', '.join(map(str, choices))}", received)
