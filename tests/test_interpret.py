"""cifarkit.interpret: map shapes/ranges/determinism, Grad-CAM = CAM at the last GAP stage,
faithfulness metrics on a toy model whose evidence is known, the randomisation check,
aggregates, sentences and figures. Tiny models and a handful of images: seconds."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from matplotlib.figure import Figure

from cifarkit.core.errors import CifarkitError
from cifarkit.interpret import aggregate, faithfulness, mistakes
from cifarkit.interpret.cams import METHODS, Explainer, normalise_maps, target_layers
from cifarkit.models.cnn import baseline_cnn
from cifarkit.models.resnet import cifar_resnet
from cifarkit.plots import maps as iplots

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@pytest.fixture(scope="module")
def resnet8():
    keras.utils.set_random_seed(0)
    return cifar_resnet(8)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(1).integers(0, 256, (6, 32, 32, 3)).astype(np.float32)


# --------------------------------------------------------------------------- layers and maps


def test_target_layers_name_each_resolution(resnet8):
    layers = target_layers(resnet8)
    assert layers == {
        "stage1": "stage1_block1_out",
        "stage2": "stage2_block1_out",
        "stage3": "stage3_block1_out",
    }
    assert [resnet8.get_layer(n).output.shape[1] for n in layers.values()] == [32, 16, 8]
    cnn = baseline_cnn()
    assert target_layers(cnn) == {
        "block1": "block1_out",
        "block2": "block2_out",
        "block3": "block3_out",
    }
    flat = keras.Sequential(
        [keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(10)]
    )
    with pytest.raises(CifarkitError, match="neither ResNet stages"):
        target_layers(flat)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_gives_normalised_maps_deterministically(resnet8, images, method):
    explainer = Explainer(resnet8, batch_size=4, scorecam_max_n=4, smooth_samples=3)
    targets = np.arange(len(images)) % 10
    first = explainer.maps(images, targets, method)
    again = explainer.maps(images, targets, method)
    assert first.shape == (len(images), 32, 32) and first.dtype == np.float32
    assert np.isfinite(first).all() and first.min() >= 0 and first.max() <= 1
    peaks = first.reshape(len(images), -1).max(axis=1)
    assert (
        np.isclose(peaks, 1, atol=1e-3) | (peaks == 0)
    ).all()  # normalised, or all zero after the ReLU
    np.testing.assert_array_equal(first, again)


def test_layers_by_label_and_fused(resnet8, images):
    explainer = Explainer(resnet8, batch_size=4)
    maps = {
        label: explainer.maps(images, 3, "gradcam", label)
        for label in ("stage1", "stage2", "stage3", "fused")
    }
    assert all(m.shape == (6, 32, 32) for m in maps.values())
    assert not np.allclose(maps["stage1"], maps["stage3"])
    np.testing.assert_allclose(
        maps["fused"],
        normalise_maps(np.mean([maps[s] for s in ("stage1", "stage2", "stage3")], axis=0)),
        atol=1e-6,
    )
    with pytest.raises(CifarkitError, match="no layer"):
        explainer.maps(images, 3, "gradcam", "stage9")
    with pytest.raises(CifarkitError, match="unknown map method"):
        explainer.maps(images, 3, "cam")
    with pytest.raises(CifarkitError, match="class indices"):
        explainer.maps(images, 10, "gradcam")


def test_gradcam_equals_cam_at_the_last_pooled_stage(resnet8, images):
    """The note in cams.py: with global average pooling, Grad-CAM at the last stage is CAM."""
    from scipy.ndimage import zoom

    target = 4
    layer = target_layers(resnet8)["stage3"]
    activations = keras.Model(resnet8.inputs, resnet8.get_layer(layer).output).predict(
        images, verbose=0
    )
    weights = resnet8.get_layer("logits").kernel.numpy()[:, target]
    cam = np.maximum(activations @ weights, 0)
    expected = normalise_maps(zoom(cam, (1, 4, 4), order=1))
    explainer = Explainer(resnet8)
    np.testing.assert_allclose(
        explainer.maps(images, target, "gradcam", layer), expected, atol=1e-4
    )
    # ... and Grad-CAM++ and LayerCAM both become CAM with the positive class weights only.
    positive = normalise_maps(
        zoom(np.maximum(activations @ np.maximum(weights, 0), 0), (1, 4, 4), order=1)
    )
    np.testing.assert_allclose(
        explainer.maps(images, target, "layercam", layer), positive, atol=1e-4
    )
    np.testing.assert_allclose(
        explainer.maps(images, target, "gradcam++", layer), positive, atol=1e-3
    )


# --------------------------------------------------------------------------- toy model with known evidence


def _evidence_images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Flat grey images with one 8x8 patch of noise at a random place; returns images and true masks."""
    rng = np.random.default_rng(seed)
    images = np.full((n, 32, 32, 3), 128.0, np.float32)
    masks = np.zeros((n, 32, 32), np.float32)
    for i in range(n):
        y, x = rng.integers(2, 22, 2)
        images[i, y : y + 8, x : x + 8] = rng.integers(0, 256, (8, 8, 3))
        masks[i, y : y + 8, x : x + 8] = 1
    return images, masks


def _toy_model(images: np.ndarray) -> keras.Model:
    """Class 1's logit grows with high-frequency energy (a fixed Laplacian, ReLU, mean)."""
    inputs = keras.Input((32, 32, 3))
    lap = np.array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]], np.float32)
    kernel = np.stack([lap, -lap], axis=-1)[:, :, None, :].repeat(3, axis=2) / 3
    conv = keras.layers.Conv2D(2, 3, padding="same", use_bias=False, name="highpass")
    x = keras.layers.ReLU(name="evidence")(conv(inputs))
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    dense = keras.layers.Dense(2, name="logits")
    model = keras.Model(inputs, dense(pooled))
    conv.kernel.assign(kernel)
    energy = keras.Model(inputs, pooled)
    e_full = energy(images).numpy().sum(axis=1).mean()
    e_blur = energy(faithfulness.blurred(images)).numpy().sum(axis=1).mean()
    scale = 8.0 / (e_full - e_blur)
    dense.kernel.assign(np.array([[0, scale], [0, scale]], np.float32))
    dense.bias.assign(np.array([0, -scale * (e_full + e_blur) / 2], np.float32))
    return model


def test_true_map_beats_random_maps_on_toy_model():
    images, masks = _evidence_images(24)
    model = _toy_model(images)
    predict = faithfulness.model_probabilities(model)
    targets = np.ones(len(images), np.int64)
    assert predict(images)[:, 1].mean() > 0.9
    gradcam = Explainer(model, layers={"evidence": "evidence"}).maps(
        images, targets, "gradcam", "evidence"
    )
    candidates = {
        "true": masks,
        "gradcam": gradcam,
        "random": faithfulness.random_maps(len(images), seed=3),
        "blurred random": faithfulness.blurred_random_maps(len(images), seed=3),
    }
    scores = {
        k: faithfulness.score_maps(predict, images, m, targets, k, steps=8)
        for k, m in candidates.items()
    }
    for good in ("true", "gradcam"):
        for bad in ("random", "blurred random"):
            deletion = faithfulness.compare(scores, good, bad, "deletion_auc")
            assert deletion.verdict == "better", (good, bad, deletion)
            assert faithfulness.compare(scores, good, bad, "insertion_auc").verdict == "better"
            sentence = faithfulness.describe_comparison(deletion)
            assert "is lower than" in sentence and "better" in sentence
    same = faithfulness.compare(scores, "random", "random", "deletion_auc")
    assert same.verdict == "indistinguishable"
    assert "not distinguishable" in faithfulness.describe_comparison(same)
    table = faithfulness.summary_table(list(scores.values()))
    assert (
        set(table["metric"]) == set(faithfulness.METRICS) and (table["low"] <= table["mean"]).all()
    )
    assert faithfulness.wide_table(table).shape == (4, 4)


def test_deletion_curve_ends_at_the_blurred_image():
    images, masks = _evidence_images(4)
    model = _toy_model(images)
    predict = faithfulness.model_probabilities(model)
    res = faithfulness.deletion_insertion(predict, images, masks, np.ones(4, np.int64), steps=4)
    np.testing.assert_allclose(res.fractions, [0, 0.25, 0.5, 0.75, 1])
    blurred = predict(faithfulness.blurred(images))[:, 1]
    np.testing.assert_allclose(res.deletion[:, -1], blurred, atol=1e-5)
    np.testing.assert_allclose(res.insertion[:, 0], blurred, atol=1e-5)
    np.testing.assert_allclose(res.deletion[:, 0], predict(images)[:, 1], atol=1e-5)
    assert ((res.deletion_auc >= 0) & (res.deletion_auc <= 1)).all()


def test_average_drop_and_increase():
    probs = {"orig": np.array([[0.2, 0.8], [0.6, 0.4]])}

    def predict(x):
        return probs["orig"] if x.mean() > 0 else np.array([[0.6, 0.4], [0.5, 0.5]])

    images = np.ones((2, 4, 4, 3), np.float32)
    result = faithfulness.average_drop_increase(
        predict, images, np.zeros((2, 4, 4)), np.array([1, 1])
    )
    np.testing.assert_allclose(result.drop, [50.0, 0.0])
    np.testing.assert_allclose(result.increase, [0.0, 100.0])
    with pytest.raises(CifarkitError, match="fill"):
        faithfulness.average_drop_increase(
            predict, images, np.zeros((2, 4, 4)), np.array([1, 1]), fill="grey"
        )
    with pytest.raises(CifarkitError, match="need images"):
        faithfulness.average_drop_increase(predict, images, np.zeros((2, 3, 4)), np.array([1, 1]))


# --------------------------------------------------------------------------- randomisation check


def test_spearman_rows():
    a = np.arange(16, dtype=float).reshape(1, 4, 4)
    np.testing.assert_allclose(faithfulness.spearman_rows(a, a), [1.0])
    np.testing.assert_allclose(faithfulness.spearman_rows(a, -a), [-1.0])
    np.testing.assert_allclose(faithfulness.spearman_rows(a, np.zeros_like(a)), [0.0])
    np.testing.assert_allclose(faithfulness.spearman_rows(a * 0, np.zeros_like(a)), [1.0])


def test_randomisation_drops_correlation_and_leaves_model_alone(resnet8, images):
    before = [w.copy() for w in resnet8.get_weights()]
    explainer_maps = lambda model, x, t: Explainer(model).maps(x, t, "gradcam", "stage3_block1_out")  # noqa: E731
    predicted = resnet8.predict(images, verbose=0).argmax(axis=1)
    table = faithfulness.randomisation_check(resnet8, images, predicted, explainer_maps, seed=0)
    assert list(table["randomised"]) == [
        "none",
        "logits",
        "stage3_block1",
        "stage2_block1",
        "stage1_block1",
        "stem",
    ]
    assert table["spearman"].iloc[0] == pytest.approx(1.0)
    assert table["spearman"].iloc[-1] < 0.5
    for old, new in zip(before, resnet8.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)


# --------------------------------------------------------------------------- aggregates


def test_attention_statistics_of_known_maps():
    uniform = np.ones((1, 32, 32))
    spot = np.zeros((1, 32, 32))
    spot[0, 16, 17] = 1
    corner = np.zeros((1, 32, 32))
    corner[0, 0, 0] = 1
    stats = aggregate.attention_statistics(
        np.concatenate([uniform, spot, corner, np.zeros((1, 32, 32))])
    )
    np.testing.assert_allclose(stats["entropy"], [1, 0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(stats["centre_share"], [0.25, 1, 0, 0.25])
    assert (stats.loc[1, "peak_y"], stats.loc[1, "peak_x"]) == (16, 17)
    assert aggregate.peak_spread(np.array([0, 0]), np.array([0, 4])) == pytest.approx(2.0)


def test_class_means_and_group_comparison():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 20)
    maps = rng.random((200, 8, 8))
    vehicles = np.isin(labels, [0, 1, 8, 9])
    maps[vehicles] = 0
    maps[vehicles, 3:5, 3:5] = 1  # vehicles: concentrated central maps
    predicted = labels.copy()
    predicted[::4] = (labels[::4] + 1) % 10
    means = aggregate.class_mean_maps(maps, labels, predicted, CLASSES)
    assert means.means.shape == (10, 2, 8, 8)
    assert means.counts.sum() == 200 and (means.counts[:, 1] == 5).all()
    table = aggregate.class_attention_table(maps, labels, CLASSES)
    assert table.loc["ship", "group"] == "vehicle" and table.loc["cat", "group"] == "animal"
    g = aggregate.group_comparison(maps, labels, CLASSES, "entropy")
    assert g.distinguishable and g.diff < 0
    assert "more concentrated" in aggregate.describe_group_comparison(g)
    same = aggregate.group_comparison(rng.random((200, 8, 8)), labels, CLASSES, "centre_share")
    assert "not distinguishable" in aggregate.describe_group_comparison(same)


def test_pair_maps_pick_the_worst_pairs(resnet8, images):
    labels = np.array([3, 5, 3, 5, 0, 1])
    probs = np.full((6, 10), 0.01)
    probs[[0, 1, 2, 3, 4, 5], [5, 3, 5, 3, 0, 1]] = 0.91  # cat<->dog confused four times
    pairs = mistakes.pair_maps(
        Explainer(resnet8), images, probs, labels, CLASSES, n_pairs=2, per_pair=3
    )
    assert len(pairs) == 1 and pairs[0].pair == ("cat", "dog")
    assert pairs[0].map_true.shape == (3, 32, 32) and not np.array_equal(
        pairs[0].map_true, pairs[0].map_predicted
    )


# --------------------------------------------------------------------------- figures


def test_figures_draw(resnet8, images):
    maps = Explainer(resnet8).maps(images, 1, "gradcam")
    figs = [
        iplots.map_grid(
            images, {"Grad-CAM": maps, "random": faithfulness.random_maps(6)}, titles=list("abcdef")
        )
    ]
    labels = np.arange(6)
    means = aggregate.class_mean_maps(maps, labels, labels[::-1], CLASSES)
    figs.append(iplots.class_mean_figure(means))
    figs.append(
        iplots.attention_stats_figure(
            aggregate.class_attention_table(np.tile(maps, (4, 1, 1)), np.tile(labels, 4), CLASSES)
        )
    )
    predict = faithfulness.model_probabilities(resnet8)
    scores = [
        faithfulness.score_maps(predict, images, m, labels, k, steps=4)
        for k, m in {"Grad-CAM": maps, "random": faithfulness.random_maps(6)}.items()
    ]
    figs.append(iplots.curves_figure({s.method: s.curves for s in scores}))
    summary = faithfulness.summary_table(scores)
    figs.append(iplots.faithfulness_figure(summary))
    rand = faithfulness.randomisation_check(
        resnet8, images, labels, lambda m, x, t: Explainer(m).maps(x, t), max_groups=2
    )
    figs.append(iplots.randomisation_figure({"Grad-CAM": rand}))
    figs.append(
        iplots.training_faithfulness_figure(
            __import__("pandas").concat([summary.assign(epoch=1), summary.assign(epoch=2)]),
            "Grad-CAM",
        )
    )
    for fig in figs:
        assert isinstance(fig, Figure)
        fig.canvas.draw()


# --------------------------------------------------------------------------- benchmark command


def test_bench_gradcam_prints_seconds_last(capsys):
    import json
    import os
    from pathlib import Path

    from cifarkit.cli import main

    assert main(["bench", "gradcam", "--n", "12", "--batch-size", "8"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    seconds = float(lines[-1])
    assert seconds > 0
    written = list((Path(os.environ["CIFARKIT_ARTIFACTS"]) / "bench").glob("gradcam-*.json"))
    assert len(written) == 1 and json.loads(written[0].read_text())["images"] == 12
    assert main(["bench", "gradcam", "--n", "0"]) == 2
    assert "time at least one image" in capsys.readouterr().err


def test_guided_backprop_follows_weight_changes(resnet8, images):
    import keras as k

    clone = k.models.clone_model(resnet8)
    clone.set_weights(resnet8.get_weights())
    explainer = Explainer(clone)
    before = explainer.maps(images, 1, "guided_backprop")
    faithfulness._reinitialise(clone.get_layer("stem_conv"), seed=5)
    after = explainer.maps(images, 1, "guided_backprop")
    assert not np.allclose(before, after)
    np.testing.assert_array_equal(after, Explainer(clone).maps(images, 1, "guided_backprop"))
