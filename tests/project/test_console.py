"""``csa-keras COMMAND`` and ``voting-resnet COMMAND``: the commands by name, listed without a command."""
import importlib
import importlib.metadata
import subprocess
import sys

import pytest

import csa_keras.__main__ as csa_cli
import voting_resnet.__main__ as vrn_cli


@pytest.mark.parametrize("cli", [csa_cli, vrn_cli])
def test_every_listed_command_is_a_module_with_a_main(cli):
    for name, (module, summary) in cli.COMMANDS.items():
        assert callable(importlib.import_module(module).main), name
        assert summary and "\n" not in summary


def test_the_console_scripts_are_installed():
    scripts = {e.name: e.value for e in importlib.metadata.entry_points(group="console_scripts")
               if e.name in ("csa-keras", "voting-resnet")}
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


def test_a_keras_command_without_the_train_extra_is_one_line(monkeypatch, capsys):
    import csa_keras.evaluate as evaluate
    import csa_keras.train as train
    from csa_keras.utils import quiet

    monkeypatch.setattr(quiet, "TRAIN_EXTRA", ("numpy", "no_such_module_of_the_train_extra"))
    for main, prog in ((train.main, "python -m csa_keras.train"), (evaluate.main, "python -m csa_keras.evaluate")):
        assert main(["--data", "nowhere"]) == 2
        assert capsys.readouterr().err == (
            f"{prog}: error: this command needs the train extra (no_such_module_of_the_train_extra "
            "is not installed): pip install 'csa-keras[train]'\n")
