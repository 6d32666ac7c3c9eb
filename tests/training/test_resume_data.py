"""``resume`` continues a run only on the data it started on (``data.json``).

Each test starts a run the way a training command does (the run directory
opened, the data recorded), then changes the data and resumes through the
public API: the resume is one line naming what changed, before any image
is read or any weight restored.
"""
import json
import os

import numpy as np
import pytest
from PIL import Image

from csa_keras.csa.config import preset
from csa_keras.csa.training import run_csa
from csa_keras.data.loader import load_dataset
from csa_keras.data.synthetic import make_synthetic_dataset
from csa_keras.training import fingerprint, rundir
from csa_keras.training.experiment import dataset_and_splits, start_run
from csa_keras.training.fingerprint import DATA_FILE, catalogue_changes, data_catalogue


def write_faces(root, classes, per_class=6):
    data = make_synthetic_dataset(seed=0, n_subjects=per_class, images_per_class=1)
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        label = data.class_names.index(name)
        for i, index in enumerate(np.flatnonzero(data.labels == label)):
            Image.fromarray(data.images[index, ..., 0]).save(root / name / f"{name}_{i}.png")


def started(config, out):
    """A run that started and was killed: its run directory opened and its data recorded."""
    start_run(config, out, "csa", resume=False)
    rundir.release(out)
    (out / rundir.BACKUP).mkdir()
    return out


def test_resume_after_images_removed_and_a_class_added_is_one_line(tmp_path):
    root = tmp_path / "faces"
    write_faces(root, ("anger", "happiness", "surprise"))
    config = preset("smoke").replace(data=str(root))
    out = started(config, tmp_path / "run")
    assert json.loads((out / DATA_FILE).read_text())["files"]["entries"]["anger"]["files"] == 6
    for path in sorted((root / "anger").iterdir())[:3]:
        path.unlink()
    write_faces(root, ("contempt",))
    with pytest.raises(ValueError) as caught:
        run_csa(config, output=out, verbose=0, resume=True)
    message = str(caught.value)
    assert "\n" not in message and str(out) in message
    assert "3 files removed under anger/" in message and "folder contempt/ added (6 files)" in message
    assert (out / rundir.BACKUP).is_dir() and not (out / "splits.json").exists()
    rundir.lock(out)  # the refusal let the run directory go
    rundir.release(out)


def test_a_renamed_or_resized_file_is_a_change_and_a_new_time_is_not(tmp_path):
    root = tmp_path / "faces"
    write_faces(root, ("anger", "happiness"))
    before = data_catalogue(root)
    assert catalogue_changes(before, data_catalogue(root)) == []
    path = root / "happiness" / "happiness_0.png"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert catalogue_changes(before, data_catalogue(root)) == []
    path.rename(root / "happiness" / "happiness_z.png")
    assert catalogue_changes(before, data_catalogue(root)) == [
        "files under happiness/ changed (same count; names or sizes differ)"]
    csv = tmp_path / "fer2013.csv"
    csv.write_text("emotion,pixels,Usage\n")
    recorded = data_catalogue(csv)
    csv.write_text("emotion,pixels\n")
    assert catalogue_changes(recorded, data_catalogue(csv)) == ["file fer2013.csv changed (21 bytes, now 15)"]


def test_data_copied_elsewhere_resumes_and_new_pixels_are_refused(tmp_path):
    """Every file's time changed (a copy, a restore): the same data; pixels that changed in a
    file of the same size are found by the loaded dataset's digest."""
    root = tmp_path / "faces"
    write_faces(root, ("anger", "happiness"))
    out = tmp_path / "run"
    out.mkdir()
    fingerprint.check_files(out, data_catalogue(root), resume=False)
    fingerprint.check_dataset(out, load_dataset(root, cache_dir=False, progress=False), resume=False)
    for path in root.rglob("*.png"):
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    fingerprint.check_files(out, data_catalogue(root), resume=True)
    fingerprint.check_dataset(out, load_dataset(root, cache_dir=False, progress=False), resume=True)

    path = root / "anger" / "anger_0.png"
    pixels = np.asarray(Image.open(path))
    Image.fromarray(np.ascontiguousarray(pixels.T)).save(path)
    with pytest.raises(ValueError, match=r"the images or labels differ \(12 images, now 12\)"):
        fingerprint.check_dataset(out, load_dataset(root, cache_dir=False, progress=False), resume=True)


def test_a_record_of_version_1_leaves_a_new_time_to_the_dataset_check(tmp_path):
    """Runs recorded before version 2 digested modification times too: the same counts and
    bytes with another digest are not refused by the files' check."""
    root = tmp_path / "faces"
    write_faces(root, ("anger",))
    now = data_catalogue(root)
    old = {"path": now["path"], "entries": {"anger": {**now["entries"]["anger"], "digest": "0" * 32}}}
    assert catalogue_changes(old, now) == []
    (root / "anger" / "anger_0.png").unlink()
    assert catalogue_changes(old, data_catalogue(root)) == ["1 file removed under anger/"]


def test_a_dataset_from_python_that_changed_is_refused(tmp_path):
    """Data passed as arrays has no files: the loaded images and labels are compared."""
    faces = make_synthetic_dataset(seed=0, n_subjects=6, images_per_class=2)
    config = preset("smoke")
    out = tmp_path / "run"
    start_run(config, out, "csa", resume=False)
    dataset_and_splits(config, faces, lambda config, dataset, log: dataset, False, 0, print, out, False)
    rundir.release(out)
    (out / rundir.BACKUP).mkdir()
    anger = faces.class_names.index("anger")
    fewer = faces.subset(np.delete(np.arange(len(faces)), np.flatnonzero(faces.labels == anger)[:3]))
    with pytest.raises(ValueError, match=r"changed since the run started \(3 images fewer of 'anger'\)"):
        run_csa(config, output=out, dataset=fewer, verbose=0, resume=True)


def test_the_comparison_resumes_only_on_the_same_data(tmp_path):
    from voting_resnet.comparison import CompareConfig, run_comparison

    root = tmp_path / "faces"
    write_faces(root, ("anger", "happiness", "surprise"))
    config = CompareConfig(data=str(root))
    out = tmp_path / "compare"
    start_run(config, out, "compare", resume=False)
    rundir.release(out)
    (root / "surprise" / "surprise_0.png").unlink()
    with pytest.raises(ValueError, match=r"1 file removed under surprise/"):
        run_comparison(config, output=out, verbose=0, resume=True)
