"""How every command of the project fails: one line on stderr, exit status 2.

The library raises ``ValueError`` with messages that name settings
(``batch_size must be at least 1. Received: batch_size=0``); a command
speaks of its flags instead (``--batch-size``). :class:`Parser` makes
argparse's own usage errors one line, :func:`flag_message` turns a setting's
name in a library message into its flag, and :func:`run_main` runs a
command's body and turns ``ValueError`` into that one line. :func:`entry_point`
covers a command's whole life, start-up included: Ctrl-C at any instant is
one line and exit status 130, and a Keras backend other than TensorFlow is
one line before anything is imported.
"""
from __future__ import annotations

import argparse
import functools
import re
import sys
from collections.abc import Callable

from csa_keras.utils.quiet import BackendError

USAGE_ERROR = 2
"""Exit status of a bad argument or unusable data."""

SYSTEM_ERROR = 1
"""Exit status when the machine refuses a write (a full disk, a folder that became read-only)."""

INTERRUPTED = 130
"""Exit status after Ctrl-C (128 + SIGINT), as shells report it."""


MODEL_HELP = ("the model: a .keras file, a run directory of a training command, or the name of a "
              "model in the box (csa_fer2013, vrn_fer2013); default vrn_fer2013")
"""The help of ``--model``, the same in every command that takes one."""


class Parser(argparse.ArgumentParser):
    """``argparse`` whose usage errors are one line and exit status 2.

    A flag is taken only as spelled in full (``allow_abbrev=False``): every
    flag has one spelling, and a dropped flag cannot pass as the prefix of
    another.
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # argparse hook
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message}\n")


def flags_of(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each setting the parser's options set, and a switch's setting with its value, to the flag.

    ``{"batch_size": "--batch-size", "resume": "--resume", "resume=True": "--resume",
    "augment=False": "--no-augment", ...}``: the ``dest`` of every option with a
    long form, as the library's messages name settings.
    """
    flags: dict[str, str] = {}
    for action in parser._actions:  # argparse lists a parser's actions here and nowhere public
        long = [s for s in action.option_strings if s.startswith("--")]
        if not long or action.default == argparse.SUPPRESS or action.dest in flags:
            continue
        flags[action.dest] = long[0]
        if action.nargs == 0 and isinstance(action.const, bool):
            flags[f"{action.dest}={action.const}"] = long[0]
    return flags


_SEPARATORS = re.compile(r"([\s()\[\],;]+)")


def flag_message(message: str, parser: argparse.ArgumentParser) -> str:
    """``message`` with the settings the parser has flags for written as those flags (:func:`flags_of`).

    A library message names a setting in three places, and only those are
    rewritten: its first word (``batch_size must be at least 1``), before
    ``=`` (``Received: batch_size=0``; a switch's ``resume=True`` becomes
    ``--resume``), and wherever a name with an underscore stands, which no
    English word has. ``output runs/a is not a folder`` becomes ``--output
    runs/a is not a folder``; the word ``format`` inside a sentence stays.
    """
    flags = flags_of(parser)
    words = _SEPARATORS.split(message)
    for i in range(0, len(words), 2):
        name, equals, value = words[i].partition("=")
        switch = f"{name}={value.rstrip('.:')}"
        if equals and switch in flags:
            words[i] = flags[switch] + value[len(value.rstrip(".:")):]
        elif name in flags and (equals or i == 0 or "_" in name):
            words[i] = flags[name] + equals + value
    return "".join(words)


def fail(parser: argparse.ArgumentParser, error: BaseException | str) -> int:
    """Print ``<prog>: error: <one line>`` on stderr and return the exit status 2."""
    text = str(error).strip().splitlines()
    line = flag_message(text[0] if text else type(error).__name__, parser)
    print(f"{parser.prog}: error: {line}", file=sys.stderr)
    return USAGE_ERROR


def interrupted(prog: str, error: KeyboardInterrupt) -> int:
    """Print ``<prog>: interrupted`` (and what the interruption left, if ``error`` says) and
    return the exit status 130."""
    detail = str(error).strip().splitlines()
    print(f"{prog}: interrupted" + (f"; {detail[0]}" if detail else ""), file=sys.stderr)
    return INTERRUPTED


def system_error(prog: str, error: OSError) -> int:
    """Print ``<prog>: error: <path>: <reason>`` for a write the machine refused; exit status 1."""
    reason = (error.strerror or str(error)).strip().splitlines()
    where = f"{error.filename}: " if error.filename else ""
    print(f"{prog}: error: {where}{reason[0] if reason else type(error).__name__}", file=sys.stderr)
    return SYSTEM_ERROR


def run_main(parser: argparse.ArgumentParser, body: Callable[[], int]) -> int:
    """``body()``, with a ``ValueError`` as one line (exit 2), an ``OSError`` (a full disk) as
    one line naming the path (exit 1) and Ctrl-C as exit 130.

    A body that knows how to continue after Ctrl-C says so by raising
    ``KeyboardInterrupt("to continue, ...")``; the text follows ``interrupted;``.
    """
    try:
        return body()
    except ValueError as error:
        return fail(parser, error)
    except OSError as error:
        return system_error(parser.prog, error)
    except KeyboardInterrupt as error:
        return interrupted(parser.prog, error)


def entry_point(prog: str) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Decorate a command's ``main(argv)`` so that nothing in its life ends in a traceback of
    the user's making: Ctrl-C during start-up (TensorFlow's import takes seconds) is one line
    and exit 130, like Ctrl-C during the work, and a Keras backend the command cannot run on
    is one line and exit 2."""

    def decorate(main: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(main)
        def entry(argv: list[str] | None = None) -> int:
            try:
                return main(argv)
            except KeyboardInterrupt as error:
                return interrupted(prog, error)
            except BackendError as error:
                print(f"{prog}: error: {error}", file=sys.stderr)
                return USAGE_ERROR

        return entry

    return decorate


def dispatch(prog: str, commands: dict[str, tuple[str, str]], argv: list[str] | None = None,
             footer: str = "") -> int:
    """``prog COMMAND [ARGS]``: run ``COMMAND``'s ``main(ARGS)``; the list of commands without one.

    ``commands`` maps each command to ``(module, one-line summary)``; the
    module is imported only when its command runs, so ``prog --help``
    answers at once. An unknown command is one line and exit status 2.
    """
    import importlib

    argv = sys.argv[1:] if argv is None else list(argv)
    width = max(map(len, commands))
    listing = "\n".join(f"  {name.ljust(width)}  {summary}" for name, (_, summary) in commands.items())
    usage = (f"usage: {prog} COMMAND [ARGS]   ({prog} COMMAND --help for a command's options)\n\n"
             f"commands:\n{listing}\n" + (f"\n{footer}\n" if footer else ""))
    if not argv or argv[0] in ("-h", "--help"):
        print(usage, end="")
        return 0
    if argv[0] not in commands:
        print(f"{prog}: error: unknown command {argv[0]!r} (one of {', '.join(commands)})",
              file=sys.stderr)
        return USAGE_ERROR
    return importlib.import_module(commands[argv[0]][0]).main(argv[1:])
