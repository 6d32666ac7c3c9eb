"""Options that mean nothing in their context are refused; options given twice count once."""
from commands import call_main

from csa_keras.train import main as csa_train
from voting_resnet.config import preset
from voting_resnet.train import main as vrn_train


def test_data_format_without_data_is_refused(tmp_path, capsys):
    code, _, err = call_main(csa_train, ["--data-format", "folder", "--output", tmp_path / "run"], capsys)
    assert code == 2
    assert err.splitlines() == ["python -m csa_keras.train: error: --data-format needs --data: the "
                                "built-in faces have no format to choose"]
    assert not (tmp_path / "run").exists()


def test_resume_without_output_is_refused(capsys):
    code, _, err = call_main(vrn_train, ["--resume"], capsys)
    assert code == 2 and err.splitlines() == [
        "python -m voting_resnet.train: error: --resume needs the --output of the run to continue"]


def test_a_split_point_given_twice_is_trained_once():
    assert preset("smoke").replace(split_after=(1, 1, 3, 1)).split_after == (1, 3)
    assert preset("smoke").replace(split_after=2).split_after == (2,)


def test_a_reader_option_without_a_key_is_one_line_naming_the_flag(capsys):
    code, _, err = call_main(csa_train, ["--reader-option", "=8"], capsys)
    assert code == 2 and err.splitlines() == [
        "python -m csa_keras.train: error: --reader-option must be KEY=VALUE. "
        "Received: --reader-option='=8'"]


def test_both_train_commands_are_made_by_the_training_cli():
    import csa_keras.train
    import voting_resnet.train
    from csa_keras.training import cli

    for module, prog, flag in ((csa_keras.train, "python -m csa_keras.train", "--pretrain-epochs"),
                               (voting_resnet.train, "python -m voting_resnet.train", "--retrain")):
        assert module.command is cli.command and module.main.__module__ == cli.__name__
        parser = module.build_parser()
        assert parser.prog == prog and flag in parser._option_string_actions


def test_importing_a_training_command_loads_no_tensorflow_nor_the_data_layer():
    """What runs before ``main`` is outside its one-line handling of Ctrl-C and of a missing extra."""
    import subprocess
    import sys

    code = ("import sys, csa_keras.train, csa_keras.training.cli, csa_keras.training; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'filelock', 'numpy', 'cv2', "
            "'csa_keras.data') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_compare_takes_the_split_points_of_the_model():
    from voting_resnet.compare import build_parser as compare_parser
    from voting_resnet.models import SPLIT_POINTS, VOTER_SPLIT_POINTS
    from voting_resnet.train import build_parser as train_parser

    def choices(parser, flag):
        return tuple(parser._option_string_actions[flag].choices)

    assert choices(train_parser(), "--split-after") == SPLIT_POINTS == (0, *VOTER_SPLIT_POINTS)
    assert choices(compare_parser(), "--split-after") == VOTER_SPLIT_POINTS == (1, 2, 3)
    assert choices(compare_parser(), "--scratch-split-after") == VOTER_SPLIT_POINTS
