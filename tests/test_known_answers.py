"""Study code checked against answers known in advance.

The faithfulness metrics run on a hand-built classifier whose evidence is known: it reads
only the mean brightness of the top-left 8x8 patch. A map that marks that patch is the
right answer; its deletion and insertion curves and its Average Drop can be written down
before anything runs. The bootstrap interval is checked against the analytic one.
"""

from __future__ import annotations

import numpy as np
import pytest

from cifarkit.evaluation.stats import bootstrap_mean_ci
from cifarkit.interpret.faithfulness import average_drop_increase, deletion_insertion, random_maps

PATCH = 8
STEPS = 16  # 1024 pixels in 16 steps: 64 per step, exactly the patch's size


def patch_mean(images: np.ndarray) -> np.ndarray:
    return images[:, :PATCH, :PATCH, :].mean(axis=(1, 2, 3))


def predict(images: np.ndarray) -> np.ndarray:
    """P(class 0) rises with the patch's brightness; nothing else in the image matters."""
    p = 1.0 / (1.0 + np.exp(-(patch_mean(np.asarray(images, np.float64)) - 200.0) / 8.0))
    return np.stack([p, 1.0 - p], axis=1)


@pytest.fixture
def world():
    rng = np.random.default_rng(0)
    images = rng.integers(90, 110, (6, 32, 32, 3)).astype(np.float32)
    images[:, :PATCH, :PATCH, :] = 250.0  # the evidence: a bright patch, class 0 is likely
    right = np.zeros((6, 32, 32), np.float32)
    right[:, :PATCH, :PATCH] = 1.0
    # The wrong map ranks the patch last: a smooth ramp away from it, lowest on the patch.
    yy, xx = np.mgrid[0:32, 0:32]
    wrong = np.broadcast_to((yy + xx) / 62.0, (6, 32, 32)).astype(np.float32).copy()
    wrong[:, :PATCH, :PATCH] = -1.0
    return images, right, wrong, np.zeros(6, np.int64)


def test_deletion_and_insertion_curves_are_the_ones_written_down(world):
    from cifarkit.interpret.faithfulness import blurred

    images, right, wrong, targets = world
    p_image = predict(images)[:, 0]
    mixed = images.copy()
    mixed[:, :PATCH, :PATCH] = blurred(images)[:, :PATCH, :PATCH]  # the patch replaced by its blur
    p_blurred_patch = predict(mixed)[:, 0]
    p_all_blurred = predict(blurred(images))[:, 0]
    assert np.all(p_image > 0.99) and np.all(p_blurred_patch < p_image - 0.1)

    good = deletion_insertion(predict, images, right, targets, steps=STEPS)
    bad = deletion_insertion(predict, images, wrong, targets, steps=STEPS)
    # Deleting the right map's first 64 pixels removes the whole patch at step 1, and the
    # model never looks anywhere else; the wrong map deletes the patch only at the last step.
    np.testing.assert_allclose(good.deletion[:, 0], p_image)
    np.testing.assert_allclose(good.deletion[:, 1:], np.repeat(p_blurred_patch[:, None], STEPS, 1))
    np.testing.assert_allclose(bad.deletion[:, :-1], np.repeat(p_image[:, None], STEPS, 1))
    np.testing.assert_allclose(bad.deletion[:, -1], p_blurred_patch)
    # Insertion mirrors it: the right map reveals the patch at step 1.
    np.testing.assert_allclose(good.insertion[:, 0], p_all_blurred)
    np.testing.assert_allclose(
        good.insertion[:, 1:], np.repeat(p_image[:, None], STEPS, 1), rtol=1e-9
    )
    # The areas follow from the trapezoid rule on those curves (1/16 per step).
    h = 1.0 / STEPS
    np.testing.assert_allclose(
        good.deletion_auc, h * (p_image + p_blurred_patch) / 2 + (1 - h) * p_blurred_patch
    )
    np.testing.assert_allclose(
        bad.deletion_auc, (1 - h) * p_image + h * (p_image + p_blurred_patch) / 2
    )
    assert np.all(good.deletion_auc < bad.deletion_auc) and np.all(
        good.insertion_auc > bad.insertion_auc
    )
    noise = deletion_insertion(predict, images, random_maps(6, seed=3), targets, steps=STEPS)
    assert np.all(good.deletion_auc < noise.deletion_auc)


def test_average_drop_is_zero_for_the_right_map_and_known_for_the_wrong_one(world):
    images, right, _, targets = world
    good = average_drop_increase(predict, images, right, targets)
    np.testing.assert_allclose(good.drop, 0.0, atol=1e-9)  # the patch is kept exactly
    assert not good.increase.any()
    inverse = 1.0 - right  # keeps everything but the evidence (black fill there)
    bad = average_drop_increase(predict, images, inverse, targets)
    p_image = predict(images)[:, 0]
    p_black = predict(np.zeros_like(images))[:, 0]
    np.testing.assert_allclose(bad.drop, 100.0 * (p_image - p_black) / p_image)


def test_bootstrap_interval_matches_the_analytic_one_for_a_large_normal_sample():
    x = np.random.default_rng(1).normal(5.0, 2.0, 2_000)
    low, high = bootstrap_mean_ci(x, n_boot=20_000)
    half = 1.959964 * x.std(ddof=1) / np.sqrt(len(x))
    assert low == pytest.approx(x.mean() - half, abs=0.05 * half)
    assert high == pytest.approx(x.mean() + half, abs=0.05 * half)
