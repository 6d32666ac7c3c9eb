"""The CSA builders (csa_keras.csa.model): shapes, names, parameter counts, sparsity, saving.

Each builder's model also goes through the Keras contract of ``keras_contract``
(config round trip, ``.keras`` save and load without ``custom_objects``,
symbolic shapes for an unknown batch); the CSA has no custom layer of its own.
"""
import numpy as np
import pytest

keras = pytest.importorskip("keras")

from keras_contract import run_model_contract  # noqa: E402

from csa_keras.csa.model import (  # noqa: E402
    CLOSURES,
    DEFAULT_ARCHITECTURE,
    LAST_CONV_LAYER,
    architecture,
    build_autoencoder,
    build_classifier,
    build_decoder,
    build_encoder,
)

SMALL = (4, 6, 8, 10)
CODE = {"code6": 6, "pool4": 3}


def _images(n, channels=1, seed=0, scale=1.0):
    return (np.random.default_rng(seed).random((n, 48, 48, channels)) * scale).astype("float32")


def _count(weights):
    return int(sum(np.prod(w.shape) for w in weights))


def _conv(cin, cout):
    return 9 * cin * cout + cout


def _expected_params(filters, channels, closure, num_classes=None, dense=128):
    """(trainable, non-trainable) counts from the layer formulas, by hand."""
    trainable = nontrainable = 0
    cin = channels
    for f in filters:
        trainable += _conv(cin, f) + 2 * f
        nontrainable += 2 * f
        cin = f
    if num_classes is None:
        for f in reversed(filters[:-1]):
            trainable += _conv(cin, f) + 2 * f
            nontrainable += 2 * f
            cin = f
        trainable += _conv(cin, channels)
    else:
        side = 48 // (8 if closure == "code6" else 16)
        flat = side * side * filters[-1]
        trainable += flat * dense + dense + dense * num_classes + num_classes
    return trainable, nontrainable


@pytest.mark.parametrize("closure", CLOSURES)
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_of_every_model(closure, channels, tmp_path):
    ae = build_autoencoder((48, 48, channels), SMALL, closure=closure)
    encoder, decoder = ae.get_layer("encoder"), ae.get_layer("decoder")
    side = CODE[closure]
    code = (3, side, side, SMALL[-1])
    assert tuple(decoder.input.shape) == (None, *code[1:])
    x = _images(3, channels)
    codes = run_model_contract(encoder, x, tmp_path, code, rtol=0, atol=0).output
    run_model_contract(decoder, codes, tmp_path, (3, 48, 48, channels), rtol=0, atol=0)
    reconstruction = run_model_contract(ae, x, tmp_path, (3, 48, 48, channels), rtol=0, atol=0).output
    assert reconstruction.min() >= 0.0 and reconstruction.max() <= 1.0
    classifier = build_classifier(encoder, 5, dense_units=16)
    probabilities = run_model_contract(classifier, x, tmp_path, (3, 5), rtol=0, atol=0).output
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("closure", CLOSURES)
@pytest.mark.parametrize("channels", [1, 3])
def test_exact_parameter_counts_with_paper_widths(closure, channels):
    filters = (32, 64, 128, 256)
    ae = build_autoencoder((48, 48, channels), filters, closure=closure)
    trainable, nontrainable = _expected_params(filters, channels, closure)
    assert _count(ae.trainable_weights) == trainable
    assert _count(ae.non_trainable_weights) == nontrainable
    assert ae.count_params() == trainable + nontrainable
    classifier = build_classifier(ae.get_layer("encoder"), 7)
    trainable, nontrainable = _expected_params(filters, channels, closure, num_classes=7)
    assert _count(classifier.trainable_weights) == trainable
    assert _count(classifier.non_trainable_weights) == nontrainable


def test_parameter_counts_match_the_pytorch_reference_figures():
    """Grey CSA, paper widths: 776,833 trainable in both closures, the PyTorch reference's count."""
    for closure in CLOSURES:
        ae = build_autoencoder(closure=closure)
        assert _count(ae.trainable_weights) == 776_833
    classifier = build_classifier(build_encoder(), 7)
    assert classifier.count_params() == 389_760 + 9216 * 128 + 128 + 128 * 7 + 7


@pytest.mark.parametrize("closure", CLOSURES)
def test_every_layer_is_named_as_documented(closure):
    ae = build_autoencoder(filters=SMALL, closure=closure)
    encoder, decoder = ae.get_layer("encoder"), ae.get_layer("decoder")
    enc_names = ["image"]
    for i in range(1, 5):
        enc_names += [f"enc{i}_conv", f"enc{i}_bn", f"enc{i}_relu"]
        if closure == "pool4" or i < 4:
            enc_names.append(f"enc{i}_pool")
    assert [layer.name for layer in encoder.layers] == enc_names
    dec_names = ["code"]
    for i in range(1, 4):
        dec_names += [f"dec{i}_conv", f"dec{i}_bn", f"dec{i}_relu", f"dec{i}_up"]
    if closure == "pool4":
        dec_names.append("dec_out_up")
    dec_names.append("reconstruction")
    assert [layer.name for layer in decoder.layers] == dec_names
    assert [layer.name for layer in ae.layers] == ["autoencoder_input", "encoder", "decoder"]
    assert ae.name == "csa_autoencoder"
    classifier = build_classifier(encoder, 4)
    head = ["flatten", "dense", "predictions"]
    assert [layer.name for layer in classifier.layers] == enc_names + head
    assert classifier.name == "csa_classifier"
    assert classifier.get_layer(LAST_CONV_LAYER) is encoder.get_layer("enc4_conv")
    assert classifier.get_layer("dense").units == 128
    assert classifier.get_layer("dense").activation is keras.activations.relu
    assert classifier.get_layer("predictions").activation is keras.activations.softmax


@pytest.mark.parametrize("closure", CLOSURES)
def test_decoder_widths_mirror_the_encoder(closure):
    ae = build_autoencoder((48, 48, 3), SMALL, closure=closure)
    decoder = ae.get_layer("decoder")
    assert [decoder.get_layer(f"dec{i}_conv").filters for i in (1, 2, 3)] == [8, 6, 4]
    assert decoder.get_layer("reconstruction").filters == 3
    assert decoder.get_layer("reconstruction").activation is keras.activations.sigmoid
    sizes = [decoder.get_layer(f"dec{i}_up").output.shape[1] for i in (1, 2, 3)]
    assert sizes == ([12, 24, 48] if closure == "code6" else [6, 12, 24])


def test_architecture_table():
    enc, dec = DEFAULT_ARCHITECTURE["pool4"]
    assert [(b.filters, b.resample, b.penalty) for b in enc] == [
        (32, "pool", "enc1_pool"), (64, "pool", "enc2_pool"),
        (128, "pool", "enc3_pool"), (256, "pool", "enc4_pool")]
    assert [(b.name, b.filters, b.resample) for b in dec] == [
        ("dec1", 128, "up"), ("dec2", 64, "up"), ("dec3", 32, "up")]
    enc, _ = architecture(SMALL, "code6")
    assert [b.penalty for b in enc] == ["enc1_pool", "enc2_pool", "enc3_pool", "enc4_relu"]
    assert enc[3].resample is None


def _penalised(closure):
    last = "enc4_pool" if closure == "pool4" else "enc4_relu"
    return [f"enc{i}_pool" for i in (1, 2, 3)] + [last]


def _hand_penalties(encoder, names, x, coefficient):
    """coefficient * sum(|activation|) / batch size, per named layer, in float64."""
    probe = keras.Model(encoder.input, [encoder.get_layer(n).output for n in names])
    return [coefficient * np.abs(np.asarray(a, dtype=np.float64)).sum() / len(x)
            for a in probe(x, training=False)]


def _layer_penalties(encoder, names):
    values = []
    for name in names:
        losses = encoder.get_layer(name).losses
        assert len(losses) == 1, name
        values.append(float(losses[0]))
    return values


_PROBE_INPUT = _images(5, seed=3, scale=2.0)


@pytest.mark.parametrize("closure", CLOSURES)
def test_four_sparsity_penalties_equal_the_hand_computation(closure):
    """Keras 3: each penalty is 1e-5 * sum(|activation|) / batch size."""
    sparsity = 1e-3
    ae = build_autoencoder(filters=SMALL, sparsity=sparsity, closure=closure)
    encoder = ae.get_layer("encoder")
    names = _penalised(closure)
    expected = _hand_penalties(encoder, names, _PROBE_INPUT, sparsity)
    assert min(expected) > 0
    ae(_PROBE_INPUT, training=False)
    assert len(ae.losses) == 4
    np.testing.assert_allclose(_layer_penalties(encoder, names), expected, rtol=1e-5)
    np.testing.assert_allclose(sorted(float(v) for v in ae.losses), sorted(expected), rtol=1e-5)
    classifier = build_classifier(encoder, 3, dense_units=4)
    classifier(_PROBE_INPUT, training=False)
    assert len(classifier.losses) == 4
    np.testing.assert_allclose(_layer_penalties(encoder, names), expected, rtol=1e-5)


def test_sparsity_penalty_is_divided_by_the_batch_size():
    encoder = build_encoder(filters=SMALL)
    one = _PROBE_INPUT[:1]
    encoder(one, training=False)
    single = [float(v) for v in encoder.losses]
    encoder(np.repeat(one, 4, axis=0), training=False)
    assert len(encoder.losses) == 4
    np.testing.assert_allclose([float(v) for v in encoder.losses], single, rtol=1e-5)


def test_default_sparsity_and_no_penalty_at_zero():
    encoder = build_encoder(filters=SMALL)
    for layer in [encoder.get_layer(name) for name in _penalised("code6")]:
        assert isinstance(layer.activity_regularizer, keras.regularizers.L1)
        assert float(layer.activity_regularizer.l1) == pytest.approx(1e-5)
    assert encoder.get_layer("enc1_relu").activity_regularizer is None
    silent = build_encoder(filters=SMALL, sparsity=0.0)
    silent(_PROBE_INPUT, training=False)
    assert silent.losses == []


def test_fit_adds_the_sparsity_penalties_to_the_loss():
    ae = build_autoencoder(filters=SMALL, sparsity=1.0)
    ae.compile(optimizer="adam", loss="mse")
    x = _PROBE_INPUT[:4]
    reported = ae.evaluate(x, x, batch_size=4, verbose=0)
    mse = float(np.mean((np.asarray(ae(x, training=False)) - x) ** 2))
    penalties = sum(float(v) for v in ae.losses)
    assert penalties > mse
    assert reported == pytest.approx(mse + penalties, rel=1e-4)


@pytest.fixture
def mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_penalties_stay_finite_under_mixed_precision(mixed_precision, tmp_path):
    """The L1 sums exceed float16's 65504 here; the penalised layers compute in float32."""
    keras.utils.set_random_seed(0)
    ae = build_autoencoder()
    x = _images(32, seed=5, scale=4.0)
    out = ae(x, training=False)
    assert out.dtype == "float32"
    enc = ae.get_layer("encoder")
    assert enc.get_layer("enc1_conv").compute_dtype == "float16"
    names = _penalised("code6")
    expected = _hand_penalties(enc, names, x, 1e-5)
    assert max(expected) / 1e-5 * len(x) > 2 * float(np.finfo(np.float16).max)
    ae(x, training=False)
    values = _layer_penalties(enc, names)
    assert all(np.isfinite(values))
    np.testing.assert_allclose(values, expected, rtol=1e-4)
    classifier = build_classifier(enc, 7)
    assert classifier(x).dtype == "float32"
    loaded = run_model_contract(ae, x[:4], tmp_path, (4, 48, 48, 1)).loaded.get_layer("encoder")
    assert loaded.get_layer("enc1_conv").compute_dtype == "float16"
    assert {loaded.get_layer(name).compute_dtype for name in names} == {"float32"}


@pytest.mark.parametrize("closure", CLOSURES)
def test_keras_round_trip_without_custom_objects(tmp_path, closure):
    ae = build_autoencoder(filters=SMALL, closure=closure)
    classifier = build_classifier(ae.get_layer("encoder"), 4, dense_units=8)
    x = _images(3, seed=7)
    ae2 = run_model_contract(ae, x, tmp_path, (3, 48, 48, 1), rtol=0, atol=0).loaded
    classifier2 = run_model_contract(classifier, x, tmp_path, (3, 4), rtol=0, atol=0).loaded
    assert classifier2.get_layer(LAST_CONV_LAYER).filters == SMALL[-1]
    classifier2(x)
    assert len(classifier2.losses) == 4
    rebuilt = build_classifier(ae2.get_layer("encoder"), 4, dense_units=8)
    assert rebuilt.get_layer("enc1_conv") is ae2.get_layer("encoder").get_layer("enc1_conv")


def test_classifier_shares_the_encoder_weights():
    ae = build_autoencoder(filters=SMALL)
    encoder = ae.get_layer("encoder")
    classifier = build_classifier(encoder, 3, dense_units=8)
    ids = {id(v) for v in classifier.weights}
    assert all(id(v) in ids for v in encoder.weights)
    x = _images(2, seed=9)
    before = np.asarray(classifier(x))
    kernel, bias = encoder.get_layer("enc4_conv").get_weights()
    encoder.get_layer("enc4_conv").set_weights([kernel * 0.0, bias + 1.0])
    after = np.asarray(classifier(x))
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, after[:1].repeat(2, axis=0), rtol=1e-5)

    classifier.compile(optimizer=keras.optimizers.SGD(0.1), loss="categorical_crossentropy")
    start = encoder.get_layer("enc1_conv").get_weights()[0].copy()
    classifier.fit(x, np.eye(3)[[0, 2]], epochs=1, verbose=0)
    assert not np.allclose(ae.get_layer("encoder").get_layer("enc1_conv").get_weights()[0], start)


@pytest.mark.parametrize("kwargs, message", [
    ({"closure": "pool5"}, "closure"),
    ({"filters": (32, 64, 128)}, r"\(one per encoder block\)\. Received: filters=\(32, 64, 128\)$"),
    ({"filters": (32, 64, 0, 8)}, r"Received: filters=\(32, 64, 0, 8\)$"),
    ({"input_shape": (50, 50, 1)}, r"multiples of 8 .*\. Received: input_shape=\(50, 50, 1\)$"),
    ({"input_shape": (40, 40, 1), "closure": "pool4"}, r"multiples of 16 .*\. Received: input_shape=\(40, 40, 1\)$"),
    ({"input_shape": (48, 48)}, r"\(height, width, channels\)\. Received: input_shape=\(48, 48\)$"),
    ({"sparsity": -1e-5}, r"sparsity must be >= 0\. Received: sparsity=-1e-05$"),
])
def test_bad_arguments_give_one_line_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_autoencoder(**kwargs)


def test_other_sizes_and_builder_errors(tmp_path):
    ae = build_autoencoder((40, 40, 1), SMALL, closure="code6")
    x = np.random.default_rng(11).random((2, 40, 40, 1)).astype("float32")
    run_model_contract(ae, x, tmp_path, (2, 40, 40, 1), rtol=0, atol=0)
    assert tuple(ae.get_layer("encoder").output.shape) == (None, 5, 5, SMALL[-1])
    encoder = build_encoder(filters=SMALL)
    with pytest.raises(ValueError, match="num_classes"):
        build_classifier(encoder, 1)
    with pytest.raises(ValueError, match="encoder"):
        build_classifier("encoder", 3)
    with pytest.raises(ValueError, match="out_channels"):
        build_decoder((6, 6, 8), SMALL, out_channels=0)


def test_batch_normalisation_uses_the_pytorch_reference_settings():
    ae = build_autoencoder(filters=SMALL)
    bns = [layer for model in (ae.get_layer("encoder"), ae.get_layer("decoder"))
           for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(bns) == 7
    assert {(bn.momentum, bn.epsilon) for bn in bns} == {(0.9, 1e-5)}
