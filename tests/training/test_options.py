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
