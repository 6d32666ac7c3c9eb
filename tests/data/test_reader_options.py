"""``--reader-option KEY=VALUE``: pairs parsed once for every command, then typed for the readers."""
import pytest

from csa_keras.data.readers import parse_reader_options, reader_kwargs
from csa_keras.training.config import RunConfig


def test_pairs_are_split_and_stripped():
    assert parse_reader_options(["classes=8", " variant = original ", "empty="]) == (
        ("classes", "8"), ("variant", "original"), ("empty", ""))
    assert parse_reader_options(None) == parse_reader_options([]) == ()


@pytest.mark.parametrize("pair", ["classes", "=8", " =x"])
def test_a_pair_without_a_key_or_equals_sign_is_refused(pair):
    with pytest.raises(ValueError, match=r"^reader_option must be KEY=VALUE\. Received: reader_option="):
        parse_reader_options(["classes=8", pair])


def test_values_are_typed_for_the_readers():
    options = parse_reader_options(["classes=8", "last_frames=-3", "first_as_neutral=TRUE",
                                    "flag=false", "variant=Original", "ratio=0.5"])
    assert reader_kwargs(options) == {"classes": 8, "last_frames": -3, "first_as_neutral": True,
                                      "flag": False, "variant": "Original", "ratio": "0.5"}


def test_a_run_config_types_its_reader_options_the_same_way():
    options = parse_reader_options(["classes=8", "public_test_as=val"])
    assert RunConfig(reader_options=options).reader_kwargs() == reader_kwargs(options) == {
        "classes": 8, "public_test_as": "val"}
