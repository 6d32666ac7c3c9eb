"""The tf.data pipeline: scaling, targets, and batches every replica can split."""
import types

import numpy as np
import pytest

from csa_keras.training.pipeline import make_dataset, replica_batching


def fake_strategy(replicas):
    return types.SimpleNamespace(num_replicas_in_sync=replicas)


def test_make_dataset_scales_uint8_and_builds_every_target():
    images = np.arange(6 * 4 * 4, dtype=np.uint8).reshape(6, 4, 4, 1)
    labels = np.array([0, 1, 2, 0, 1, 2])
    x, y = next(iter(make_dataset(images, labels, batch_size=4, target="onehot", num_classes=3)))
    np.testing.assert_allclose(x.numpy(), images[:4] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y.numpy(), np.eye(3)[labels[:4]])
    x, y = next(iter(make_dataset(images, batch_size=6, target="images")))
    np.testing.assert_array_equal(x.numpy(), y.numpy())
    batches = [b.shape[0] for b in make_dataset(images, batch_size=4, target="none")]
    assert batches == [4, 2]
    with pytest.raises(ValueError, match="num_classes"):
        make_dataset(images, labels, batch_size=2, target="onehot")


def test_one_replica_changes_nothing():
    index = np.arange(17)
    for purpose in ("train", "validate", "predict"):
        kept, batching = replica_batching(index, 32, fake_strategy(1), purpose)
        np.testing.assert_array_equal(kept, index)
        assert batching == {"batch_size": 32}


@pytest.mark.parametrize("n", [1, 2, 7, 17, 31, 64, 65])
@pytest.mark.parametrize("replicas", [2, 3, 4])
def test_every_batch_splits_over_the_replicas(n, replicas):
    index = np.arange(100, 100 + n)
    batch = 32 if 32 % replicas == 0 else 30

    kept, batching = replica_batching(index, batch, fake_strategy(replicas), "validate")
    sizes = [len(c) for c in np.array_split(kept, range(batching["batch_size"], len(kept),
                                                         batching["batch_size"]))]
    assert all(size % replicas == 0 and size > 0 for size in sizes)
    assert len(index) - len(kept) < replicas or len(index) < replicas
    assert set(kept) <= set(index)

    padded, batching = replica_batching(index, batch, fake_strategy(replicas), "predict")
    assert len(padded) % replicas == 0 and len(padded) - len(index) < replicas
    np.testing.assert_array_equal(padded[:n], index)
    assert batching["batch_size"] % replicas == 0

    _, batching = replica_batching(index, batch, fake_strategy(replicas), "train")
    assert batching["drop_remainder"] == (n >= batch)


def test_unknown_purpose_is_refused():
    with pytest.raises(ValueError, match="purpose"):
        replica_batching(np.arange(4), 2, fake_strategy(2), "score")
