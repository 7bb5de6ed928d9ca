"""Per-run evaluation: metrics against scikit-learn and by hand, calibration, TTA, failures, figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import softmax as sp_softmax
from sklearn.metrics import (
    confusion_matrix,
    f1_score,
    log_loss,
    precision_recall_fscore_support,
    top_k_accuracy_score,
)

from cifarkit import plots
from cifarkit.evaluation import metrics as ev

NAMES = ("a", "b", "c")
# Four examples, three classes; predictions a, b, b, c against labels a, b, c, a.
LOGITS = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 2.0, 0.5], [0.2, 0.1, 0.9]])
LABELS = np.array([0, 1, 2, 0])


def _random_fixture(n=600, k=10, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), labels] += rng.uniform(0, 3, n)
    return logits, labels


# --------------------------------------------------------------------------- metrics


def test_metrics_by_hand():
    probs = ev.softmax(LOGITS)
    assert ev.accuracy(probs, LABELS) == pytest.approx(0.5)
    # top-2: row 3's label (score 0.5) is only third; row 4's label (0.2 > 0.1) is second.
    assert ev.top_k_accuracy(probs, LABELS, 2) == pytest.approx(0.75)
    hand_nll = -np.mean(
        [np.log(np.exp(r[y]) / np.exp(r).sum()) for r, y in zip(LOGITS, LABELS, strict=True)]
    )
    assert ev.nll(probs, LABELS) == pytest.approx(hand_nll, rel=1e-9)
    table = ev.per_class_table(probs, LABELS, NAMES)
    # class a: predicted once (right), 2 true -> P 1, R 1/2; class b: predicted twice, 1 right -> P 1/2, R 1;
    # class c: predicted once (wrong), 1 true -> P 0, R 0.
    assert table["precision"].tolist() == pytest.approx([1.0, 0.5, 0.0])
    assert table["recall"].tolist() == pytest.approx([0.5, 1.0, 0.0])
    assert table["f1"].tolist() == pytest.approx([2 / 3, 2 / 3, 0.0])
    assert table["support"].tolist() == [2, 1, 1]
    assert ev.macro_f1(probs, LABELS) == pytest.approx(4 / 9)
    counts = ev.confusion(probs, LABELS)
    assert counts.tolist() == [[1, 0, 1], [0, 1, 0], [0, 1, 0]]
    np.testing.assert_allclose(
        ev.confusion(probs, LABELS, normalise=True), [[0.5, 0, 0.5], [0, 1, 0], [0, 1, 0]]
    )


def test_metrics_match_scikit_learn():
    logits, labels = _random_fixture()
    probs = ev.softmax(logits)
    pred = probs.argmax(1)
    assert ev.accuracy(probs, labels) == pytest.approx(np.mean(pred == labels))
    assert ev.top_k_accuracy(probs, labels, 5) == pytest.approx(
        top_k_accuracy_score(labels, probs, k=5)
    )
    assert ev.nll(probs, labels) == pytest.approx(log_loss(labels, sp_softmax(logits, axis=1)))
    p, r, f, s = precision_recall_fscore_support(labels, pred, zero_division=0)
    table = ev.per_class_table(probs, labels, [str(i) for i in range(10)])
    np.testing.assert_allclose(table[["precision", "recall", "f1"]].to_numpy().T, [p, r, f])
    assert ev.macro_f1(probs, labels) == pytest.approx(f1_score(labels, pred, average="macro"))
    np.testing.assert_array_equal(ev.confusion(probs, labels), confusion_matrix(labels, pred))
    # Works on raw logits too: the ranking is the same.
    assert ev.accuracy(logits, labels) == ev.accuracy(probs, labels)


def test_row_normalising_keeps_empty_rows_zero():
    counts = np.array([[3, 1], [0, 0]])
    assert ev.normalise_rows(counts).tolist() == [[0.75, 0.25], [0.0, 0.0]]


def test_top_confusions_and_pairs():
    counts = np.array([[50, 2, 7], [9, 40, 1], [3, 6, 30]])
    top = ev.top_confusions(counts, NAMES, n=3)
    assert list(zip(top["true"], top["predicted"], top["count"], strict=True)) == [
        ("b", "a", 9),
        ("a", "c", 7),
        ("c", "b", 6),
    ]
    assert top["rate"].iloc[0] == pytest.approx(9 / 50)
    pairs = ev.confusion_pairs(counts, NAMES)
    assert list(zip(pairs["a"], pairs["b"], pairs["count"], strict=True)) == [
        ("a", "b", 11),
        ("a", "c", 10),
        ("b", "c", 7),
    ]
    assert (pairs["a_as_b"].iloc[0], pairs["b_as_a"].iloc[0]) == (2, 9)


# --------------------------------------------------------------------------- calibration


def _calibrated_probs(n, rng, k=10, low=0.1, high=1.0):
    """Top probability c ~ U(low, high), and the top class is right with probability c."""
    conf = rng.uniform(low, high, n)
    top = rng.integers(0, k, n)
    probs = np.repeat(((1 - conf) / (k - 1))[:, None], k, axis=1)
    probs[np.arange(n), top] = conf
    right = rng.random(n) < conf
    other = (top + rng.integers(1, k, n)) % k
    return probs, np.where(right, top, other)


def test_ece_is_near_zero_when_calibrated_and_large_when_overconfident():
    rng = np.random.default_rng(0)
    probs, labels = _calibrated_probs(200_000, rng)
    assert ev.expected_calibration_error(probs, labels) < 0.01
    # Over-confident: always 99% sure, right half the time.
    probs, _ = _calibrated_probs(10_000, rng, low=0.99, high=0.99)
    labels = np.where(rng.random(10_000) < 0.5, probs.argmax(1), (probs.argmax(1) + 1) % 10)
    assert ev.expected_calibration_error(probs, labels) == pytest.approx(0.49, abs=0.02)


def test_ece_by_hand_with_15_bins():
    # confidences 0.95 (right), 0.95 (wrong), 0.5 (right): bins (14/15, 1] and (7/15, 8/15].
    probs = np.array([[0.95, 0.05], [0.95, 0.05], [0.5, 0.5]])
    labels = np.array([0, 1, 0])
    table = ev.reliability_table(probs, labels)
    assert len(table) == 15 and table["count"].sum() == 3
    assert table.loc[14, "count"] == 2 and table.loc[7, "count"] == 1
    expected = 2 / 3 * abs(0.95 - 0.5) + 1 / 3 * abs(0.5 - 1.0)
    assert ev.expected_calibration_error(probs, labels) == pytest.approx(expected)


def _overconfident(n, rng, sharpen=4.0, k=10):
    """Logits z whose softmax is the true class distribution, returned as sharpen * z."""
    z = rng.normal(0, 1.5, (n, k))
    p = sp_softmax(z, axis=1)
    labels = np.array([rng.choice(k, p=row) for row in p])
    return sharpen * z, labels


def test_temperature_scaling_lowers_nll_on_overconfident_logits():
    rng = np.random.default_rng(1)
    val_logits, val_labels = _overconfident(3000, rng)
    test_logits, test_labels = _overconfident(3000, rng)
    t = ev.fit_temperature(val_logits, val_labels)
    assert t == pytest.approx(4.0, rel=0.15)
    cal = ev.calibrate(val_logits, val_labels, test_logits, test_labels)
    assert cal.temperature == t
    assert cal.nll_after < cal.nll_before - 0.2
    assert cal.ece_after < cal.ece_before / 2
    assert cal.val_nll_after <= cal.val_nll_before
    # Fitted on validation only: the test set does not move the temperature.
    other = ev.calibrate(val_logits, val_labels, test_logits[::-1], test_labels[::-1])
    assert other.temperature == t
    assert not cal.at_bound and cal.note == "" and cal.as_dict()["at_bound"] is False


def test_a_temperature_on_its_search_bound_says_so(caplog):
    # Logits that are right on every validation image: the NLL keeps falling as T -> 0.
    labels = np.arange(200) % 10
    logits = np.eye(10)[labels] * 3.0
    with caplog.at_level("WARNING", logger="cifarkit.evaluation.metrics"):
        cal = ev.calibrate(logits, labels, logits, labels)
    assert cal.at_bound and ev.temperature_at_bound(cal.temperature)
    assert cal.temperature == pytest.approx(ev.TEMPERATURE_BOUNDS[0], rel=1e-3)
    assert (
        "at the end of its search range [0.05, 20]" in cal.note
        and cal.as_dict()["note"] == cal.note
    )
    assert "search bound" in caplog.text
    with pytest.raises(ValueError, match="bounds="):
        ev.fit_temperature(logits, labels, bounds=(2.0, 1.0))


# --------------------------------------------------------------------------- TTA


def test_shift_and_views():
    images = np.arange(2 * 4 * 4 * 1).reshape(2, 4, 4, 1)
    shifted = ev.shift_images(images, 0, 1)
    np.testing.assert_array_equal(shifted[:, :, :3], images[:, :, 1:])  # content moves left
    assert ev.shift_images(images, 0, 0) is images
    assert list(ev.tta_views(images)) == ["identity", "flip"]
    views = ev.tta_views(images, shift=2)
    assert len(views) == 10 and views["flip"]().tolist() == images[:, :, ::-1].tolist()
    assert views["identity+2,+0"]().shape == images.shape


def test_tta_averages_views_and_reports_plain_separately():
    # A "model" that is right only when the left half is brighter than the right half:
    # flipping helps exactly the images whose bright half is on the right.
    images = np.zeros((4, 8, 8, 3), np.uint8)
    images[:2, :, :4] = 200  # bright left
    images[2:, :, 4:] = 100  # dimmer right
    labels = np.array([1, 1, 1, 1])

    def predict(x):
        left = x[:, :, :4].mean(axis=(1, 2, 3))
        right = x[:, :, 4:].mean(axis=(1, 2, 3))
        return np.stack([right - left, left - right], axis=1) / 10

    result = ev.tta_evaluate(predict, images, labels)
    assert result.views == ("identity", "flip")
    assert result.plain_accuracy == 0.5
    assert result.probs.shape == (4, 2)
    np.testing.assert_allclose(result.probs.sum(1), 1)
    # Averaging the view softmaxes is symmetric here: a tie, broken toward class 0.
    assert result.accuracy == pytest.approx(np.mean(result.probs.argmax(1) == labels))
    # Probabilities are averaged, not logits, and the prose says how many views.
    views = ev.tta_views(images)
    expected = np.mean([ev.softmax(predict(make())) for make in views.values()], axis=0)
    np.testing.assert_allclose(result.probs, expected)
    assert (
        ev.tta_views_text(result.views)
        == "2 views (identity, flip), their softmax probabilities averaged"
    )


# --------------------------------------------------------------------------- failures


def test_confident_mistakes_order_and_filters():
    probs = np.array(
        [
            [0.1, 0.9, 0.0],  # 0: true 0 -> 1, 0.9
            [0.8, 0.2, 0.0],  # 1: right
            [0.05, 0.15, 0.8],  # 2: true 1 -> 2, 0.8
            [0.0, 0.9, 0.1],  # 3: true 2 -> 1, 0.9 (tie with 0: lower index first)
            [0.6, 0.4, 0.0],
        ]
    )  # 4: true 1 -> 0, 0.6
    labels = np.array([0, 0, 1, 2, 1])
    top = ev.confident_mistakes(probs, labels)
    assert top.index.tolist() == [0, 3, 2, 4]
    assert top["confidence"].tolist() == pytest.approx([0.9, 0.9, 0.8, 0.6])
    assert top.loc[2, "p_true"] == pytest.approx(0.15)
    assert ev.confident_mistakes(probs, labels, 2).index.tolist() == [0, 3]
    assert ev.confident_mistakes(probs, labels, true_class=1).index.tolist() == [2, 4]
    by_class = ev.mistakes_by_class(probs, labels, 1)
    assert {k: v.index.tolist() for k, v in by_class.items()} == {0: [0], 1: [2], 2: [3]}
    assert ev.pair_mistakes(probs, labels, 0, 1).index.tolist() == [0, 4]
    assert ev.pair_mistakes(probs, labels, 0, 2).empty


def test_evaluate_logits_collects_everything():
    logits, labels = _random_fixture()
    val_logits, val_labels = _random_fixture(seed=1)
    result = ev.evaluate_logits(
        logits, labels, [str(i) for i in range(10)], val=(val_logits, val_labels)
    )
    scalars = result.scalars()
    assert set(scalars) == {
        "accuracy",
        "macro_f1",
        "nll",
        "ece",
        "top5_accuracy",
        "temperature",
        "nll_ts",
        "ece_ts",
    }
    assert scalars["accuracy"] == pytest.approx(np.mean(logits.argmax(1) == labels))
    assert result.correct.mean() == pytest.approx(scalars["accuracy"])
    assert result.confusion.sum() == len(labels)
    assert result.as_dict()["calibration"]["temperature"] == scalars["temperature"]


# --------------------------------------------------------------------------- figures


def _png(fig):
    data = plots.to_png_bytes(fig, dpi=50)
    assert data[:4] == b"\x89PNG"
    return data


def test_evaluation_figures_render_deterministically():
    logits, labels = _random_fixture(n=200)
    names = [f"class{i}" for i in range(10)]
    probs = ev.softmax(logits)
    table = ev.reliability_table(probs, labels)
    make = [
        lambda: plots.reliability_diagram(
            {"before": table, "after": table}, {"before": 0.1, "after": 0.02}
        ),
        lambda: plots.confusion_matrix_figure(
            ev.confusion(probs, labels, normalise=True), names, ev.confusion(probs, labels)
        ),
    ]
    per_seed = pd.DataFrame(np.random.default_rng(0).uniform(0.3, 0.9, (3, 10)), columns=names)
    from cifarkit.evaluation.stats import curve_summary, per_class_summary

    make.append(lambda: plots.per_class_accuracy_bars(per_class_summary(per_seed), per_seed))
    histories = [
        [
            {
                "epoch": e,
                "loss": 2 / e + s * 0.1,
                "accuracy": 0.2 * e,
                "val_loss": 2.2 / e,
                "val_accuracy": 0.18 * e + s * 0.01,
                **{f"val_acc_{c}": 0.1 * e for c in names},
            }
            for e in (1, 2, 3)
        ]
        for s in range(3)
    ]
    curves = {
        c: curve_summary(histories, c) for c in ("loss", "accuracy", "val_loss", "val_accuracy")
    }
    make.append(lambda: plots.seed_curves(curves))
    make.append(
        lambda: plots.per_class_seed_curves(
            {c: curve_summary(histories, f"val_acc_{c}") for c in names}
        )
    )
    # Below five seeds the figure draws each seed and no band, and says so in its title.
    fig = plots.seed_curves(curves, title="t")
    assert "no band: a t band needs at least 5 seeds" in fig._suptitle.get_text()
    assert len(fig.axes[0].lines) == 2 * (3 + 1)  # train and validation: 3 seeds + the mean each
    five = [[{"epoch": e, "loss": 1 / e + s * 0.01} for e in (1, 2)] for s in range(5)]
    assert (
        "Student-t band"
        in plots.seed_curves({"loss": curve_summary(five, "loss")})._suptitle.get_text()
    )
    # An interval that passes 100% is drawn whole: the axis extends beyond 1.
    wide = per_class_summary(pd.DataFrame({"a": [0.95, 0.99, 0.90], "b": [0.5, 0.6, 0.4]}))
    top = plots.per_class_accuracy_bars(wide).axes[0].get_ylim()[1]
    assert wide.loc["a", "high"] > 1 and top > wide.loc["a", "high"]
    images = np.random.default_rng(0).integers(0, 255, (200, 32, 32, 3), dtype=np.uint8)
    worst = ev.confident_mistakes(probs, labels, 10)
    by_class = ev.mistakes_by_class(probs, labels, 3)
    make.append(
        lambda: plots.mistake_gallery({"": (images[worst.index], worst)}, names, max_cols=4)
    )
    make.append(
        lambda: plots.mistake_gallery(
            {names[k]: (images[m.index], m) for k, m in by_class.items()}, names
        )
    )
    for i, factory in enumerate(make):
        first = _png(factory())
        if i % 2 == 0:  # same input, same bytes (checked on every other figure to stay fast)
            assert _png(factory()) == first
