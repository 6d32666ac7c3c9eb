"""Grad-CAM of a trained CSA classifier falls on the expressive regions (CSA paper §4.3, Fig. 7).

The paper shows Grad-CAM overlays to argue that the classifier looks at the
brows, eyes and mouth. The built-in synthetic faces
(``csa_keras.data.synthetic``) come with a mask of those regions (brows,
eyes, nose bridge, mouth), so the claim can be measured: the share of each
map's mass inside the mask, against the mask's area share (what a uniform
map would give).

The fixture trains the CSA classifier (§3.3: encoder, Flatten, Dense 128,
Dense 7; closure ``code6``, no pretraining) directly with ``fit`` for 8
epochs (BatchNorm momentum 0.9 settles within them) on four fifths of the
subjects of the default synthetic dataset, and explains the faces of the
other fifth (168 faces of 8 subjects never seen in training), each for its
true class. Measured with this file's code for split and initialisation
seeds 0-5 (the test runs seed 0, about a minute on two CPU cores):

==========================================  ====  ====  ====  ====  ====  ====
quantity                                    s0    s1    s2    s3    s4    s5
==========================================  ====  ====  ====  ====  ====  ====
test accuracy (chance 1/7)                  0.97  0.96  0.98  0.94  0.91  0.90
mask area share                             0.21  0.20  0.20  0.20  0.20  0.20
enc4_conv lift (mass share / area share)    1.56  1.24  1.58  1.12  1.24  1.12
enc4_conv density inside / outside masks    1.83  1.32  1.86  1.15  1.32  1.15
enc4_conv lift of the untrained network     0.93  0.69  0.73  0.77  0.61  0.54
enc4_conv all-zero maps (of 168)            1     28    32    23    20    19
enc3_conv lift                              1.64  2.09  1.58  1.09  1.03  1.33
enc3_conv density inside / outside masks    1.97  2.87  1.86  1.11  1.04  1.45
enc3_conv all-zero maps (of 168)            71    60    72    60    36    38
==========================================  ====  ====  ====  ====  ====  ====

``enc4_conv``, the layer the report uses, gives a 6x6 map (one cell per 8x8
pixels), which caps the lift: the mask itself, averaged to 6x6 and put
through the same bilinear zoom and min-max normalisation as tf-keras-vis,
scores 2.06 (1.78 for the worst face). Trained models reach 54-77% of that
ceiling. The untrained network (same initialisation) puts less mass on the
regions than a uniform map would for every seed, so the robust effect is
training moving the map onto the regions (a gain of at least 0.35 in lift);
the margin over a uniform map is real but thin on the worst seeds (1.12).
The asserted bounds sit below the lowest value measured over the six seeds.
Faces whose map is all zero (no positive evidence; tf-keras-vis returns
zeros) are left out of the measurement, and their share is bounded.

``enc3_conv`` (12x12 map, ceiling 3.3) was measured too: it concentrates
more than enc4_conv on half the seeds and less on the others, and leaves up
to 43% of its maps all zero, so it is not a sharper alternative and is not
asserted.
"""
import numpy as np
import pytest

from csa_keras.csa.model import LAST_CONV_LAYER, build_classifier, build_encoder
from csa_keras.data.protocols import subject_kfold
from csa_keras.data.synthetic import make_synthetic_dataset
from csa_keras.evaluation.gradcam import gradcam, heatmap_mass_in
from csa_keras.training.pipeline import make_dataset

SEED = 0
EPOCHS = 8
MIN_TEST_ACCURACY = 0.80
MIN_LIFT = 1.08
MIN_DENSITY_RATIO = 1.10
MIN_GAIN_OVER_UNTRAINED = 0.25
MIN_NONZERO_MAPS = 0.70


def region_concentration(maps: np.ndarray, masks: np.ndarray) -> dict:
    """How much Grad-CAM mass the masks hold, against their area, over the non-zero maps.

    ``lift`` is the mean mass share inside the masks over their mean area
    share (1 for a uniform map); ``density_ratio`` is the mass per unit area
    inside the masks over that outside them (the background of the
    expression: skin, hair, backdrop).
    """
    nonzero = maps.reshape(len(maps), -1).sum(axis=1) > 0
    inside = np.array([heatmap_mass_in(m, h) for m, h in zip(masks[nonzero], maps[nonzero])])
    area = masks[nonzero].mean(axis=(1, 2))
    lift = inside.mean() / area.mean()
    outside = (1.0 - inside).mean() / (1.0 - area).mean()
    return {"lift": float(lift), "density_ratio": float(lift / outside),
            "nonzero": float(nonzero.mean()), "area": float(area.mean())}


def train_and_hold_out(seed: int = SEED, epochs: int = EPOCHS) -> dict:
    """Fit the classifier on 32 synthetic subjects; return it with the faces of the 8 held out.

    Also measures the untrained network's enc4_conv concentration on those
    faces (same initialisation), the control for what training changes.
    """
    import keras

    dataset, masks = make_synthetic_dataset(seed=seed, return_masks=True)
    split = subject_kfold(dataset.labels, dataset.subjects, k=5, seed=seed)[0]
    assert not set(dataset.subjects[split.train]) & set(dataset.subjects[split.test])
    n_classes = len(dataset.class_names)

    keras.utils.set_random_seed(seed)
    model = build_classifier(build_encoder(), n_classes)
    faces = dataset.images[split.test].astype(np.float32) / 255.0
    labels = dataset.labels[split.test]
    held_out_masks = masks[split.test]
    untrained = region_concentration(gradcam(model, faces, labels, LAST_CONV_LAYER), held_out_masks)

    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    train = make_dataset(dataset.images[split.train], dataset.labels[split.train], batch_size=32,
                         shuffle=True, seed=seed, target="onehot", num_classes=n_classes)
    model.fit(train, epochs=epochs, shuffle=False, verbose=0)
    return {"model": model, "faces": faces, "labels": labels, "masks": held_out_masks,
            "untrained": untrained}


def test_region_concentration_matches_hand_computation():
    """A map twice as dense inside a mask of area a: density ratio 2, lift 2 / (2a + 1 - a).

    All-zero maps are dropped and counted.
    """
    masks = np.zeros((3, 4, 4), bool)
    masks[:, :2, :2] = True
    maps = np.where(masks, 1.0, 0.5)
    maps[2] = 0.0
    stats = region_concentration(maps, masks)
    a = 4 / 16
    assert stats["area"] == pytest.approx(a)
    assert stats["density_ratio"] == pytest.approx(2.0)
    assert stats["lift"] == pytest.approx(2 / (2 * a + 1 - a))
    assert stats["nonzero"] == pytest.approx(2 / 3)
    uniform = region_concentration(np.ones((2, 4, 4)), masks[:2])
    assert uniform["lift"] == pytest.approx(1.0) and uniform["density_ratio"] == pytest.approx(1.0)


@pytest.fixture(scope="module")
def trained():
    return train_and_hold_out()


@pytest.mark.heavy
def test_classifier_learns_expressions_of_unseen_subjects(trained):
    predicted = trained["model"].predict(trained["faces"], verbose=0).argmax(axis=1)
    assert len(predicted) == 168
    assert np.mean(predicted == trained["labels"]) >= MIN_TEST_ACCURACY


@pytest.mark.heavy
def test_gradcam_at_last_conv_concentrates_on_expressive_regions(trained):
    """enc4_conv (the report's layer): more mass on brows, eyes, nose and mouth than their area, and
    than the untrained network put there."""
    maps = gradcam(trained["model"], trained["faces"], trained["labels"], LAST_CONV_LAYER)
    assert maps.shape == (168, 48, 48)
    stats = region_concentration(maps, trained["masks"])
    assert 0.15 < stats["area"] < 0.25
    assert stats["nonzero"] >= MIN_NONZERO_MAPS
    assert stats["lift"] >= MIN_LIFT, stats
    assert stats["density_ratio"] >= MIN_DENSITY_RATIO, stats
    assert stats["lift"] - trained["untrained"]["lift"] >= MIN_GAIN_OVER_UNTRAINED, (
        stats, trained["untrained"])

