"""Outputs never touch inputs: ``predict --output / --annotate`` and the training ``--output``.

Each refusal comes through the real command (``main`` in this process, or
``python -m`` in a fresh interpreter), before any work: one line on stderr,
exit status 2, the inputs and the file system as they were. Annotated copies
take names of their own, and one whose name the file system cannot hold is
skipped with its reason while the rest of the batch goes on.
"""
import hashlib
import json
import os

import cv2
import numpy as np
import pytest
from commands import call_main, error_line, run_module

from csa_keras.predict import main as predict_main
from csa_keras.train import main as csa_train_main
from csa_keras.utils.paths import check_outputs, name_limit
from voting_resnet.train import main as vrn_train_main

PREDICT = "python -m csa_keras.predict"


def _one_error(code, out, err, prog=PREDICT):
    return error_line(code, out, err, prog)


def _snapshot(root):
    """Every file under ``root`` with a digest of its bytes: what must not change."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _face(path, value=120):
    cv2.imwrite(str(path), np.full((48, 48, 3), value, np.uint8))
    return path


@pytest.fixture
def photos(tmp_path, monkeypatch):
    """``tmp_path/photos/{a,b}.png`` with the working folder at ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "photos"
    folder.mkdir()
    _face(folder / "a.png", 100)
    _face(folder / "b.png", 140)
    return folder


def predict(argv, capsys):
    return call_main(predict_main, argv, capsys)


# ----------------------------------------------------------------------------- check_outputs


def test_check_outputs_compares_resolved_paths(tmp_path):
    data = tmp_path / "data"
    (data / "anger").mkdir(parents=True)
    (tmp_path / "link").symlink_to(data)
    for output, message in [
        (data, "must not be an input"),
        (tmp_path / "link" / "run", "must not lie inside an input folder"),
        (data / "anger" / ".." / "run", "must not lie inside an input folder"),
        (tmp_path, "must not hold an input"),
    ]:
        with pytest.raises(ValueError, match=message) as error:
            check_outputs({"output": output}, {"data": data}, folders=("output",))
        assert f"Received: output={str(output)!r}" in str(error.value)
        assert f"data={str(data)!r}" in str(error.value)
    check_outputs({"output": tmp_path / "runs" / "a"}, {"data": data}, folders=("output",))
    check_outputs({"output": None}, {"data": data})


def test_a_file_output_may_sit_beside_an_input_file_but_not_be_it(tmp_path):
    image = _face(tmp_path / "a.png")
    check_outputs({"output": tmp_path / "a.jsonl"}, {"INPUT": [image]})
    with pytest.raises(ValueError, match="output must not be an input"):
        check_outputs({"output": tmp_path / "." / "a.png"}, {"INPUT": [image]})


def test_an_output_name_too_long_for_the_file_system_is_refused(tmp_path):
    name_max, _ = name_limit(tmp_path)
    fits = "p" * (name_max - len(".") - len(".partial") - len(".csv")) + ".csv"
    check_outputs({"output": tmp_path / fits}, {})
    with pytest.raises(ValueError, match=r"a name of at most \d+ bytes .*temporary name"):
        check_outputs({"output": tmp_path / ("p" + fits)}, {})
    with pytest.raises(ValueError, match=rf"names of at most {name_max} bytes"):
        check_outputs({"run": tmp_path / ("r" * (name_max + 1)) / "inner"}, {}, folders=("run",))


# ----------------------------------------------------------------------------- predict


@pytest.mark.parametrize("argv, message", [
    (["photos", "--annotate", "."],
     "--annotate must not hold an input. Received: --annotate='.', which holds INPUT='photos'"),
    (["photos", "--annotate", "photos/annotated"],
     "--annotate must not lie inside an input folder. Received: --annotate='photos/annotated', "
     "inside INPUT='photos'"),
    (["photos/a.png", "--annotate", "photos"],
     "--annotate must not hold an input. Received: --annotate='photos', which holds INPUT='photos/a.png'"),
    (["photos/a.png", "--output", "photos/a.png"],
     "--output must not be an input. Received: --output='photos/a.png', which is INPUT='photos/a.png'"),
    (["photos", "--output", "photos/predictions.jsonl"],
     "--output must not lie inside an input folder. Received: --output='photos/predictions.jsonl', "
     "inside INPUT='photos'"),
    (["photos/a.png", "--output", "elsewhere/../photos/./a.png"],
     "--output must not be an input. Received: --output='elsewhere/../photos/./a.png', "
     "which is INPUT='photos/a.png'"),
    (["photos/a.png", "--output", "out", "--annotate", "out"],
     "--annotate must not be the path of another output. Received: --annotate='out', the path of --output='out'"),
    (["photos", "--annotate", "link/annotated"],
     "--annotate must not lie inside an input folder. Received: --annotate='link/annotated', "
     "inside INPUT='photos'"),
])
def test_predict_outputs_that_touch_inputs_are_refused(tiny_run, photos, argv, message, capsys):
    (photos.parent / "link").symlink_to(photos)
    before = _snapshot(photos.parent)
    line = _one_error(*predict(["--model", tiny_run, *argv], capsys))
    assert line == f"{PREDICT}: error: {message}"
    assert _snapshot(photos.parent) == before
    assert not (photos / "annotated").exists()


def test_predict_output_is_never_the_model_file(tiny_run, photos, capsys):
    model = tiny_run / "classifier.keras"
    before = model.read_bytes()
    line = _one_error(*predict(["--model", tiny_run, "photos/a.png", "--output", model], capsys))
    assert f"--output must not be an input. Received: --output='{model}', which is --model='{model}'" in line
    assert model.read_bytes() == before


def test_predict_annotate_folder_holding_a_streamed_video_is_refused(tiny_run, tmp_path, capsys):
    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    for _ in range(3):
        writer.write(np.full((48, 64, 3), 120, np.uint8))
    writer.release()
    line = _one_error(*predict(["--model", tiny_run, "--stream", clip, "--annotate", tmp_path], capsys))
    assert f"--annotate must not hold an input. Received: --annotate='{tmp_path}', which holds INPUT='{clip}'" in line


def test_predict_paths_refuses_an_annotate_folder_inside_an_input(tiny_run, photos):
    from csa_keras.inference.predictor import Predictor

    predictor = Predictor.from_run(tiny_run)
    with pytest.raises(ValueError, match=r"^annotate must not lie inside an input folder\. "
                                         r"Received: annotate='photos/annotated', inside inputs='photos'$"):
        predictor.predict_paths(["photos"], annotate="photos/annotated")
    assert not (photos / "annotated").exists()


def test_annotated_copies_have_names_of_their_own(tiny_run, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for folder in ("one", "two", "three"):
        (tmp_path / folder).mkdir()
    _face(tmp_path / "one" / "face.png", 90)
    _face(tmp_path / "two" / "face.png", 150)
    _face(tmp_path / "three" / "FACE.png", 200)
    before = _snapshot(tmp_path)
    code, _out, err = predict(["--model", tiny_run, "one/face.png", "two/face.png", "three/FACE.png",
                              "--annotate", "annotated", "--quiet"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "annotated").iterdir()) == [
        "FACE_3_annotated.png", "face_2_annotated.png", "face_annotated.png"]
    drawn = [cv2.imread(str(tmp_path / "annotated" / name))
             for name in ("face_annotated.png", "face_2_annotated.png", "FACE_3_annotated.png")]
    assert [int(image[24, 24, 0]) for image in drawn] == [90, 150, 200]  # each input its own copy
    assert {k: v for k, v in _snapshot(tmp_path).items() if not k.startswith("annotated/")} == before


def test_a_name_too_long_for_the_file_system_skips_that_copy_only(tiny_run, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    name_max, _ = name_limit(tmp_path)
    long_name = "x" * (name_max - 5 - len(".png")) + ".png"  # fits; "<stem>_annotated.png" does not
    for name in ("a.png", long_name, "b.png"):
        _face(tmp_path / name)
    code, out, err = predict(["--model", tiny_run, "a.png", long_name, "b.png", "--annotate", "annotated"],
                             capsys)
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["status"] for r in records] == ["ok", "ok", "ok"]
    assert [r["error"] for r in records] == [None, "annotated copy not written: File name too long", None]
    assert records[1]["label"] is not None
    assert sorted(p.name for p in (tmp_path / "annotated").iterdir()) == ["a_annotated.png", "b_annotated.png"]
    assert err.splitlines()[-1] == ("3 faces in 3 files, 1 annotated copy not written (reason in the "
                                    f"records) (model {tiny_run / 'classifier.keras'})")


def test_a_video_whose_annotated_name_is_too_long_is_skipped_frame_by_frame(tiny_run, tmp_path, capsys):
    name_max, _ = name_limit(tmp_path)
    clip = tmp_path / ("v" * (name_max - 4) + ".avi")
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (48, 48))
    for _ in range(3):
        writer.write(np.full((48, 48, 3), 120, np.uint8))
    writer.release()
    photo = _face(tmp_path / "a.png")
    code, out, err = predict(["--model", tiny_run, clip, photo, "--annotate", tmp_path / "out", "--quiet"], capsys)
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["frame"] for r in records] == [0, 1, 2, None]
    assert all(r["error"] == "annotated copy not written: File name too long" for r in records[:3])
    assert records[3]["error"] is None
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a_annotated.png"]


def test_an_output_name_too_long_is_one_line_from_the_shell(tiny_run, tmp_path):
    _face(tmp_path / "a.png")
    name_max, _ = name_limit(tmp_path)
    target = tmp_path / ("o" * (name_max - 4) + ".csv")  # fits the file system, not its temporary name
    result = run_module("csa_keras.predict", "--model", tiny_run, tmp_path / "a.png", "--output", target,
                        timeout=300)
    line = _one_error(result.returncode, result.stdout, result.stderr)
    assert f"--output must have a name of at most {name_max - 9} bytes" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_annotate_dot_from_the_shell_leaves_the_photographs_alone(tiny_run, photos):
    before = _snapshot(photos.parent)
    result = run_module("csa_keras.predict", "--model", tiny_run, "photos", "--annotate", ".", timeout=300)
    _one_error(result.returncode, result.stdout, result.stderr)
    assert _snapshot(photos.parent) == before


# ----------------------------------------------------------------------------- training


@pytest.mark.parametrize("main, prog", [(csa_train_main, "python -m csa_keras.train"),
                                        (vrn_train_main, "python -m voting_resnet.train")])
@pytest.mark.parametrize("where", ["inside", "same", "holds"])
def test_a_training_output_that_touches_the_data_is_refused(main, prog, where, tmp_path, capsys):
    data = tmp_path / "faces"
    for name in ("anger", "happiness"):
        (data / name).mkdir(parents=True)
        _face(data / name / "1.png")
    output = {"inside": data / "run", "same": data, "holds": tmp_path}[where]
    before = _snapshot(tmp_path)
    line = _one_error(*call_main(main, ["--recipe", "smoke", "--data", data, "--output", output, "--quiet"], capsys),
                      prog=prog)
    rule = {"inside": "must not lie inside an input folder", "same": "must not be an input",
            "holds": "must not hold an input"}[where]
    assert line.startswith(f"{prog}: error: --output {rule}. Received: --output='{output}'")
    assert f"--data='{data}'" in line
    assert _snapshot(tmp_path) == before
    assert not (data / "run").exists()


def test_a_training_output_name_too_long_is_one_line(tmp_path, capsys):
    name_max, _ = name_limit(tmp_path)
    output = tmp_path / ("r" * (name_max + 1))
    line = _one_error(*call_main(csa_train_main, ["--recipe", "smoke", "--output", output, "--quiet"], capsys),
                      prog="python -m csa_keras.train")
    assert f"--output must have names of at most {name_max} bytes" in line
    assert os.listdir(tmp_path) == []
