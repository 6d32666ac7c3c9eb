"""A reader's settings as the commands take them: ``KEY=VALUE`` pairs, then keyword arguments.

``--reader-option classes=8`` means the same to training, the comparison and
evaluation: each command turns its pairs into settings with
:func:`parse_reader_options` (what :class:`~csa_keras.training.config.RunConfig`
keeps, as ``reader_options``) and those into the readers' keyword arguments
with :func:`reader_kwargs` (:func:`~csa_keras.data.readers.read_catalogue`
then refuses a key no reader knows).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def parse_reader_options(pairs: Iterable[str] | None) -> tuple[tuple[str, str], ...]:
    """``["classes=8", "variant = original"]`` as ``(("classes", "8"), ("variant", "original"))``.

    Keys and values are stripped; a pair without ``=`` or without a key is
    refused in one line.
    """
    options = []
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"reader_option must be KEY=VALUE. Received: reader_option={pair!r}")
        options.append((key.strip(), value.strip()))
    return tuple(options)


def reader_kwargs(options: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """``(key, value)`` settings as a reader's keyword arguments: ``true``/``false`` (any case)
    as booleans, whole numbers as ``int``, anything else the text as given."""
    parsed: dict[str, Any] = {}
    for key, value in options:
        lowered = value.strip().lower()
        if lowered in ("true", "false"):
            parsed[key] = lowered == "true"
        elif lowered.lstrip("-").isdigit():
            parsed[key] = int(lowered)
        else:
            parsed[key] = value
    return parsed
