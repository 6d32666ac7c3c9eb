"""Tests of the dataset readers and format detection.

Every fixture is written here, in the real on-disk layout of its format, with
tiny real images; nothing depends on a downloaded dataset.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from csa_keras.data.readers import (
    FORMATS,
    READER_OPTIONS,
    detect_format,
    read_affectnet,
    read_catalogue,
    read_ckplus,
    read_fer2013,
    read_folder,
    read_jaffe,
    read_rafdb,
)


def write_image(path: Path, size: int = 8, mode: str = "L", value: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    colour = (value,) * 3 if mode == "RGB" else value
    Image.new(mode, (size, size), colour).save(path)
    return path


def pixel_string(values: np.ndarray) -> str:
    return " ".join(str(int(v)) for v in values.ravel())


# --------------------------------------------------------------------- fer2013-csv

@pytest.fixture
def fer_dir(tmp_path):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, size=(48, 48), dtype=np.int64) for _ in range(3)]
    good = pixel_string(images[0])
    with_letter = good.split()
    with_letter[10] = "x"
    rows = [
        ["3", pixel_string(images[0]), "Training"],       # row 1: happiness
        ["0", pixel_string(images[1]), "PublicTest"],     # row 2: anger
        ["6", pixel_string(images[2]), "PrivateTest"],    # row 3: neutral
        ["2", " ".join(good.split()[:2303]), "Training"],  # row 4: 2303 values
        ["4", " ".join(with_letter), "Training"],          # row 5: non-numeric
        ["9", good, "Training"],                           # row 6: unknown code
        ["5", good, "Validation"],                         # row 7: unknown usage
        ["1", "256 " + " ".join(good.split()[1:]), "Training"],  # row 8: out of range
        ["1"],                                             # row 9: too few fields
    ]
    path = tmp_path / "fer" / "fer2013.csv"
    path.parent.mkdir()
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["emotion", "pixels", "Usage"])
        writer.writerows(rows)
    return path.parent, images


def test_fer2013_rows_labels_splits_and_skips(fer_dir):
    folder, images = fer_dir
    catalogue = read_fer2013(folder)
    assert catalogue.format == "fer2013-csv"
    assert [s.label for s in catalogue.samples] == ["happiness", "anger", "neutral"]
    assert [s.split for s in catalogue.samples] == ["train", "test", "val"]
    csv_path = str(folder / "fer2013.csv")
    assert [s.source for s in catalogue.samples] == [f"{csv_path}#row={n}" for n in (1, 2, 3)]
    for sample, image in zip(catalogue.samples, images):
        assert sample.pixels.dtype == np.uint8 and sample.pixels.shape == (48, 48, 1)
        np.testing.assert_array_equal(sample.pixels[..., 0], image)
    assert catalogue.skipped.as_dict() == {
        "bad_row": 1, "non_numeric_pixels": 1, "pixel_out_of_range": 1,
        "unknown_label": 1, "unknown_usage": 1, "wrong_pixel_count": 1,
    }
    assert catalogue.skipped.examples["wrong_pixel_count"] == [f"{csv_path}#row=4"]
    assert catalogue.class_names == ["anger", "happiness", "neutral"]
    assert not catalogue.needs_detection and not catalogue.colour


def test_fer2013_public_test_as_val_and_file_path(fer_dir):
    folder, _ = fer_dir
    catalogue = read_fer2013(folder / "fer2013.csv", public_test_as="val")
    assert [s.split for s in catalogue.samples] == ["train", "val", "test"]
    with pytest.raises(ValueError, match="public_test_as"):
        read_fer2013(folder, public_test_as="dev")


def test_fer2013_without_usage_and_bad_headers(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("emotion,pixels\n5," + " ".join(["7"] * 2304) + "\n")
    catalogue = read_fer2013(path)
    assert [(s.label, s.split) for s in catalogue.samples] == [("surprise", None)]
    assert int(catalogue.samples[0].pixels.sum()) == 7 * 2304

    no_pixels = tmp_path / "broken" / "fer2013.csv"
    no_pixels.parent.mkdir()
    no_pixels.write_text("emotion,Usage\n3,Training\n")
    with pytest.raises(ValueError, match=r"broken.*fer2013\.csv has no 'pixels' column"):
        read_fer2013(no_pixels.parent)

    only_bad = tmp_path / "bad.csv"
    only_bad.write_text("emotion,pixels,Usage\n3,1 2 3,Training\n")
    with pytest.raises(ValueError, match=r"no labelled images found under .*bad\.csv.*wrong_pixel_count: 1"):
        read_fer2013(only_bad)
    with pytest.raises(ValueError, match="does not exist"):
        read_fer2013(tmp_path / "missing.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no fer2013.csv"):
        read_fer2013(tmp_path / "empty")


def test_detect_fer2013(fer_dir, tmp_path):
    folder, _ = fer_dir
    assert detect_format(folder) == "fer2013-csv"
    assert detect_format(folder / "fer2013.csv") == "fer2013-csv"
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="cannot tell the format of .*other.csv"):
        detect_format(other)


# -------------------------------------------------------------------------- ckplus

def write_sequence(images: Path, subject: str, seq: str, n_frames: int) -> list[Path]:
    return [write_image(images / subject / seq / f"{subject}_{seq}_{i:08d}.png", size=16)
            for i in range(1, n_frames + 1)]


def write_emotion(emotion: Path, subject: str, seq: str, frame: int, text: str) -> None:
    folder = emotion / subject / seq
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{subject}_{seq}_{frame:08d}_emotion.txt").write_text(text)


@pytest.fixture
def ckplus_root(tmp_path):
    root = tmp_path / "CK+"
    images, emotion = root / "cohn-kanade-images", root / "Emotion"
    frames = {
        "S005_001": write_sequence(images, "S005", "001", 5),
        "S005_002": write_sequence(images, "S005", "002", 4),
        "S010_004": write_sequence(images, "S010", "004", 2),
        "S011_001": write_sequence(images, "S011", "001", 4),
    }
    write_emotion(emotion, "S005", "001", 5, "   3.0000000e+00\n")
    write_emotion(emotion, "S010", "004", 2, "   7.0000000e+00\n")
    write_emotion(emotion, "S011", "001", 4, "   9.0000000e+00\n")
    (emotion / "S005" / "002").mkdir(parents=True)  # CK+ ships empty label folders
    write_emotion(emotion, "S099", "001", 3, "   1.0000000e+00\n")  # labels without frames
    (images / "S005" / "001" / "notes.txt").write_text("not a frame")
    return root, frames


def test_ckplus_last_frames_labels_and_skips(ckplus_root):
    root, frames = ckplus_root
    catalogue = read_ckplus(root)
    got = [(Path(s.source).name, s.label, s.subject, s.sequence) for s in catalogue.samples]
    assert got == [
        ("S005_001_00000003.png", "disgust", "S005", "S005_001"),
        ("S005_001_00000004.png", "disgust", "S005", "S005_001"),
        ("S005_001_00000005.png", "disgust", "S005", "S005_001"),
        ("S010_004_00000001.png", "surprise", "S010", "S010_004"),
        ("S010_004_00000002.png", "surprise", "S010", "S010_004"),
    ]
    assert catalogue.samples[0].source == str(frames["S005_001"][2])
    assert catalogue.skipped.as_dict() == {
        "missing_image": 1, "not_an_image_extension": 1,
        "unknown_label": 1, "unlabelled_sequence": 1,
    }
    assert catalogue.skipped.examples["unlabelled_sequence"] == [str(root / "cohn-kanade-images" / "S005" / "002")]
    assert catalogue.needs_detection and not catalogue.colour
    assert catalogue.class_names == ["disgust", "surprise"]
    assert all(s.split is None for s in catalogue.samples)


def test_ckplus_options(ckplus_root):
    root, frames = ckplus_root
    last = read_ckplus(root, last_frames=1)
    assert [s.source for s in last.samples] == [str(frames["S005_001"][-1]), str(frames["S010_004"][-1])]

    with_neutral = read_ckplus(root, first_as_neutral=True)
    neutral = [s for s in with_neutral.samples if s.label == "neutral"]
    # S010_004 has only 2 frames, all among the last 3: its first frame keeps its emotion.
    assert [(s.source, s.sequence) for s in neutral] == [(str(frames["S005_001"][0]), "S005_001")]
    assert len(with_neutral.samples) == 6
    assert with_neutral.class_names == ["disgust", "neutral", "surprise"]

    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="last_frames"):
            read_ckplus(root, last_frames=bad)


def test_ckplus_detection_and_layout_errors(ckplus_root, tmp_path):
    root, _ = ckplus_root
    assert detect_format(root) == "ckplus"
    assert detect_format(root.parent) == "ckplus"  # one level down
    assert len(read_catalogue(root.parent).samples) == 5
    (tmp_path / "only_images" / "cohn-kanade-images").mkdir(parents=True)
    with pytest.raises(ValueError, match="no cohn-kanade-images/ and Emotion/"):
        read_ckplus(tmp_path / "only_images")


# ----------------------------------------------------------------------- affectnet

AFFECTNET_HEADER = ["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
                    "facial_landmarks", "expression", "valence", "arousal"]


@pytest.fixture
def affectnet_root(tmp_path):
    root = tmp_path / "AffectNet"
    images = root / "Manually_Annotated_Images"
    lists = root / "Manually_Annotated_file_lists"
    lists.mkdir(parents=True)
    landmarks = "1.0;2.0;3.0;4.0"

    def rows(spec):
        out = []
        for name, code, box, exists in spec:
            rel = f"{code % 3 + 1}/{name}.jpg"
            if exists:
                write_image(images / rel, size=32, mode="RGB")
            out.append([rel, *map(str, box), landmarks, str(code), "0.5", "-0.25"])
        return out

    training = rows([
        ("n0", 0, (10, 12, 100, 101), True),
        ("h1", 1, (0, 0, 32, 32), True),
        ("a6", 6, (5, 6, 7, 8), True),
        ("c7", 7, (1, 2, 3, 4), True),
        ("x8", 8, (1, 1, 9, 9), True),
        ("x9", 9, (1, 1, 9, 9), True),
        ("x10", 10, (1, 1, 9, 9), True),
        ("gone", 2, (1, 1, 9, 9), False),
    ])
    training.append(["1/bad.jpg", "left", "1", "2", "3", landmarks, "1", "0", "0"])
    validation = rows([("s2", 2, (3, 4, 50, 60), True), ("c7v", 7, (4, 4, 20, 20), True)])
    for name, table in (("training.csv", training), ("validation.csv", validation)):
        with open(lists / name, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(AFFECTNET_HEADER)
            writer.writerows(table)
    return root


def test_affectnet_seven_classes(affectnet_root):
    catalogue = read_affectnet(affectnet_root)
    got = [(Path(s.source).name, s.label, s.split, s.box) for s in catalogue.samples]
    assert got == [
        ("a6.jpg", "anger", "train", (5, 6, 7, 8)),
        ("n0.jpg", "neutral", "train", (10, 12, 100, 101)),
        ("h1.jpg", "happiness", "train", (0, 0, 32, 32)),
        ("s2.jpg", "sadness", "test", (3, 4, 50, 60)),
    ]
    images = affectnet_root / "Manually_Annotated_Images"
    assert catalogue.samples[0].source == str(images / "1" / "a6.jpg")
    assert all(isinstance(v, int) for s in catalogue.samples for v in s.box)
    assert catalogue.skipped.as_dict() == {
        "bad_row": 1, "dropped_contempt": 2, "dropped_no_face": 1,
        "dropped_none": 1, "dropped_uncertain": 1, "missing_image": 1,
    }
    assert catalogue.skipped.examples["missing_image"] == [str(images / "3" / "gone.jpg")]
    assert catalogue.colour and not catalogue.needs_detection
    assert catalogue.class_names == ["anger", "happiness", "neutral", "sadness"]


def test_affectnet_eight_classes_and_detection(affectnet_root):
    catalogue = read_catalogue(affectnet_root, classes=8, last_frames=2)
    assert catalogue.format == "affectnet"
    contempt = [(Path(s.source).name, s.split, s.box) for s in catalogue.samples if s.label == "contempt"]
    assert contempt == [("c7.jpg", "train", (1, 2, 3, 4)), ("c7v.jpg", "test", (4, 4, 20, 20))]
    assert len(catalogue.samples) == 6
    assert "dropped_contempt" not in catalogue.skipped.counts
    assert catalogue.skipped.counts["dropped_none"] == 1
    assert detect_format(affectnet_root) == "affectnet"
    with pytest.raises(ValueError, match="classes must be 7 or 8"):
        read_affectnet(affectnet_root, classes=6)


def test_affectnet_missing_column(tmp_path):
    lists = tmp_path / "Manually_Annotated_file_lists"
    lists.mkdir()
    (lists / "training.csv").write_text("subDirectory_filePath,face_x,face_y,face_width,expression\n")
    with pytest.raises(ValueError, match=r"training\.csv has no 'face_height' column"):
        read_affectnet(tmp_path)


# --------------------------------------------------------------------------- rafdb

@pytest.fixture
def rafdb_root(tmp_path):
    root = tmp_path / "RAF-DB"
    basic = root / "basic"
    (basic / "EmoLabel").mkdir(parents=True)
    (basic / "EmoLabel" / "list_patition_label.txt").write_text(
        "train_00001.jpg 5\n"
        "train_00002.jpg 1\n"
        "train_00003.jpg 9\n"
        "garbage line here\n"
        "\n"
        "test_0001.jpg 7\n"
        "test_0002.jpg 4\n"
    )
    for stem in ("train_00001", "train_00002", "train_00003", "test_0001"):
        write_image(basic / "Image" / "aligned" / f"{stem}_aligned.jpg", size=16, mode="RGB")
    write_image(basic / "Image" / "original" / "train_00001.jpg", size=40, mode="RGB")
    return root


def test_rafdb_aligned(rafdb_root):
    catalogue = read_rafdb(rafdb_root)
    aligned = rafdb_root / "basic" / "Image" / "aligned"
    got = [(s.source, s.label, s.split) for s in catalogue.samples]
    assert got == [
        (str(aligned / "test_0001_aligned.jpg"), "neutral", "test"),
        (str(aligned / "train_00001_aligned.jpg"), "sadness", "train"),
        (str(aligned / "train_00002_aligned.jpg"), "surprise", "train"),
    ]
    assert catalogue.skipped.as_dict() == {"bad_row": 1, "missing_image": 1, "unknown_label": 1}
    assert catalogue.skipped.examples["missing_image"] == [str(aligned / "test_0002_aligned.jpg")]
    assert catalogue.colour and not catalogue.needs_detection
    assert all(s.subject is None for s in catalogue.samples)


def test_rafdb_basic_root_variant_and_detection(rafdb_root):
    basic = rafdb_root / "basic"
    assert [s.label for s in read_rafdb(basic).samples] == ["neutral", "sadness", "surprise"]
    original = read_rafdb(rafdb_root, variant="original")
    assert [s.source for s in original.samples] == [str(basic / "Image" / "original" / "train_00001.jpg")]
    assert original.needs_detection and original.skipped.counts["missing_image"] == 3
    assert detect_format(rafdb_root) == "rafdb"
    assert detect_format(basic) == "rafdb"
    with pytest.raises(ValueError, match="variant"):
        read_rafdb(rafdb_root, variant="cropped")


# --------------------------------------------------------------------------- jaffe

@pytest.fixture
def jaffe_root(tmp_path):
    root = tmp_path / "jaffe_release"
    images = root / "jaffe"
    images.mkdir(parents=True)
    palette = Image.new("P", (32, 32), 3)
    palette.putpalette([v for i in range(256) for v in (i, i, i)])
    palette.save(images / "KA.AN1.39.tiff")
    write_image(images / "KA.HA2.30.tiff", size=32)
    write_image(images / "KL.SU3.166.TIF", size=32)
    write_image(images / "YM.NE1.49.tif", size=32)
    write_image(images / "KM.XX1.50.tiff", size=32)
    write_image(images / "photo_001.tiff", size=32)
    (root / "README").write_text("The Japanese Female Facial Expression database")
    return root


def test_jaffe_names_subjects_and_skips(jaffe_root):
    with Image.open(jaffe_root / "jaffe" / "KA.AN1.39.tiff") as image:
        assert image.mode == "P"
    catalogue = read_jaffe(jaffe_root)
    got = [(Path(s.source).name, s.label, s.subject) for s in catalogue.samples]
    assert got == [
        ("KA.AN1.39.tiff", "anger", "KA"),
        ("KA.HA2.30.tiff", "happiness", "KA"),
        ("KL.SU3.166.TIF", "surprise", "KL"),
        ("YM.NE1.49.tif", "neutral", "YM"),
    ]
    assert catalogue.skipped.as_dict() == {"not_an_image_extension": 1, "unknown_label": 1, "unparsable_name": 1}
    assert catalogue.skipped.examples["unparsable_name"] == [str(jaffe_root / "jaffe" / "photo_001.tiff")]
    assert catalogue.needs_detection and not catalogue.colour
    assert detect_format(jaffe_root) == "jaffe"
    assert detect_format(jaffe_root / "jaffe") == "jaffe"


# -------------------------------------------------------------------------- folder

@pytest.fixture
def kaggle_root(tmp_path):
    root = tmp_path / "fer_images"
    write_image(root / "train" / "angry" / "Training_1.jpg")
    write_image(root / "train" / "happy" / "Training_2.png")
    write_image(root / "train" / "happy" / "Training_3.JPEG")
    write_image(root / "train" / "sad" / "Training_4.bmp")
    (root / "train" / "sad" / "labels.txt").write_text("not an image")
    write_image(root / "train" / "bored" / "Training_5.png")
    write_image(root / "train" / "bored" / "Training_6.png")
    write_image(root / "train" / "stray.png")
    write_image(root / "test" / "Surprise" / "PublicTest_1.jpg")
    write_image(root / "validation" / "neutral" / "PrivateTest_1.jpg")
    (root / "README.md").write_text("Kaggle FER2013 images")
    return root


def test_folder_kaggle_splits_and_skips(kaggle_root):
    catalogue = read_folder(kaggle_root)
    got = [(Path(s.source).relative_to(kaggle_root).as_posix(), s.label, s.split) for s in catalogue.samples]
    assert got == [
        ("test/Surprise/PublicTest_1.jpg", "surprise", "test"),
        ("train/angry/Training_1.jpg", "anger", "train"),
        ("train/happy/Training_2.png", "happiness", "train"),
        ("train/happy/Training_3.JPEG", "happiness", "train"),
        ("train/sad/Training_4.bmp", "sadness", "train"),
        ("validation/neutral/PrivateTest_1.jpg", "neutral", "val"),
    ]
    assert catalogue.skipped.as_dict() == {
        "image_outside_class_folder": 1, "not_an_image_extension": 1, "unknown_class_folder": 2,
    }
    assert catalogue.skipped.examples["unknown_class_folder"] == [str(kaggle_root / "train" / "bored")]
    assert catalogue.class_names == ["anger", "happiness", "neutral", "sadness", "surprise"]
    assert all(s.subject is None for s in catalogue.samples)
    assert not catalogue.needs_detection and not catalogue.colour
    assert detect_format(kaggle_root) == "folder"
    assert [s.source for s in read_catalogue(kaggle_root).samples] == [s.source for s in catalogue.samples]


@pytest.fixture
def ckplus48_root(tmp_path):
    root = tmp_path / "CK+48"
    for cls, names in {
        "anger": ["S010_004_00000017.png", "S010_004_00000018.png"],
        "happy": ["S011_006_00000013.png"],
        "contempt": ["S138_008_00000007.png"],
    }.items():
        for name in names:
            write_image(root / cls / name, size=48)
    return root


def test_folder_ckplus48_subjects_from_names(ckplus48_root):
    catalogue = read_folder(ckplus48_root)
    got = [(Path(s.source).name, s.label, s.subject, s.sequence) for s in catalogue.samples]
    assert got == [
        ("S010_004_00000017.png", "anger", "S010", "S010_004"),
        ("S010_004_00000018.png", "anger", "S010", "S010_004"),
        ("S138_008_00000007.png", "contempt", "S138", "S138_008"),
        ("S011_006_00000013.png", "happiness", "S011", "S011_006"),
    ]
    assert catalogue.class_names == ["anger", "contempt", "happiness"]
    assert all(s.split is None for s in catalogue.samples)
    assert not catalogue.skipped


def test_folder_manifest_gives_subjects(ckplus48_root):
    write_image(ckplus48_root / "anger" / "frame_a.png")
    (ckplus48_root / "manifest.csv").write_text(
        "path,label,subject,sequence,frame\n"
        "anger/frame_a.png,anger,P7,P7_001,1\n"
        "anger/S010_004_00000017.png,anger,S999,S999_001,17\n"
    )
    by_source = {Path(s.source).name: (s.subject, s.sequence) for s in read_folder(ckplus48_root).samples}
    assert by_source["frame_a.png"] == ("P7", "P7_001")
    assert by_source["S010_004_00000017.png"] == ("S999", "S999_001")  # the manifest wins
    assert by_source["S010_004_00000018.png"] == ("S010", "S010_004")  # not listed: from the name

    other = ckplus48_root.parent / "subjects.csv"
    other.write_text("filename,subject\nframe_a.png,P8\n")
    by_source = {Path(s.source).name: s.subject for s in read_folder(ckplus48_root, manifest=other).samples}
    assert by_source["frame_a.png"] == "P8"
    with pytest.raises(ValueError, match="does not exist"):
        read_folder(ckplus48_root, manifest=ckplus48_root / "nope.csv")
    other.write_text("filename,label\nframe_a.png,anger\n")
    with pytest.raises(ValueError, match="needs a path .* and a subject column"):
        read_folder(ckplus48_root, manifest=other)


def test_folder_with_only_unknown_classes(tmp_path):
    (tmp_path / "data" / "train" / "angry").mkdir(parents=True)
    (tmp_path / "data" / "train" / "angry" / "a.txt.gz").write_bytes(b"\x1f\x8b")
    write_image(tmp_path / "data" / "train" / "bored" / "b.png")
    with pytest.raises(ValueError, match=r"no labelled images found under .*data \(format folder\); "
                                         r"skipped not_an_image_extension: 1, unknown_class_folder: 1"):
        read_folder(tmp_path / "data")


# ------------------------------------------------------------ detection and dispatch

def test_detect_format_errors(tmp_path):
    with pytest.raises(ValueError, match=r"nowhere does not exist"):
        detect_format(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty is an empty folder"):
        detect_format(tmp_path / "empty")
    write_image(tmp_path / "misc" / "photos" / "holiday.png")
    with pytest.raises(ValueError, match=r"cannot tell the format of .*misc: expected one of folder, ckplus"):
        detect_format(tmp_path / "misc")
    with pytest.raises(ValueError, match="cannot tell the format"):
        read_catalogue(tmp_path / "misc" / "photos" / "holiday.png")


def test_read_catalogue_dispatch_and_options(ckplus_root, jaffe_root):
    root, _ = ckplus_root
    assert set(READER_OPTIONS) == set(FORMATS)
    assert READER_OPTIONS["ckplus"] == ("last_frames", "first_as_neutral")
    catalogue = read_catalogue(root, last_frames=1, classes=8, variant=None)
    assert catalogue.format == "ckplus" and len(catalogue.samples) == 2
    explicit = read_catalogue(root, format="ckplus", first_as_neutral=True, last_frames=None)
    assert len(explicit.samples) == 6
    with pytest.raises(ValueError, match="unknown reader option"):
        read_catalogue(root, last_frame=1)
    with pytest.raises(ValueError, match="unknown format 'ck'"):
        read_catalogue(root, format="ck")
    with pytest.raises(ValueError, match=r"no labelled images found under .*\(format folder\)"):
        read_catalogue(jaffe_root, format="folder")
