"""Evaluation protocols: holdout, subject k-fold, predefined, duplicates."""
import dataclasses

import numpy as np
import pytest

from csa_keras.data.dataset import FaceDataset
from csa_keras.data.protocols import (
    LEAK_NOTE,
    PROTOCOLS,
    Split,
    carve_validation,
    dedupe,
    duplicate_report,
    find_duplicates,
    holdout,
    make_splits,
    predefined,
    subject_kfold,
)

CLASSES = ["anger", "happiness", "sadness", "surprise"]


def make_dataset(n_subjects=12, per_subject=(3, 5, 2, 4), splits=None, seed=0) -> FaceDataset:
    """Random images; every subject has ``per_subject[c]`` images of class c."""
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.repeat(np.arange(len(per_subject)), per_subject)] * n_subjects)
    subjects = np.repeat([f"S{i:03d}" for i in range(n_subjects)], sum(per_subject)).astype(object)
    n = len(labels)
    images = rng.integers(0, 256, (n, 8, 8, 1), dtype=np.uint8)
    return FaceDataset(images=images, labels=labels, class_names=CLASSES[:len(per_subject)],
                       paths=[f"img{i}.png" for i in range(n)], subjects=subjects, splits=splits)


def assert_partition(split: Split, n: int, with_val: bool = True):
    train, test = set(split.train.tolist()), set(split.test.tolist())
    val = set([] if split.val is None else split.val.tolist())
    assert not train & test and not train & val and not val & test
    assert len(train) == len(split.train) and len(test) == len(split.test)
    if with_val:
        assert val
    assert train | test | val == set(range(n))


def test_subject_kfold_keeps_subjects_apart_and_covers_every_image():
    ds = make_dataset()
    splits = make_splits(ds, "subject-kfold", folds=4, seed=1)
    assert [s.name for s in splits] == ["fold1", "fold2", "fold3", "fold4"]
    tested = np.concatenate([s.test for s in splits])
    assert np.array_equal(np.sort(tested), np.arange(len(ds)))
    for split in splits:
        assert_partition(split, len(ds))
        train_subjects = set(ds.subjects[np.concatenate([split.train, split.val])])
        assert not train_subjects & set(ds.subjects[split.test])
        assert len(split.val) == int(np.ceil(0.1 * (len(split.train) + len(split.val))))
        assert set(ds.labels[split.val]) == set(range(4))
    again = make_splits(ds, "subject-kfold", folds=4, seed=1)
    assert all(np.array_equal(a.test, b.test) and np.array_equal(a.val, b.val) for a, b in zip(splits, again))
    other = make_splits(ds, "subject-kfold", folds=4, seed=2)
    assert any(not np.array_equal(a.test, b.test) for a, b in zip(splits, other))


def test_subject_kfold_is_stratified():
    ds = make_dataset(n_subjects=20)
    for split in subject_kfold(ds.labels, ds.subjects, k=5, seed=0):
        assert len(split.test) == len(ds) // 5
        assert np.array_equal(np.bincount(ds.labels[split.test]), [12, 20, 8, 16])
        assert split.val is None


def test_holdout_keeps_class_proportions_and_is_deterministic():
    ds = make_dataset()
    (split,) = holdout(ds.labels, test_size=0.2, seed=3)
    assert split.name == "holdout"
    assert len(split.test) == int(np.ceil(0.2 * len(ds)))
    expected = np.bincount(ds.labels) * 0.2
    assert np.abs(np.bincount(ds.labels[split.test]) - expected).max() <= 1
    assert_partition(split, len(ds), with_val=False)
    (same,) = holdout(ds.labels, test_size=0.2, seed=3)
    (other,) = holdout(ds.labels, test_size=0.2, seed=4)
    assert np.array_equal(split.test, same.test)
    assert not np.array_equal(split.test, other.test)

    (carved,) = make_splits(ds, "holdout", seed=3, val_fraction=0.25)
    assert np.array_equal(carved.test, split.test)
    assert np.array_equal(np.sort(np.concatenate([carved.train, carved.val])), split.train)
    assert len(carved.val) == int(np.ceil(0.25 * len(split.train)))
    val_expected = np.bincount(ds.labels[split.train]) * 0.25
    assert np.abs(np.bincount(ds.labels[carved.val]) - val_expected).max() <= 1


def test_predefined_with_its_own_val_split():
    n = 12 * 14
    membership = np.array(["train"] * 100 + ["val"] * 30 + ["test"] * (n - 130), dtype=object)
    ds = make_dataset(splits=membership)
    (split,) = make_splits(ds, "predefined")
    assert split.name == "predefined"
    assert np.array_equal(split.train, np.arange(100))
    assert np.array_equal(split.val, np.arange(100, 130))
    assert np.array_equal(split.test, np.arange(130, n))


def test_predefined_carves_val_by_fraction_or_per_class():
    n = 12 * 14
    membership = np.array(["train"] * 140 + ["test"] * (n - 140), dtype=object)
    ds = make_dataset(splits=membership)
    (by_fraction,) = make_splits(ds, "predefined", val_fraction=0.1, seed=5)
    assert_partition(by_fraction, n)
    assert np.array_equal(by_fraction.test, np.arange(140, n))
    assert len(by_fraction.val) == 14
    assert np.array_equal(np.sort(np.concatenate([by_fraction.train, by_fraction.val])), np.arange(140))

    (per_class,) = predefined(ds.splits, ds.labels, seed=5, val_per_class=3)
    assert np.array_equal(np.bincount(ds.labels[per_class.val]), [3, 3, 3, 3])
    assert np.array_equal(np.sort(np.concatenate([per_class.train, per_class.val])), np.arange(140))
    with pytest.raises(ValueError, match="class 'sadness' has 20"):
        predefined(ds.splits, ds.labels, val_per_class=20, class_names=ds.class_names)


def test_carve_validation_edge_cases():
    labels = np.array([0] * 10 + [1] * 10 + [2])
    train = np.arange(21)
    kept, val = carve_validation(train, labels, fraction=0.0)
    assert np.array_equal(kept, train) and len(val) == 0
    kept, val = carve_validation(train, labels, fraction=0.1, seed=0)
    assert len(val) == 3 and 20 in kept
    assert np.array_equal(np.bincount(labels[val], minlength=3), [2, 1, 0]) or \
        np.array_equal(np.bincount(labels[val], minlength=3), [1, 2, 0])
    tiny = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    kept, val = carve_validation(np.arange(8), tiny, fraction=0.1)
    assert np.array_equal(np.sort(tiny[val]), [0, 1, 2, 3]) and np.array_equal(np.sort(tiny[kept]), [0, 1, 2, 3])
    with pytest.raises(ValueError, match="fraction"):
        carve_validation(train, labels, fraction=1.0)


def test_every_protocol_gives_val_disjoint_from_train_and_test():
    membership = np.array(["train"] * 120 + ["test"] * 48, dtype=object)
    ds = make_dataset(splits=membership)
    for protocol in PROTOCOLS:
        for split in make_splits(ds, protocol, folds=3):
            assert_partition(split, len(ds))


def test_planted_duplicates_are_found_and_removed():
    ds = make_dataset()
    (split,) = holdout(ds.labels, seed=0)
    images = ds.images.copy()
    planted = split.test[[0, 4, 9]]
    images[planted] = images[split.train[[1, 2, 3]]]
    images[split.test[12]] = images[split.test[13]]
    assert np.array_equal(find_duplicates(images, split.train, split.test), np.sort(planted))

    deduped, removed = dedupe(split, images)
    assert removed == 3
    assert np.array_equal(deduped.test, np.setdiff1d(split.test, planted))
    assert np.array_equal(deduped.train, split.train)
    report = duplicate_report(images, split)
    assert report["test_in_train"] == 3
    assert report["within_test"] == 1 and report["within_train"] == 0
    assert report["n_test"] == len(split.test)
    assert report["test_in_train_fraction"] == pytest.approx(3 / len(split.test))

    with_val = dataclasses.replace(split, train=split.train[5:], val=split.train[:5])
    assert dedupe(with_val, images)[1] == 3
    assert len(find_duplicates(ds.images, split.train, split.test)) == 0
    near = images.copy()
    near[planted[0], 0, 0, 0] ^= 1
    assert planted[0] not in find_duplicates(near, split.train, split.test)


@pytest.mark.parametrize("call, message", [
    (lambda ds: subject_kfold(ds.labels, ds.subjects, k=1), "subjects. Received: k=1 with 12 subjects$"),
    (lambda ds: subject_kfold(ds.labels, ds.subjects, k=13), "subjects. Received: k=13 with 12 subjects$"),
    (lambda ds: subject_kfold(ds.labels, None, k=3), "subject-kfold needs subject ids; this dataset has none"),
    (lambda ds: make_splits(dataclasses.replace(ds, subjects=None), "subject-kfold"), "has none"),
    (lambda ds: holdout(np.r_[ds.labels, 9], class_names=None), "class label 9 has 1 image"),
    (lambda ds: holdout(np.r_[ds.labels[ds.labels != 2], 2], class_names=CLASSES),
     "class 'sadness' has 1 image"),
    (lambda ds: make_splits(ds, "random"), "unknown protocol 'random'"),
    (lambda ds: make_splits(ds, "predefined"), "has none"),
    (lambda ds: predefined(np.array(["train"] * len(ds)), ds.labels), "no test images"),
    (lambda ds: predefined(np.array(["train", "dev"] * (len(ds) // 2)), ds.labels), "unknown split name"),
])
def test_bad_protocol_arguments_raise_one_line_errors(call, message):
    with pytest.raises(ValueError, match=message) as error:
        call(make_dataset())
    assert "\n" not in str(error.value)


def test_leak_note_names_the_problem_and_the_remedy():
    assert "near duplicates" in LEAK_NOTE and "subject-kfold" in LEAK_NOTE
    assert "\n" not in LEAK_NOTE
