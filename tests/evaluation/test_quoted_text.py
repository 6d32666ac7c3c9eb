"""Text taken from a dataset goes into the model card as text: decoded, free of control characters,
bounded and marked where cut."""
import pytest

from csa_keras.evaluation.model_card import CUT_MARK, MAX_LICENCE_CHARS, data_licence, quoted_text


def test_a_binary_licence_file_is_said_not_to_be_text(tmp_path):
    (tmp_path / "LICENSE").write_bytes(bytes(range(256)) * 4)
    licence = data_licence(str(tmp_path))
    assert licence == "LICENSE was found beside the data but is not text (UTF-8): read it there."
    (tmp_path / "LICENSE").write_bytes(b"Research only.\x1b[2J\x00")
    assert "not text" in data_licence(str(tmp_path))


def test_a_long_licence_is_cut_at_a_word_with_a_mark(tmp_path):
    words = "Permission is granted for non-commercial research " * 200
    (tmp_path / "LICENCE.txt").write_text(words)
    licence = data_licence(str(tmp_path))
    quoted = licence.removeprefix("LICENCE.txt: ")
    assert quoted.endswith(CUT_MARK) and len(quoted) <= MAX_LICENCE_CHARS + len(CUT_MARK)
    body = quoted.removesuffix(CUT_MARK)
    assert words.startswith(body) and words[len(body)] == " "


@pytest.mark.parametrize(("raw", "text"), [
    ("Licence: CC BY-NC 4.0 — Zoë\r\nSecond line\n".encode(), "Licence: CC BY-NC 4.0 — Zoë\nSecond line"),
    (b"\xef\xbb\xbfWith a BOM", "With a BOM"),
    ("é".encode()[:1], ""),  # cut mid-character: only the complete characters
    (b"\xff\xfe\x00L", None),
])
def test_quoted_text(raw, text):
    assert quoted_text(raw) == text


def test_a_word_longer_than_the_limit_is_cut_at_the_limit():
    assert quoted_text(b"x" * 50, limit=10) == "x" * 10 + CUT_MARK
