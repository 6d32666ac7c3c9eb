"""The commands' one-line errors, flags for settings, TensorFlow's start-up lines, atomic folders."""
import argparse

import pytest

from csa_keras.utils import quiet
from csa_keras.utils.cli import fail, flag_message, flags_of, run_main
from csa_keras.utils.files import writable_folder
from csa_keras.utils.messages import must, one_of


@pytest.fixture
def parser():
    parser = argparse.ArgumentParser(prog="tool")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--output")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--format")
    parser.add_argument("--no-augment", dest="augment", action="store_false", default=None)
    parser.add_argument("--val-fraction", type=float)
    parser.add_argument("--recipe", dest="preset")
    return parser


def test_flags_of_maps_each_setting_and_switch_value_to_its_flag(parser):
    assert flags_of(parser) == {
        "batch_size": "--batch-size", "output": "--output", "resume": "--resume", "resume=True": "--resume",
        "format": "--format", "augment": "--no-augment", "augment=False": "--no-augment",
        "val_fraction": "--val-fraction", "preset": "--recipe"}


@pytest.mark.parametrize("message, expected", [
    (must("batch_size", "be at least 1", 0),
     "--batch-size must be at least 1. Received: --batch-size=0"),
    ("output runs/a holds an unfinished run: continue it with resume=True, or remove it",
     "--output runs/a holds an unfinished run: continue it with --resume, or remove it"),
    ("output /tmp/output.csv is not a folder", "--output /tmp/output.csv is not a folder"),
    ("the built-in faces have no format to choose", "the built-in faces have no format to choose"),
    (one_of("format", ("a", "b"), "c"), "--format must be one of a, b. Received: --format='c'"),
    ("split_after with several values needs a validation set: val_fraction must be above 0. "
     "Received: split_after=[1, 2], val_fraction=0.0",
     "split_after with several values needs a validation set: --val-fraction must be above 0. "
     "Received: split_after=[1, 2], --val-fraction=0.0"),
    ("quantize applies to (format='tflite') only; train without augment=False.",
     "quantize applies to (--format='tflite') only; train without --no-augment."),
    ("preset must be one of paper, quick. Received: preset='x'",
     "--recipe must be one of paper, quick. Received: --recipe='x'"),
    ("help is not a setting, nor is output.csv: see runs/output", "help is not a setting, nor is output.csv: "
     "see runs/output"),
])
def test_flag_message_names_flags_where_settings_stand(parser, message, expected):
    assert flag_message(message, parser) == expected


def test_run_main_turns_errors_into_one_line_and_interrupts_into_130(parser, capsys):
    def bad():
        raise ValueError(must("batch_size", "be at least 1", 0) + "\nsecond line")

    assert run_main(parser, bad) == 2
    assert capsys.readouterr().err == "tool: error: --batch-size must be at least 1. Received: --batch-size=0\n"

    def interrupted():
        raise KeyboardInterrupt

    assert run_main(parser, interrupted) == 130
    assert capsys.readouterr().err == "tool: interrupted\n"
    assert fail(parser, "") == 2


def test_only_information_and_warning_records_are_dropped():
    text = "\n".join([
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1.0 1 port.cc:153] oneDNN custom operations are on.",
        "I0000 00:00:1.0 1 cpu_feature_guard.cc:210] This TensorFlow binary is optimized",
        "To enable the following instructions: AVX2, in other operations, rebuild TensorFlow.",
        "E0000 00:00:1.0 1 cuda_platform.cc:52] failed call to cuInit",
        "Traceback (most recent call last):",
        "ImportError: libfoo.so",
    ])
    assert quiet._kept(text) == ["E0000 00:00:1.0 1 cuda_platform.cc:52] failed call to cuInit",
                                 "Traceback (most recent call last):", "ImportError: libfoo.so"]


def test_writable_folder_creates_or_refuses_in_one_line(tmp_path):
    assert writable_folder(tmp_path / "a" / "b", "output").is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"^annotate .*file is not a folder"):
        writable_folder(tmp_path / "file", "annotate")


def test_library_messages_say_received_not_got():
    """Every message of the packages ends Keras's way, ``... Received: X``, never ``..., got X``."""
    import re
    import tokenize
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    text_tokens = {tokenize.STRING, getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING)}
    old_style = re.compile(r"[,;] got\b|^got\b|\bgot \{")
    found = []
    for path in sorted([*root.glob("csa_keras/**/*.py"), *root.glob("voting_resnet/**/*.py")]):
        with tokenize.open(path) as source:
            tokens = tokenize.generate_tokens(source.readline)
            found += [f"{path.relative_to(root)}:{token.start[0]}" for token in tokens
                      if token.type in text_tokens and old_style.search(token.string)]
    assert found == []
