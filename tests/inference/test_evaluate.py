"""``python -m csa_keras.evaluate``: a trained model scored on other labelled data, shared classes only."""
import json

import cv2
import numpy as np
import pytest
from commands import run_module

from csa_keras.csa.config import preset
from csa_keras.csa.training import run_csa
from csa_keras.data.synthetic import make_synthetic_dataset
from csa_keras.inference.scoring import evaluate_model, shared_classes


@pytest.fixture(scope="module")
def csa_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("evaluate_csa") / "run"
    run_csa(preset("smoke").replace(gradcam=False), output=out, verbose=0, log=lambda _: None)
    return out


@pytest.fixture(scope="module")
def other_data(tmp_path_factory):
    """A folder dataset of anger, happiness and neutral faces: neutral is unknown to the model."""
    root = tmp_path_factory.mktemp("other")
    faces = make_synthetic_dataset(seed=5, n_subjects=3, images_per_class=2,
                                   classes=("anger", "happiness", "neutral"))
    for i, (image, label) in enumerate(zip(faces.images, faces.labels)):
        folder = root / faces.class_names[label]
        folder.mkdir(exist_ok=True)
        cv2.imwrite(str(folder / f"{i}.png"), image)
    return root, faces


def test_the_shared_classes_are_scored_and_the_rest_reported(csa_run, other_data, tmp_path):
    root, faces = other_data
    out = tmp_path / "eval"
    metrics = evaluate_model(csa_run, root, output=out, progress=False, log=lambda _: None)
    neutral = int(np.sum(np.asarray(faces.class_names)[faces.labels] == "neutral"))
    assert metrics["class_names"] == ["anger", "happiness"]
    assert metrics["dropped_data_classes"] == {"neutral": neutral}
    assert set(metrics["dropped_model_classes"]) == {"contempt", "disgust", "fear", "sadness",
                                                     "surprise"}
    cm = np.asarray(metrics["confusion_matrix"])
    assert cm.shape == (2, 2) and cm.sum() == metrics["n_test"] == len(faces) - neutral
    assert metrics["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    assert 0 <= metrics["accuracy_ci_low"] <= metrics["accuracy"] <= metrics["accuracy_ci_high"] <= 1
    assert json.loads((out / "metrics.json").read_text())["n_test"] == metrics["n_test"]
    assert (out / "confusion_matrix.png").stat().st_size > 0
    report = (out / "report.md").read_text()
    assert f"neutral {neutral}" in report and "contempt" in report


def test_shared_classes_keep_the_model_order():
    assert shared_classes(["anger", "contempt", "happiness"], ["happiness", "neutral", "anger"]) == [
        "anger", "happiness"]


def test_the_command_scores_and_refuses_in_one_line(csa_run, other_data, tmp_path):
    root, _ = other_data
    done = run_module("csa_keras.evaluate", "--model", csa_run, "--data", root, "--output", tmp_path / "e",
                      "--quiet", timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("accuracy ") and "anger, happiness" in done.stdout
    bad = run_module("csa_keras.evaluate", "--model", tmp_path / "missing", "--data", root, timeout=300)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        f"python -m csa_keras.evaluate: error: --model {tmp_path / 'missing'} does not exist"]


def test_one_split_of_the_data_can_be_scored(csa_run, tmp_path):
    root = tmp_path / "data"
    faces = make_synthetic_dataset(seed=6, n_subjects=2, images_per_class=1,
                                   classes=("anger", "happiness"))
    for i, (image, label) in enumerate(zip(faces.images, faces.labels)):
        folder = root / ("train" if i % 2 else "test") / faces.class_names[label]
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{i}.png"), image)
    metrics = evaluate_model(csa_run, root, output=tmp_path / "e", split="test", progress=False)
    assert metrics["split"] == "test" and metrics["n_test"] == len(faces) // 2
    with pytest.raises(ValueError, match="split must be one of test, train. Received: split='val'"):
        evaluate_model(csa_run, root, output=tmp_path / "f", split="val", progress=False)


def test_a_voting_resnet_is_scored_through_its_vote(tmp_path):
    """The same command for the other task: the Voting ResNet's vote gives the probabilities."""
    from voting_resnet.models import build_voting_resnet

    run = tmp_path / "vrn"
    run.mkdir()
    build_voting_resnet(num_classes=3, input_shape=(16, 16, 3), split_after=3).save(run / "model.keras")
    (run / "metrics.json").write_text(json.dumps({"task": "voting_resnet",
                                                  "class_names": ["anger", "happiness", "neutral"]}))
    root = tmp_path / "data"
    faces = make_synthetic_dataset(seed=7, n_subjects=2, images_per_class=2, size=16, colour=True,
                                   classes=("anger", "happiness", "surprise"))
    for i, (image, label) in enumerate(zip(faces.images, faces.labels)):
        folder = root / faces.class_names[label]
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{i}.png"), image[..., ::-1])
    metrics = evaluate_model(run, root, output=tmp_path / "e", progress=False, log=lambda _: None)
    assert metrics["task"] == "voting_resnet"
    assert metrics["class_names"] == ["anger", "happiness"]
    assert metrics["dropped_data_classes"] == {"surprise": 4}
    assert metrics["dropped_model_classes"] == ["neutral"]
    assert np.asarray(metrics["confusion_matrix"]).sum() == metrics["n_test"] == 8


def test_reader_options_reach_the_reader_and_a_bad_pair_is_one_line(csa_run, other_data, capsys):
    from commands import call_main

    from csa_keras.evaluate import main

    root, _ = other_data
    code, _, err = call_main(main, ["--model", csa_run, "--data", root, "--reader-option", "classes"],
                             capsys)
    assert code == 2 and err.splitlines() == [
        "python -m csa_keras.evaluate: error: --reader-option must be KEY=VALUE. "
        "Received: --reader-option='classes'"]
    code, _, err = call_main(main, ["--model", csa_run, "--data", root, "--reader-option",
                                    "no_such_option=1", "--quiet"], capsys)
    assert code == 2 and "unknown reader option(s) no_such_option" in err


def test_a_run_s_own_test_images_give_back_its_test_metrics(csa_run, tmp_path):
    """``run=`` re-creates the images a run kept for a part of its split: scored on its test part,
    the run's own model gives back the confusion matrix the training wrote."""
    trained = json.loads((csa_run / "metrics.json").read_text())
    splits = json.loads((csa_run / "splits.json").read_text())
    metrics = evaluate_model(csa_run, None, output=tmp_path / "test", split="test", run=csa_run,
                             progress=False, log=lambda _: None)
    assert metrics["run"] == str(csa_run) and metrics["split"] == "test"
    assert metrics["n_test"] == len(next(iter(splits.values()))["test"])
    assert metrics["confusion_matrix"] == trained["confusion_matrix"]
    lines = []
    val = evaluate_model(csa_run, None, output=tmp_path / "val", split="val", run=csa_run,
                         progress=True, log=lines.append)
    assert val["n_test"] == len(next(iter(splits.values()))["val"]) > 0
    assert lines == [f"scoring the {val['n_test']} val images of split "
                     f"{next(iter(splits))!r} of the run's dataset (synthetic)"]


def test_a_run_s_split_is_refused_with_data_or_an_unknown_part(csa_run, other_data, tmp_path):
    root, _ = other_data
    with pytest.raises(ValueError, match="data must be None when run is given"):
        evaluate_model(csa_run, root, output=tmp_path / "a", split="val", run=csa_run,
                       progress=False)
    with pytest.raises(ValueError, match="split must be one of train, val, test. Received: "
                                         "split='PublicTest'"):
        evaluate_model(csa_run, None, output=tmp_path / "b", split="PublicTest", run=csa_run,
                       progress=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
