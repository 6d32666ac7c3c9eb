"""The bad-input matrix: what every kind of bad input gets, through the real entry points.

Each case of :data:`CASES` is a row of the README table "What bad input
gets" and a test here. Files a run can skip are planted in two messy
datasets, each trained once through a CLI (``python -m csa_keras.train`` on
a class folder, ``python -m voting_resnet.train`` on a ``fer2013.csv``): the
test of such a case checks its count in ``metrics.json`` and its row and
example path in ``report.md``, or, for odd but valid encodings, that the
image was used. Inputs nothing can be done with end in one line naming the
thing, from the CLI (exit status 2) or the Python API (``ValueError``).
Decoding itself is covered file by file in ``test_faces.py``, readers in
``test_readers.py``.
"""
import ast
import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from csa_keras.data.synthetic import make_synthetic_dataset

CASES = {
    # case: (what the input is, what it gets)
    "corrupt image": ("random bytes after a PNG header", "skip corrupt_image"),
    "truncated image": ("the first half of a JPEG", "skip truncated_image"),
    "zero-byte image": ("an empty .png", "skip empty_file"),
    "text file named .jpg": ("notes saved as notes.jpg", "skip unreadable_image"),
    "non-image file in a class folder": ("readme.txt", "skip not_an_image_extension"),
    "unknown folder name": ("ROOT/bored/*.png", "skip unknown_class_folder (per file)"),
    "empty class folder": ("ROOT/fear/ with no file", "skip empty_class_folder (per folder)"),
    "very large image": ("an 8000x8000 JPEG", "used, reduced while decoding"),
    "16-bit image": ("a 16-bit grey PNG", "used, scaled to 8 bits"),
    "RGBA image": ("a PNG with alpha", "used, composited on black"),
    "palette image": ("a P-mode PNG", "used, converted"),
    "CMYK image": ("a CMYK JPEG", "used, converted"),
    "colour data for a grey model": ("colour files given to the CSA", "used, made grey"),
    "grey data for a colour model": ("a grey fer2013.csv given to the Voting ResNet",
                                     "used, channel repeated"),
    "wrong pixel count": ("a CSV row of 3 pixels", "skip wrong_pixel_count"),
    "non-numeric pixels": ("a CSV row of letters", "skip non_numeric_pixels"),
    "missing field": ("a CSV row with only the label", "skip bad_row"),
    "unknown label code": ("emotion 9 in fer2013.csv", "skip unknown_label"),
    "missing CSV column": ("no pixels column", "error naming the file and the column"),
    "nothing usable": ("a folder of broken files only", "error naming the folder and reasons"),
    "class with a single image": ("holdout (stratified) split", "error naming the class"),
    "dataset with one class": ("a single class folder", "error naming the class"),
    "NaN in a dataset": ("run_csa(dataset=...) holding NaN", "error with the count"),
    "wrong-shape dataset": ("50x50 or 4-channel images to run_csa", "error naming the shape"),
    "NaN or wrong shape to a model": ("crop_logits(model, images)", "error naming the shape"),
    "model of the other task": ("--init-from a CSA classifier", "error naming the file"),
    "truncated .keras": ("half a model.keras", "error naming the file"),
    "non-model file": ("--init-from a PNG", "error naming the file"),
    "unfinished run without --resume": ("--output of a killed run", "error, backup kept"),
}

HOSTILE = {
    # case: the test of it, under tests/
    "model file naming code to import":
        "inference/test_predict.py::test_a_keras_file_cannot_import_a_module_of_its_choosing",
    "huge model config": "inference/test_predict.py::test_a_huge_config_is_refused_quickly",
    "deeply nested model config": "inference/test_predict.py::test_a_deeply_nested_config_is_refused_quickly",
    "model config that is a list": "inference/test_predict.py::test_a_config_that_is_not_an_object_is_refused",
    "FIFO as the model": "inference/test_special_inputs.py::test_a_fifo_given_as_the_model_is_one_line",
    "annotate over the inputs":
        "inference/test_outputs_and_inputs.py::test_annotate_dot_from_the_shell_leaves_the_photographs_alone",
    "output that is an input":
        "inference/test_outputs_and_inputs.py::test_predict_outputs_that_touch_inputs_are_refused",
    "output that is the model": "inference/test_outputs_and_inputs.py::test_predict_output_is_never_the_model_file",
    "annotate folder holding a streamed video":
        "inference/test_outputs_and_inputs.py::test_predict_annotate_folder_holding_a_streamed_video_is_refused",
    "inputs sharing a name": "inference/test_outputs_and_inputs.py::test_annotated_copies_have_names_of_their_own",
    "input name too long to annotate":
        "inference/test_outputs_and_inputs.py::test_a_name_too_long_for_the_file_system_skips_that_copy_only",
    "video name too long to annotate":
        "inference/test_outputs_and_inputs.py::test_a_video_whose_annotated_name_is_too_long_is_skipped_frame_by_frame",
    "output name too long":
        "inference/test_outputs_and_inputs.py::test_an_output_name_too_long_is_one_line_from_the_shell",
    "training output touching the data":
        "inference/test_outputs_and_inputs.py::test_a_training_output_that_touches_the_data_is_refused",
    "training output name too long":
        "inference/test_outputs_and_inputs.py::test_a_training_output_name_too_long_is_one_line",
    "export of a wrong run": "inference/test_export_checks.py::test_a_wrong_run_is_one_line_and_nothing_is_written",
    "export output holding the model":
        "inference/test_export_checks.py::test_an_output_folder_holding_the_model_is_refused",
    "export interrupted or failing":
        "inference/test_export_checks.py::test_a_failed_export_leaves_the_destination_as_it_was",
    "ONNX export without its extra":
        "inference/test_export.py::test_onnx_without_its_extra_is_refused_before_any_work",
    "live window without a display":
        "inference/test_window.py::test_cli_show_refused_in_one_line_before_any_work",
    "backup torn by Ctrl-C":
        "training/test_backup.py::test_an_interrupted_save_leaves_the_previous_epoch_to_resume_from",
    "Ctrl-C while TensorFlow loads": "training/test_interruptions.py::test_ctrl_c_while_tensorflow_loads_is_one_line",
    "Ctrl-C during training":
        "training/test_interruptions.py::test_ctrl_c_during_training_is_one_line_and_the_run_resumes",
    "Ctrl-C in a training step":
        "utils/test_interrupt.py::test_ctrl_c_during_a_training_step_stops_training_after_that_step",
    "kill -9 during training": "training/test_resume.py::test_killed_csa_run_resumes_from_its_last_epoch",
    "interruption at any instant":
        "training/test_interruptions.py::test_interruptions_swept_over_a_whole_run_all_resume_to_every_epoch",
    "full disk":
        "training/test_interruptions.py::test_a_full_disk_is_one_line_naming_the_path_and_the_run_resumes_once_space_is_back",
    "two runs on one run directory":
        "training/test_interruptions.py::test_a_second_process_on_one_run_directory_gets_one_line_at_once",
    "16-bit image bomb": "data/test_hostile_data.py::test_a_bomb_is_refused_from_its_header_in_bounded_memory",
    "huge non-image file": "data/test_hostile_data.py::test_a_file_over_the_cap_is_not_read_even_as_bytes",
    "bomb in an OpenCV-only format": "data/test_hostile_data.py::test_opencv_formats_are_checked_from_their_header",
    "large image under the budget":
        "data/test_hostile_data.py::test_an_image_just_under_the_budget_is_decoded_without_float_copies",
    "special file as an image": "data/test_hostile_data.py::test_read_image_refuses_special_files_without_opening_them",
    "special file in a class folder":
        "data/test_hostile_data.py::test_folder_reader_counts_special_files_and_the_loader_uses_the_rest",
    "special label file": "data/test_hostile_data.py::test_special_label_files_are_one_line_errors",
    "FIFO given to predict": "inference/test_special_inputs.py::test_fifos_named_to_the_command_are_error_records",
    "CSV without header": "data/test_hostile_data.py::test_a_csv_without_header_is_one_short_line",
    "invalid UTF-8 byte": "data/test_hostile_data.py::test_an_invalid_utf8_byte_skips_its_row_only",
    "row the CSV parser cannot read":
        "data/test_hostile_data.py::test_unparsable_and_endless_rows_are_one_line_errors_naming_the_row",
    "CSV without line breaks":
        "data/test_hostile_data.py::test_a_3gb_csv_without_line_breaks_is_refused_after_one_line",
    "random bytes and rows": "data/test_reader_properties.py::test_fer2013_any_rows_give_skips_or_one_line",
    "another Keras backend": "training/test_interruptions.py::test_a_keras_backend_other_than_tensorflow_is_one_line",
    "option without meaning here": "training/test_options.py::test_data_format_without_data_is_refused",
    "split point given twice": "training/test_options.py::test_a_split_point_given_twice_is_trained_once",
    "weights declaring more than they hold":
        "inference/test_hostile_models.py::test_a_weights_file_declaring_gigabytes_is_refused_before_keras_allocates_them",
    "archive declaring gigabytes":
        "inference/test_hostile_models.py::test_members_declaring_gigabytes_are_refused_from_the_zip_directory",
    "resume on changed data":
        "training/test_resume_data.py::test_resume_after_images_removed_and_a_class_added_is_one_line",
    "count sizing an allocation":
        "inference/test_counts_bounded.py::test_a_billion_calibration_images_is_refused_before_the_model_loads",
    "licence file that is not text":
        "evaluation/test_quoted_text.py::test_a_binary_licence_file_is_said_not_to_be_text",
    "TensorBoard folder failing":
        "training/test_tensorboard_failure.py::test_a_failure_mid_run_warns_once_and_training_goes_on",
    "run file over its bound":
        "inference/test_run_files.py::test_a_metrics_json_over_the_bound_is_one_line_naming_it_and_its_size",
    "run file that is not JSON":
        "inference/test_run_files.py::test_read_json_names_the_file_for_bad_or_deep_json_and_never_opens_a_fifo",
    "class names repeated":
        "inference/test_run_files.py::test_duplicate_class_names_are_refused_not_scored_and_nothing_is_written",
    "split that does not fit the data":
        "inference/test_run_files.py::test_a_split_that_does_not_fit_the_data_is_refused",
    "model among the inputs": "inference/test_run_files.py::test_predict_never_takes_a_model_found_among_its_inputs",
    "evaluation into another run":
        "inference/test_output_rule.py::test_evaluate_into_another_run_is_refused_and_the_run_kept",
    "refused evaluation": "inference/test_output_rule.py::test_a_refused_evaluation_creates_no_folder",
    "prediction over a run's files":
        "inference/test_output_rule.py::test_predict_outputs_never_replace_another_runs_results",
    "export into another run": "inference/test_output_rule.py::test_export_into_another_run_is_refused",
    "new comparison into another run":
        "inference/test_output_rule.py::test_a_new_comparison_into_another_run_is_refused",
    "full disk under the annotated video":
        "inference/test_video_writes.py::test_a_full_disk_under_the_video_is_one_line_and_leaves_no_file",
    "full disk under the timeline":
        "inference/test_video_writes.py::test_a_full_disk_under_the_timeline_is_one_line_naming_it",
    "annotate folder vanishing": "inference/test_video_writes.py::test_a_folder_that_vanishes_mid_video_is_one_line",
    "Ctrl-C during an annotated video":
        "inference/test_video_writes.py::test_ctrl_c_at_any_frame_keeps_the_whole_frames",
}


def faces(classes=("anger", "happiness", "surprise"), per_class=6, size=48):
    """Synthetic grey faces as uint8 ``(48, 48)`` arrays, ``per_class`` of each class."""
    data = make_synthetic_dataset(seed=0, n_subjects=per_class, images_per_class=1, size=size)
    return {c: [data.images[i, ..., 0] for i in np.flatnonzero(data.labels == data.class_names.index(c))]
            for c in classes}


def write_faces(root: Path, per_class=6, classes=("anger", "happiness", "surprise")):
    for label, images in faces(classes, per_class).items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for i, face in enumerate(images):
            Image.fromarray(face).save(root / label / f"{label}_{i}.png")


def large_jpeg(path: Path, side=8000) -> Path:
    """A real face photograph stretched to ``side`` x ``side`` pixels (grey JPEG, about 2 MB)."""
    import matplotlib

    photo = Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")
    photo.convert("L").resize((side, side), Image.Resampling.NEAREST).save(path, quality=60)
    return path


def run_cli(module: str, argv, capsys) -> tuple[int, str]:
    """Run a training CLI in this process; its exit status and last stderr line."""
    main = __import__(module, fromlist=["main"]).main
    try:
        status = main([str(a) for a in argv])
    except SystemExit as exit_:
        status = exit_.code
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return status, lines[-1] if lines else ""


# ------------------------------------------------------------------ a messy class folder, trained


@pytest.fixture(scope="module")
def messy_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("messy") / "faces"
    write_faces(root)
    face = faces(("happiness",), 1)["happiness"][0]
    rgb = np.dstack([face, face // 2, 255 - face])
    alpha = np.full(face.shape, 255, np.uint8)
    alpha[:8] = 0
    Image.fromarray(np.dstack([rgb, alpha])).save(root / "happiness" / "rgba.png")
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(
        root / "happiness" / "palette.png")
    Image.fromarray(face.astype(np.uint16) * 257).save(root / "surprise" / "sixteen.png")
    Image.fromarray(rgb).convert("CMYK").save(root / "surprise" / "cmyk.jpg", quality=95)
    large_jpeg(root / "anger" / "large.jpg")

    png = (root / "anger" / "anger_0.png").read_bytes()
    noise = np.random.default_rng(0).integers(0, 256, len(png) - 60, dtype=np.uint8)
    (root / "anger" / "corrupt.png").write_bytes(png[:60] + noise.tobytes())
    Image.fromarray(face).save(root / "face.jpg", quality=95)
    jpeg = (root / "face.jpg").read_bytes()
    (root / "face.jpg").unlink()
    (root / "anger" / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (root / "happiness" / "empty.png").write_bytes(b"")
    (root / "surprise" / "notes.jpg").write_text("not a picture\n")
    (root / "anger" / "readme.txt").write_text("labels by hand\n")
    (root / "bored").mkdir()
    for i in range(2):
        Image.fromarray(face).save(root / "bored" / f"bored_{i}.png")
    (root / "fear").mkdir()
    return root


@pytest.fixture(scope="module")
def folder_run(messy_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("folder_run") / "run"
    from csa_keras.train import main

    status = main(["--data", str(messy_folder), "--recipe", "smoke", "--no-gradcam", "--quiet",
                   "--output", str(out)])
    assert status == 0
    return {
        "out": out,
        "metrics": json.loads((out / "metrics.json").read_text()),
        "report": (out / "report.md").read_text(),
        "dataset": json.loads((out / "config.json").read_text())["run"]["dataset"],
    }


FOLDER_SKIPS = {
    "corrupt image": ("corrupt_image", 1, "corrupt.png"),
    "truncated image": ("truncated_image", 1, "truncated.jpg"),
    "zero-byte image": ("empty_file", 1, "empty.png"),
    "text file named .jpg": ("unreadable_image", 1, "notes.jpg"),
    "non-image file in a class folder": ("not_an_image_extension", 1, "readme.txt"),
    "unknown folder name": ("unknown_class_folder", 2, "bored"),
    "empty class folder": ("empty_class_folder", 1, "fear"),
}


@pytest.mark.parametrize("case", sorted(FOLDER_SKIPS))
def test_folder_skips_are_counted_in_the_run_report(folder_run, case):
    reason, count, name = FOLDER_SKIPS[case]
    assert folder_run["metrics"]["skipped"][reason] == count
    assert f"| {reason} | {count} |" in folder_run["report"]
    line = next(x for x in folder_run["report"].splitlines() if x.startswith(f"- {reason}:"))
    assert name in line


FOLDER_USED = {
    "very large image": ("anger", "large.jpg"),
    "16-bit image": ("surprise", "sixteen.png"),
    "RGBA image": ("happiness", "rgba.png"),
    "palette image": ("happiness", "palette.png"),
    "CMYK image": ("surprise", "cmyk.jpg"),
    "colour data for a grey model": ("happiness", "rgba.png"),
}


@pytest.mark.parametrize("case", sorted(FOLDER_USED))
def test_odd_encodings_are_used(folder_run, case):
    label, name = FOLDER_USED[case]
    dataset = folder_run["dataset"]
    assert dataset["class_counts"][label] == 6 + {"anger": 1, "happiness": 2, "surprise": 2}[label]
    assert dataset["image_shape"] == [48, 48, 1]
    assert name not in folder_run["report"]
    if case == "very large image":
        assert dataset["faces_detected"] == 1


def test_a_very_large_image_is_never_held_at_full_size(tmp_path):
    """Decoding an 8000x8000 JPEG peaks far below its 192 MB of full-size RGB."""
    path = large_jpeg(tmp_path / "large.jpg")
    script = textwrap.dedent(f"""
        import resource
        from csa_keras.data.faces import decode_image
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        image = decode_image({str(path)!r}, max_side=1024)
        grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        print(image.shape[0], image.shape[1], round(grown))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    height, width, grown_mb = map(int, result.stdout.split())
    assert max(height, width) <= 1024
    assert grown_mb < 96, f"decoding grew the process by {grown_mb} MB"


# ------------------------------------------------------------------ a messy fer2013.csv, trained


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("messy_csv")
    codes = {"anger": 0, "happiness": 3, "surprise": 5}
    rows = ["emotion,pixels"]
    for label, images in faces(tuple(codes)).items():
        rows += [f"{codes[label]},{' '.join(map(str, face.ravel()))}" for face in images]
    rows += ["3,1 2 3", "5," + " ".join(["x"] * 2304), "0", "9," + " ".join(["7"] * 2304)]
    csv_path = folder / "fer2013.csv"
    csv_path.write_text("\n".join(rows) + "\n")
    out = folder / "run"
    from voting_resnet.train import main

    status = main(["--data", str(csv_path), "--recipe", "smoke", "--no-gradcam", "--quiet",
                   "--output", str(out)])
    assert status == 0
    return {
        "metrics": json.loads((out / "metrics.json").read_text()),
        "report": (out / "report.md").read_text(),
        "run": json.loads((out / "config.json").read_text())["run"],
    }


CSV_SKIPS = {
    "wrong pixel count": ("wrong_pixel_count", "row=19"),
    "non-numeric pixels": ("non_numeric_pixels", "row=20"),
    "missing field": ("bad_row", "row=21"),
    "unknown label code": ("unknown_label", "row=22"),
}


@pytest.mark.parametrize("case", sorted(CSV_SKIPS))
def test_csv_rows_that_do_not_parse_are_counted_in_the_run_report(csv_run, case):
    reason, row = CSV_SKIPS[case]
    assert csv_run["metrics"]["skipped"][reason] == 1
    assert f"| {reason} | 1 |" in csv_run["report"]
    line = next(x for x in csv_run["report"].splitlines() if x.startswith(f"- {reason}:"))
    assert row in line


def test_grey_data_for_a_colour_model_repeats_the_channel(csv_run):
    assert csv_run["run"]["dataset"]["image_shape"] == [48, 48, 3]
    assert csv_run["metrics"]["n_test"] + csv_run["metrics"]["n_train"] + \
        csv_run["metrics"]["n_val"] == 18


# ------------------------------------------------------------------ one-line errors


def expect_cli_error(module, argv, capsys, *fragments):
    status, line = run_cli(module, argv, capsys)
    assert status == 2, line
    assert "error:" in line and "Traceback" not in line
    for fragment in fragments:
        assert str(fragment) in line, (fragment, line)
    return line


def test_missing_csv_column(tmp_path, capsys):
    path = tmp_path / "fer2013.csv"
    path.write_text("emotion,Usage\n3,Training\n")
    expect_cli_error("csa_keras.train", ["--data", path, "--data-format", "fer2013-csv", "--recipe",
                                         "smoke", "--output", tmp_path / "run"], capsys,
                     path, "'pixels' column")


def test_nothing_usable(tmp_path, capsys):
    root = tmp_path / "broken"
    (root / "happiness").mkdir(parents=True)
    (root / "happiness" / "a.png").write_bytes(b"")
    (root / "happiness" / "b.jpg").write_text("text")
    expect_cli_error("csa_keras.train", ["--data", root, "--recipe", "smoke", "--output",
                                         tmp_path / "run"], capsys,
                     root, "empty_file: 1", "unreadable_image: 1")


def test_class_with_a_single_image(tmp_path, capsys):
    root = tmp_path / "faces"
    write_faces(root, classes=("happiness", "surprise"))
    write_faces(tmp_path / "one", per_class=1, classes=("anger",))
    (tmp_path / "one" / "anger").rename(root / "anger")
    expect_cli_error("csa_keras.train", ["--data", root, "--recipe", "smoke", "--output",
                                         tmp_path / "run"], capsys, "'anger'", "1 image")


def test_dataset_with_one_class(tmp_path, capsys):
    root = tmp_path / "faces"
    write_faces(root, classes=("happiness",))
    expect_cli_error("voting_resnet.train", ["--data", root, "--recipe", "smoke", "--output",
                                             tmp_path / "run"], capsys, "one class (happiness)")


@pytest.fixture(scope="module")
def tiny():
    return make_synthetic_dataset(seed=0, n_subjects=3, images_per_class=1)


def test_nan_in_a_dataset(tiny, tmp_path):
    from csa_keras.csa.config import preset
    from csa_keras.csa.training import run_csa

    images = tiny.scaled()
    images[4, 10, 10, 0] = np.nan
    images[5, 0, 0, 0] = np.inf
    bad = dataclasses.replace(tiny, images=images)
    with pytest.raises(ValueError) as error:
        run_csa(preset("smoke"), output=tmp_path / "run", dataset=bad, verbose=0)
    message = str(error.value)
    assert "2 NaN or infinite values" in message and "image 4" in message and "\n" not in message
    assert not (tmp_path / "run" / ".backup").exists()


@pytest.mark.parametrize("images, fragment", [
    (np.zeros((21, 50, 50, 1), np.uint8), "50x50"),
    (np.zeros((21, 48, 48, 4), np.uint8), "4 channels"),
    (np.full((21, 48, 48, 1), 255.0, np.float32), "[255, 255]"),
])
def test_wrong_shape_dataset(tiny, tmp_path, images, fragment):
    from csa_keras.csa.config import preset
    from csa_keras.csa.training import run_csa

    bad = dataclasses.replace(tiny, images=images)
    with pytest.raises(ValueError) as error:
        run_csa(preset("smoke"), output=tmp_path / "run", dataset=bad, verbose=0)
    assert fragment in str(error.value) and "\n" not in str(error.value)


def test_nan_or_wrong_shape_to_a_model():
    from voting_resnet.models.resnet18 import build_voting_resnet
    from voting_resnet.training import crop_logits

    model = build_voting_resnet(7, (16, 16, 3), split_after=3)
    grey = np.zeros((2, 16, 16, 1), np.float32)
    with pytest.raises(ValueError, match=r"\(16, 16, 1\) but the model takes \(16, 16, 3\)"):
        crop_logits(model, grey, 8)
    nan = np.full((2, 16, 16, 3), np.nan, np.float32)
    with pytest.raises(ValueError, match="NaN"):
        crop_logits(model, nan, 8)
    assert crop_logits(model, np.zeros((2, 16, 16, 3), np.uint8), 8).shape == (2, 10, 7)


@pytest.fixture(scope="module")
def foreign_files(tmp_path_factory):
    """A CSA classifier, a truncated Voting ResNet and a PNG, each as an --init-from."""
    from csa_keras.csa.model import build_autoencoder, build_classifier
    from voting_resnet.models.resnet18 import build_voting_resnet

    folder = tmp_path_factory.mktemp("foreign")
    csa = build_classifier(build_autoencoder((48, 48, 1)).get_layer("encoder"), 7)
    csa.save(folder / "classifier.keras")
    build_voting_resnet(7, (48, 48, 3), split_after=3).save(folder / "whole.keras")
    data = (folder / "whole.keras").read_bytes()
    (folder / "model.keras").write_bytes(data[: len(data) // 2])
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "face.png")
    return folder


@pytest.mark.parametrize("case, name, fragment", [
    ("model of the other task", "classifier.keras", "no layer of it matches"),
    ("truncated .keras", "model.keras", "not a Keras model"),
    ("non-model file", "face.png", "not a Keras model"),
])
def test_init_from_a_file_that_is_not_a_voting_resnet(foreign_files, tmp_path, capsys, case,
                                                       name, fragment):
    source = foreign_files / name
    expect_cli_error("voting_resnet.train", ["--recipe", "smoke", "--init-from", source,
                                             "--no-gradcam", "--quiet", "--output",
                                             tmp_path / "run"], capsys, source, fragment)


def test_unfinished_run_without_resume(tmp_path, capsys):
    out = tmp_path / "run"
    state = out / ".backup" / "split" / "finetune"
    state.mkdir(parents=True)
    (state / "history.csv").write_text("epoch,loss\n0,1.0\n")
    expect_cli_error("csa_keras.train", ["--recipe", "smoke", "--output", out], capsys,
                     "unfinished run", "--resume")
    assert (state / "history.csv").is_file()


def test_every_case_is_a_row_of_the_readme_table():
    readme = (Path(__file__).resolve().parents[2] / "docs" / "reliability.md").read_text()
    section = readme.split("## What bad input gets", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1].strip() for line in section.splitlines() if line.startswith("| ")]
    rows = set(rows[1:])  # the header row
    assert rows == set(CASES) | set(HOSTILE), sorted(rows ^ (set(CASES) | set(HOSTILE)))
    assert not set(CASES) & set(HOSTILE)


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_every_hostile_case_names_a_test_that_exists(case):
    path, name = HOSTILE[case].split("::")
    tree = ast.parse((Path(__file__).resolve().parents[1] / path).read_text())
    assert name in {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}, HOSTILE[case]
