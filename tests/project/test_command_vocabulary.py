"""One vocabulary across every command: each flag has help, one meaning, and a row in docs/commands.md.

The commands are those ``csa-keras`` and ``voting-resnet`` list
(:mod:`csa_keras.__main__`, :mod:`voting_resnet.__main__`); each command's
module builds its parser with ``build_parser()``, the parser its ``main``
parses with. A flag is one setting wherever it appears: the same ``dest``
(the setting a library message names, which
:func:`~csa_keras.utils.cli.flag_message` turns back into the flag) and,
where it has choices, the same choices. The flags the vocabulary replaced
are refused in one line.
"""
import argparse
import importlib
import re
from pathlib import Path

import pytest

import csa_keras.__main__ as csa_cli
import voting_resnet.__main__ as vrn_cli
from csa_keras.utils.cli import flag_message

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "commands.md"

SAME_CHOICES = ("--detect", "--no-face", "--voting", "--channels", "--precision", "--strategy", "--protocol",
                "--runtime")
"""Flags whose choices are the same in every command that takes them (``--split-after`` is not:
a comparison always has the baseline, split point 0, and chooses among the voters)."""


def _subcommands(parser):
    for action in parser._actions:  # argparse keeps its actions here and nowhere public
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return {}


def _commands() -> dict[str, argparse.ArgumentParser]:
    """``{"csa-keras predict": parser, "csa-keras data summary": parser, ...}``."""
    parsers = {}
    for prog, registry in (("csa-keras", csa_cli.COMMANDS), ("voting-resnet", vrn_cli.COMMANDS)):
        for name, (module, _) in registry.items():
            parser = importlib.import_module(module).build_parser()
            subcommands = _subcommands(parser)
            for sub, subparser in subcommands.items():
                parsers[f"{prog} {name} {sub}"] = subparser
            if not subcommands:
                parsers[f"{prog} {name}"] = parser
    return parsers


@pytest.fixture(scope="module")
def commands():
    return _commands()


def _name(action) -> str:
    """``--flag`` (its long form), or the metavar of a positional argument (``INPUT``)."""
    long = [s for s in action.option_strings if s.startswith("--")]
    return long[0] if long else (action.metavar or action.dest.upper())


def _arguments(parser):
    return [a for a in parser._actions if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))]


def test_every_argument_of_every_command_has_help(commands):
    missing = [f"{command} {_name(action)}" for command, parser in commands.items()
               for action in _arguments(parser)
               if not action.help or action.help == argparse.SUPPRESS]
    assert missing == []


def test_a_flag_is_one_setting_with_one_set_of_choices_everywhere(commands):
    dests, choices = {}, {}
    for command, parser in commands.items():
        for action in _arguments(parser):
            dests.setdefault(_name(action), {}).setdefault(action.dest, []).append(command)
            if _name(action) in SAME_CHOICES:
                choices.setdefault(_name(action), {}).setdefault(tuple(action.choices or ()), []).append(command)
    assert {flag: meanings for flag, meanings in dests.items() if len(meanings) > 1} == {}
    assert {flag: sets for flag, sets in choices.items() if len(sets) > 1} == {}


def test_choices_are_read_from_the_library_not_typed_again(commands):
    """Each flag's choices are the very tuple the library checks its setting against."""
    from csa_keras.data.faces import CHANNELS, DETECT_MODES, NO_FACE_MODES
    from csa_keras.data.readers import FORMAT_CHOICES
    from csa_keras.inference.litert import RUNTIMES
    from csa_keras.inference.records import RECORD_FORMATS
    from voting_resnet.models import SPLIT_POINTS, VOTER_SPLIT_POINTS

    vocabulary = {"--data-format": FORMAT_CHOICES, "--detect": DETECT_MODES, "--no-face": NO_FACE_MODES,
                  "--channels": CHANNELS, "--runtime": RUNTIMES, "--output-format": RECORD_FORMATS}
    split_points = {"voting-resnet train": SPLIT_POINTS, "voting-resnet compare": VOTER_SPLIT_POINTS}
    checked, typed = set(), []
    for command, parser in commands.items():
        for action in _arguments(parser):
            name = _name(action)
            expected = split_points.get(command) if name == "--split-after" else vocabulary.get(name)
            if expected is not None:
                checked.add(name)
                if action.choices is not expected:
                    typed.append(f"{command} {name}")
    assert typed == []
    assert checked == {*vocabulary, "--split-after"}
    assert FORMAT_CHOICES == ("auto", "folder", "ckplus", "fer2013-csv", "rafdb", "affectnet", "jaffe")
    assert (SPLIT_POINTS, VOTER_SPLIT_POINTS) == ((0, 1, 2, 3), (1, 2, 3))


def _table() -> dict[str, set[str]]:
    """docs/commands.md's table: flag -> the commands its row names."""
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and (flag := re.fullmatch(r"`([^`]+)`", cells[0])):
            assert flag.group(1) not in rows, f"{flag.group(1)} has two rows"
            rows[flag.group(1)] = set(re.findall(r"`([^`]+)`", cells[2]))
    return rows


def test_the_table_of_docs_commands_names_every_flag_and_its_commands(commands):
    actual: dict[str, set[str]] = {}
    for command, parser in commands.items():
        for action in _arguments(parser):
            actual.setdefault(_name(action), set()).add(command)
    assert _table() == actual


def test_the_docs_have_a_paragraph_per_command(commands):
    text = DOC.read_text(encoding="utf-8")
    for command in commands:
        assert f"### `{command}`" in text, command


@pytest.mark.parametrize("command, message, expected", [
    ("csa-keras train", "format must be one of auto, folder. Received: format='x'",
     "--data-format must be one of auto, folder. Received: --data-format='x'"),
    ("csa-keras train", "preset must be one of paper, quick. Received: preset='x'",
     "--recipe must be one of paper, quick. Received: --recipe='x'"),
    ("voting-resnet compare", "preset must be one of cpu, paper. Received: preset='x'",
     "--recipe must be one of cpu, paper. Received: --recipe='x'"),
    ("csa-keras data summary", "format must be one of auto, folder. Received: format='x'",
     "--data-format must be one of auto, folder. Received: --data-format='x'"),
    ("csa-keras evaluate", "no_face must be one of skip, center, error. Received: no_face='x'",
     "--no-face must be one of skip, center, error. Received: --no-face='x'"),
    ("csa-keras export", "quantize applies to format='tflite' only. Received: quantize='int8' with "
     "format='savedmodel'", "--quantize applies to --to='tflite' only. Received: --quantize='int8' with "
     "--to='savedmodel'"),
    ("csa-keras export", "num_threads must be >= 1. Received: num_threads=0",
     "--threads must be >= 1. Received: --threads=0"),
    ("csa-keras predict", "model runs/x does not exist", "--model runs/x does not exist"),
    ("voting-resnet pack", "key must name a row of c.json (a). Received: key='b'",
     "--row must name a row of c.json (a). Received: --row='b'"),
])
def test_library_messages_name_the_flags(commands, command, message, expected):
    assert flag_message(message, commands[command]) == expected


@pytest.mark.parametrize("command, argv", [
    ("csa-keras train", ["--mixed-precision"]),
    ("csa-keras train", ["--preset", "smoke"]),
    ("csa-keras train", ["--format", "folder"]),
    ("csa-keras train", ["--out", "runs/x"]),  # a flag is taken only as spelled in full
    ("voting-resnet train", ["--no-retrain"]),
    ("voting-resnet compare", ["--preset", "smoke"]),
    ("voting-resnet compare", ["--budget", "smoke"]),
    ("voting-resnet compare", ["path/to/data"]),
    ("csa-keras predict", ["--format", "csv", "photo.jpg"]),
    ("csa-keras evaluate", ["runs/x"]),
    ("csa-keras evaluate", ["--format", "folder"]),
    ("csa-keras export", ["runs/x"]),
    ("csa-keras export", ["--format", "tflite"]),
    ("csa-keras data summary", ["path/to/data"]),
    ("csa-keras data summary", ["--format", "folder"]),
    ("csa-keras data summary", ["--colour"]),
    ("csa-keras data summary", ["--color"]),
    ("csa-keras data summary", ["--no-progress"]),
    ("csa-keras pack", ["runs/x", "--command", "c", "--licence", "l"]),
    ("csa-keras pack", ["runs/x", "--command", "c", "--data-licence", "l", "--dest", "d"]),
    ("voting-resnet pack", ["runs/c", "--command", "c", "--licence", "l", "--output", "d"]),
    ("voting-resnet pack", ["runs/c", "--command", "c", "--data-licence", "l", "--dest", "d"]),
    ("voting-resnet profile", ["--peak-rss-child", "0", "48", "2", "7"]),
])
def test_the_replaced_flags_are_refused_in_one_line(commands, command, argv, capsys):
    parser = commands[command]
    with pytest.raises(SystemExit) as stopped:
        parser.parse_args(argv)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{parser.prog}: error: ") and len(err.strip().splitlines()) == 1, err


def test_a_model_given_as_predict_input_is_refused(tmp_path, capsys):
    """The model is ``--model`` only: the older first-INPUT form is gone."""
    from commands import call_main

    from csa_keras.predict import main

    code, out, err = call_main(main, [tmp_path / "run" / "classifier.keras", tmp_path / "photo.jpg"], capsys)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        f"python -m csa_keras.predict: error: INPUT {tmp_path / 'run' / 'classifier.keras'} is a model, not an "
        "image, folder of images or video: give a model with --model"]
