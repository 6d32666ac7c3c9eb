"""MODEL_CARD.md in every run directory, the data's licence, and where the holdout leak note applies."""
import dataclasses

import numpy as np
import pytest

from csa_keras.data.protocols import LEAK_NOTE, holdout_leaks
from csa_keras.data.synthetic import make_synthetic_dataset
from csa_keras.evaluation.model_card import data_licence, write_model_card


def test_the_licence_comes_from_the_setting_then_a_file_at_the_data_root(tmp_path):
    assert data_licence(str(tmp_path)) is None
    (tmp_path / "LICENSE").write_text("Research use only.\n")
    assert data_licence(str(tmp_path)) == "LICENSE: Research use only."
    assert data_licence(str(tmp_path / "fer2013.csv")) == "LICENSE: Research use only."
    assert data_licence(str(tmp_path), "CC BY-NC 4.0") == "CC BY-NC 4.0"
    assert data_licence(None) is None


def test_the_leak_note_is_for_real_data_with_subjects_under_holdout():
    synthetic = make_synthetic_dataset(seed=0, n_subjects=2, images_per_class=1)
    real = dataclasses.replace(synthetic, format="folder")
    assert not holdout_leaks("holdout", synthetic)
    assert holdout_leaks("holdout", real)
    assert not holdout_leaks("subject-kfold", real)
    assert not holdout_leaks("holdout", dataclasses.replace(real, subjects=None))


@dataclasses.dataclass(frozen=True)
class _Config:
    preset: str = "paper"
    seed: int = 3
    data: str | None = None
    data_licence: str | None = "CC BY-NC"


def test_the_card_states_the_metrics_with_their_interval_and_the_leak(tmp_path):
    metrics = {"dataset": "ckplus48", "class_names": ["anger", "happiness"], "protocol": "holdout",
               "n_train": 700, "n_val": 80, "n_test": 200, "accuracy": 0.9,
               "accuracy_ci_low": 0.86, "accuracy_ci_high": 0.94, "f1_macro": 0.88,
               "balanced_accuracy": 0.89, "per_class_accuracy": {"anger": 0.8, "happiness": 1.0},
               "precision_policy": "mixed_bfloat16"}
    dataset = {"name": "ckplus48", "format": "folder", "n_images": 980, "image_shape": [48, 48, 1],
               "class_counts": {"anger": 135, "happiness": 600}}
    card = write_model_card(tmp_path, "CSA", "A sparse autoencoder.", _Config(), metrics, dataset,
                            subjects_leak=True).read_text()
    assert "accuracy 90.00% (95% bootstrap interval 86.00% – 94.00%)" in card
    assert "| anger | 80.00% |" in card and LEAK_NOTE in card
    assert "imbalanced (from 135 to 600 images)" in card
    assert card.rstrip().endswith("CC BY-NC") and "seed 3" in card and "mixed_bfloat16" in card
    assert "## Intended use" in card and "not meant for decisions about people" in card


@pytest.mark.parametrize("right, total", [(17, 20), (3, 3)])
def test_a_run_interval_from_the_confusion_matrix_brackets_its_accuracy(right, total):
    from csa_keras.evaluation.statistics import bootstrap_interval

    correct = np.repeat([True, False], [right, total - right])
    low, high = bootstrap_interval(correct)
    assert low <= right / total <= high
