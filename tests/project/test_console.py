"""``csa-keras COMMAND`` and ``voting-resnet COMMAND``: the commands by name, listed without a command."""
import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import csa_keras.__main__ as csa_cli
import voting_resnet.__main__ as vrn_cli

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("cli", [csa_cli, vrn_cli])
def test_every_listed_command_is_a_module_with_a_main(cli):
    for name, (module, summary) in cli.COMMANDS.items():
        assert callable(importlib.import_module(module).main), name
        assert summary and "\n" not in summary


def test_the_console_scripts_are_declared():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"csa-keras": "csa_keras.__main__:main", "voting-resnet": "voting_resnet.__main__:main"}


def test_without_a_command_the_commands_are_listed(capsys):
    assert csa_cli.main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: csa-keras COMMAND")
    for name in csa_cli.COMMANDS:
        assert f"\n  {name} " in out
    assert "voting-resnet --help" in out


def test_an_unknown_command_is_one_line_and_exit_2(capsys):
    assert vrn_cli.main(["trian"]) == 2
    err = capsys.readouterr().err
    assert err == "voting-resnet: error: unknown command 'trian' (one of train, compare, profile, pack)\n"


def test_a_command_runs_with_its_arguments():
    done = subprocess.run([sys.executable, "-m", "csa_keras", "predict", "--help"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "--model" in done.stdout


def test_training_without_the_train_extra_is_one_line(monkeypatch, capsys):
    import csa_keras.train as train

    monkeypatch.setattr(train, "TRAIN_EXTRA", ("tf_keras_vis", "no_such_module_of_the_train_extra"))
    assert train.main(["--help"]) == 2
    assert capsys.readouterr().err == (
        "python -m csa_keras.train: error: training needs the train extra (no_such_module_of_the_train_extra "
        "is not installed): pip install 'csa-keras[train]'\n")
