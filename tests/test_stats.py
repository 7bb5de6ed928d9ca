"""Across-seed statistics: t intervals against scipy, paired tests, McNemar, sentences."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from cifarkit.evaluation import stats, verdicts


def test_summary_matches_scipy_t_interval():
    values = [0.912, 0.905, 0.921, 0.899, 0.915]
    s = stats.summarise(values)
    low, high = sps.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=sps.sem(values))
    assert (s.low, s.high) == pytest.approx((low, high), rel=1e-12)
    assert s.mean == pytest.approx(np.mean(values))
    assert s.std == pytest.approx(np.std(values, ddof=1))
    assert s.n == 5 and s.has_ci
    # Known by hand: [1, 2, 3] -> mean 2, sd 1, t(0.975, 2) = 4.302653 -> half-width 2.484138.
    s = stats.summarise([1.0, 2.0, 3.0])
    assert s.half_width == pytest.approx(4.302652729749464 / math.sqrt(3), rel=1e-9)
    assert s.format() == "2.00 ± 2.48"


def test_one_seed_gives_no_interval_and_says_so():
    s = stats.summarise([0.7])
    assert s.n == 1 and s.low is None and s.high is None and not s.has_ci
    assert math.isnan(s.std)
    assert "no confidence interval" in s.note
    assert s.format(100, 1) == "70.0 (n=1, no CI)"
    assert stats.summarise([np.nan, 0.5, 0.7]).n == 2  # NaNs dropped


def test_summary_of_nothing_is_strict_json():
    import json

    record = stats.summarise([]).as_dict()
    assert record["n"] == 0 and record["mean"] is None and record["std"] is None
    json.dumps(record, allow_nan=False)  # raises on NaN


def test_summarise_table_and_curves():
    table = stats.summarise_table({"acc": [0.5, 0.6, 0.7], "nll": [1.0, 1.2, 1.1]})
    assert table.loc["acc", "mean"] == pytest.approx(0.6)
    assert table.loc["nll", "n"] == 3
    histories = [
        [{"epoch": 1, "loss": 2.0}, {"epoch": 2, "loss": 1.0}],
        [{"epoch": 1, "loss": 2.2}, {"epoch": 2, "loss": 1.2}],
        [{"epoch": 1, "loss": 2.4}],
    ]
    curve = stats.curve_summary(histories, "loss")
    assert curve.loc[1, "mean"] == pytest.approx(2.2) and curve.loc[1, "n"] == 3
    assert curve.loc[2, "n"] == 2
    # Below MIN_SEEDS_FOR_BAND seeds there is no t band: the range and each seed are given instead.
    assert np.isnan(curve.loc[2, "low"]) and np.isnan(curve.loc[1, "high"])
    assert (curve.loc[2, "min"], curve.loc[2, "max"]) == pytest.approx((1.0, 1.2))
    assert curve.loc[2, "seed:1"] == pytest.approx(1.2) and np.isnan(curve.loc[2, "seed:2"])
    # With enough seeds the band is the Student-t interval of the mean.
    five = [[{"epoch": 1, "loss": 1.0 + 0.1 * k}] for k in range(stats.MIN_SEEDS_FOR_BAND)]
    banded = stats.curve_summary(five, "loss")
    assert banded.loc[1, "low"] == pytest.approx(
        stats.t_interval([1.0 + 0.1 * k for k in range(5)])[0]
    )


def test_paired_comparison_matches_ttest_rel():
    a = {0: 0.900, 1: 0.905, 2: 0.898, 3: 0.910}
    b = {0: 0.931, 1: 0.932, 2: 0.930, 3: 0.945, 7: 0.99}  # seed 7 has no partner: ignored
    c = stats.paired_comparison(a, b)
    assert c.seeds == (0, 1, 2, 3)
    xa, xb = np.array([a[s] for s in range(4)]), np.array([b[s] for s in range(4)])
    ref = sps.ttest_rel(xb, xa)
    assert c.p_value == pytest.approx(ref.pvalue) and c.t_statistic == pytest.approx(ref.statistic)
    d = xb - xa
    assert (c.low, c.high) == pytest.approx(sps.t.interval(0.95, 3, loc=d.mean(), scale=sps.sem(d)))
    assert c.mean_diff == pytest.approx(d.mean())
    assert c.boot_low <= c.mean_diff <= c.boot_high
    assert d.min() <= c.boot_low and c.boot_high <= d.max()
    assert stats.paired_comparison(a, b).boot_low == c.boot_low  # seeded: reproducible
    assert c.distinguishable


def test_paired_comparison_edge_cases():
    with pytest.raises(ValueError):
        stats.paired_comparison([1, 2], [1, 2, 3])
    one = stats.paired_comparison([0.5], [0.6])
    assert one.n == 1 and one.low is None and one.p_value is None and not one.distinguishable
    # The same difference in every seed: no spread, so no p-value and no [d, d] interval.
    flat = stats.paired_comparison([0.5, 0.6, 0.7], [0.6, 0.7, 0.8])
    assert flat.no_spread and flat.mean_diff == pytest.approx(0.1)
    assert (
        flat.p_value is None
        and flat.low is None
        and flat.boot_low is None
        and not flat.distinguishable
    )


def test_mcnemar_on_constructed_tables():
    def table(both_right, a_only, b_only, both_wrong):
        ca = np.array([1] * both_right + [1] * a_only + [0] * b_only + [0] * both_wrong, bool)
        cb = np.array([1] * both_right + [0] * a_only + [1] * b_only + [0] * both_wrong, bool)
        return ca, cb

    # 12 discordant (10 vs 2): exact two-sided binomial p = 2 * (C(12,0)+C(12,1)+C(12,2)) / 2^12.
    r = stats.mcnemar(*table(80, 10, 2, 8))
    assert r.method == "exact binomial"
    assert r.table.tolist() == [[80, 10], [2, 8]]
    assert r.p_value == pytest.approx(2 * (1 + 12 + 66) / 4096)
    # 60 discordant (40 vs 20): chi-squared with continuity correction.
    r = stats.mcnemar(*table(500, 40, 20, 40))
    assert r.method.startswith("chi-squared")
    assert r.statistic == pytest.approx((20 - 1) ** 2 / 60)
    assert r.p_value == pytest.approx(sps.chi2.sf((20 - 1) ** 2 / 60, 1))
    assert stats.mcnemar(*table(5, 0, 0, 5)).p_value == 1.0
    sentence = verdicts.describe_mcnemar(stats.mcnemar(*table(80, 10, 2, 8)), "A", "B")
    assert sentence.startswith("A errs less often than B")


def test_sentence_follows_the_evidence():
    a = [0.900, 0.905, 0.898]
    b = [0.931, 0.934, 0.930]
    clear = stats.paired_comparison(a, b)
    text = verdicts.describe_comparison(clear, "A", "B")
    d = np.subtract(b, a) * 100
    lo, hi = sps.t.interval(0.95, 2, loc=d.mean(), scale=sps.sem(d))
    # Three seeds are fewer than MIN_SEEDS_FOR_CLAIM, but p < 0.001 with every seed the same way: decisive.
    assert text.startswith(
        f"B beats A by {d.mean():.1f} points of accuracy, 95% CI [{lo:.1f}, {hi:.1f}]"
    )
    assert "3 seeds" in text and "decisive" in text
    # Reversed roles: the better one is still named first, with a positive interval.
    assert verdicts.describe_comparison(stats.paired_comparison(b, a), "A", "B").startswith(
        f"A beats B by {d.mean():.1f} points of accuracy, 95% CI [{lo:.1f}, {hi:.1f}]"
    )
    noisy = stats.paired_comparison([0.90, 0.92, 0.88], [0.91, 0.89, 0.90])
    text = verdicts.describe_comparison(noisy, "A", "B")
    assert text.startswith("A and B are not distinguishable at 95% with 3 seeds")
    # Lower is better (NLL): a drop is a win.
    nll = stats.paired_comparison([1.00, 1.02, 0.99], [0.80, 0.83, 0.79])
    text = verdicts.describe_comparison(
        nll, "A", "B", metric="NLL", scale=1, unit="nats", higher_is_better=False, digits=2
    )
    assert text.startswith("B beats A by 0.20 nats of NLL, 95% CI [0.1")
    assert "cannot be compared" in verdicts.describe_comparison(
        stats.paired_comparison([0.9], [0.95])
    )


def test_interval_text_formats_scaled_signed_and_missing_intervals():
    from cifarkit.evaluation.stats import interval_text

    assert interval_text(0.8312, 0.8455) == "[83.12, 84.55]"
    assert interval_text(-0.004, 0.021, digits=1, signed=True) == "[-0.4, +2.1]"
    assert (
        interval_text(None, None) == "n/a (1 seed)"
        and interval_text(float("nan"), 0.1, missing="-") == "-"
    )


# --------------------------------------------------------------------------- the verdict rule

BASE5 = [0.80, 0.81, 0.79, 0.80, 0.82]
VERDICT_CASES = [
    # case, A, B, kind, the sentence starts with, and must contain
    (
        "ties",
        {0: 0.5, 1: 0.6},
        {0: 0.5, 1: 0.6},
        "no spread",
        "A and B give the same accuracy in both seeds: no spread observed, no interval.",
        [],
    ),
    (
        "identical differences",
        {0: 0.5, 1: 0.6},
        {0: 0.51, 1: 0.61},
        "no spread",
        "B − A is +1.0 points of accuracy in both seeds: no spread observed, no interval",
        [],
    ),
    (
        "n = 1",
        [0.9],
        [0.95],
        "one seed",
        "A and B cannot be compared at 95% with 1 seed: B − A = +5.0 points of accuracy",
        ["at least 2"],
    ),
    (
        "n = 2",
        [0.90, 0.91],
        [0.92, 0.925],
        "not distinguishable",
        "A and B are not distinguishable at 95% with 2 seeds: B − A is positive in both seeds (+1.5 to +2.0",
        ["95% CI [−1.4, +4.9]", "p = 0.090"],
    ),
    (
        "n = 3, same sign, CI excludes 0",
        [0.8, 0.8, 0.8],
        [0.81, 0.812, 0.814],
        "descriptive",
        "B − A is positive in all 3 seeds (+1.0 to +1.4 points of accuracy), mean +1.2, 95% CI [+0.7, +1.7]",
        ["p = 0.009", "claims no difference"],
    ),
    (
        "n = 3, decisive",
        [0.900, 0.905, 0.898],
        [0.931, 0.934, 0.930],
        "claimed",
        "B beats A by 3.1 points of accuracy, 95% CI [2.7, 3.4] (paired t-test over 3 seeds, p < 0.001; decisive",
        [],
    ),
    (
        "opposite signs",
        [0.90, 0.92, 0.88],
        [0.91, 0.89, 0.90],
        "not distinguishable",
        "A and B are not distinguishable at 95% with 3 seeds: B − A changes sign across seeds (−3.0 to +2.0",
        ["positive in 2, negative in 1 of 3"],
    ),
    (
        "n = 5, decisive",
        [0.8] * 5,
        [0.81, 0.812, 0.808, 0.811, 0.809],
        "claimed",
        "B beats A by 1.0 points of accuracy, 95% CI [0.8, 1.2] (paired t-test over 5 seeds, p < 0.001).",
        [],
    ),
    (
        "n = 5, not decisive, CI excludes 0",
        [0.8] * 5,
        [0.81, 0.82, 0.802, 0.815, 0.808],
        "claimed",
        "B beats A by 1.1 points of accuracy, 95% CI [0.2, 2.0] (paired t-test over 5 seeds, p = 0.023).",
        [],
    ),
    (
        "n = 5, not distinguishable",
        [0.8] * 5,
        [0.81, 0.79, 0.82, 0.785, 0.805],
        "not distinguishable",
        "A and B are not distinguishable at 95% with 5 seeds: B − A changes sign",
        ["95% CI [−1.6, +2.0]"],
    ),
    (
        "n = 5, bounded",
        [0.8] * 5,
        [0.801, 0.797, 0.804, 0.799, 0.802],
        "bounded",
        "A and B are equivalent within 1.5 points: any difference in accuracy is smaller than 0.4 points "
        "(95% CI [−0.3, +0.4]",
        ["5 seeds", "changes sign"],
    ),
    (
        "n = 5, bounded, the bound rounded up",
        [0.8] * 5,
        [0.8, 0.79, 0.806, 0.8, 0.804],
        "bounded",
        "A and B are equivalent within 1.5 points: any difference in accuracy is smaller than 0.8 points "
        "(95% CI [−0.8, +0.8]",
        ["positive in 2, negative in 1 of 5"],
    ),
    (
        "n = 5, interval wider than the margin",
        [0.8] * 5,
        [0.81, 0.79, 0.82, 0.785, 0.805],
        "not distinguishable",
        "A and B are not distinguishable",
        ["95% CI [−1.6, +2.0]"],
    ),
    (
        "n = 3, inside the margin: described, not bounded",
        [0.8] * 3,
        [0.801, 0.799, 0.8015],
        "not distinguishable",
        "A and B are not distinguishable at 95% with 3 seeds: B − A changes sign",
        [
            "bounds the difference below 0.4 points",
            "3 seeds are fewer than the 5",
            "describes the seeds",
        ],
    ),
    (
        "n = 4, inside the margin: described, not bounded",
        [0.8] * 4,
        [0.802, 0.799, 0.801, 0.8],
        "not distinguishable",
        "A and B are not distinguishable at 95% with 4 seeds",
        ["4 seeds are fewer than the 5"],
    ),
    (
        "n = 5, B worse",
        BASE5,
        [b - d for b, d in zip(BASE5, [0.02, 0.03, 0.01, 0.025, 0.015], strict=True)],
        "claimed",
        "A beats B by 2.0 points of accuracy, 95% CI [1.0, 3.0]",
        [],
    ),
]


@pytest.mark.parametrize(
    ("case", "a", "b", "kind", "start", "contains"),
    VERDICT_CASES,
    ids=[c[0] for c in VERDICT_CASES],
)
def test_verdict_table(case, a, b, kind, start, contains):
    v = verdicts.verdict(stats.paired_comparison(a, b))
    assert v.kind == kind, v.sentence
    assert v.sentence.startswith(start), v.sentence
    for text in contains:
        assert text in v.sentence, v.sentence
    assert v.claim == (kind == "claimed")
    assert ("beats" in v.sentence) == v.claim
    # Never p = 0.000, never a [d, d] interval, never "+-".
    assert "p = 0.000" not in v.sentence and "+-" not in v.sentence and "+−" not in v.sentence
    if kind in ("no spread", "one seed"):
        assert "CI" not in v.sentence and "p " not in v.sentence
    assert v.sentence == verdicts.describe_comparison(stats.paired_comparison(a, b))
    assert set(v.as_dict()) >= {
        "kind",
        "sentence",
        "n",
        "mean_diff",
        "low",
        "high",
        "p_value",
        "claim",
    }


def test_verdict_rules_minimum_seeds_holm_and_validation():
    c = stats.paired_comparison([0.8] * 5, [0.81, 0.82, 0.802, 0.815, 0.808])
    assert verdicts.verdict(c).claim
    # The same evidence with a stricter minimum is a description, not a claim.
    described = verdicts.verdict(c, min_seeds=6)
    assert described.kind == "descriptive" and "beats" not in described.sentence
    # Holm-adjusted p above 0.05: not distinguishable, and the sentence shows both p-values.
    adjusted = verdicts.verdict(c, p_adjusted=0.08)
    assert adjusted.kind == "not distinguishable" and "Holm-adjusted p = 0.080" in adjusted.sentence
    assert "p = 0.023" in adjusted.sentence and "once adjusted" in adjusted.sentence
    # The seeds that go the other way are named even when the difference is claimed.
    mixed = stats.paired_comparison([0.8] * 7, [0.85, 0.85, 0.85, 0.85, 0.85, 0.85, 0.799])
    v = verdicts.verdict(mixed)
    assert v.claim and "goes the other way in 1 of the 7 seeds" in v.sentence
    with pytest.raises(ValueError, match="min_seeds=1"):
        verdicts.verdict(c, min_seeds=1)
    with pytest.raises(ValueError, match="p_adjusted=1.5"):
        verdicts.verdict(c, p_adjusted=1.5)
    assert verdicts.format_p(0.0) == "p < 0.001" and verdicts.format_p(None) == "p n/a"
    assert verdicts.p_text(0.0421) == "0.042" and verdicts.p_text(None) == "n/a"


def test_holm_matches_a_hand_computation():
    # Sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 -> 0.02, 0.03, 0.06, max(0.04, 0.06).
    assert stats.holm([0.01, 0.04, 0.03, 0.005, None]) == pytest.approx(
        [0.03, 0.06, 0.06, 0.02, None]
    )
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert stats.holm([]) == []


def test_wilson_interval_matches_scipy_and_the_formula():
    low, high = stats.wilson_interval(8620, 10000)
    p, n, z = 0.862, 10000, sps.norm.ppf(0.975)
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert (low, high) == pytest.approx((centre - half, centre + half), rel=1e-9)
    assert stats.wilson_accuracy_interval(0.862, 10000) == (low, high)
    assert stats.accuracy_sampling_text(0.862, 10000) == (
        "Wilson 95% CI [85.5, 86.9] over the 10,000 test images of one model"
    )
    with pytest.raises(ValueError, match="accuracy=1.2"):
        stats.wilson_accuracy_interval(1.2, 100)
    with pytest.raises(ValueError, match="total=0"):
        stats.wilson_interval(0, 0)


def test_per_class_differences_adjust_over_classes_and_never_pick_extremes():
    import pandas as pd

    a = pd.DataFrame({"cat": [0.5, 0.52, 0.51], "dog": [0.6, 0.61, 0.59], "ship": [0.9, 0.9, 0.9]})
    b = pd.DataFrame(
        {"cat": [0.6, 0.65, 0.55], "dog": [0.62, 0.6, 0.61], "ship": [0.91, 0.91, 0.91]}
    )
    table = verdicts.per_class_differences(a, b, "CNN", "ResNet20")
    assert table.loc["ship", "verdict"] == "no spread" and pd.isna(table.loc["ship", "p"])
    assert table.loc["cat", "p_holm"] == pytest.approx(min(1.0, 2 * table.loc["cat", "p"]))
    sentence = verdicts.describe_per_class_differences(table, "CNN", "ResNet20")
    assert "3 contrasts, Holm-adjusted" in sentence and "no class-level difference" in sentence
    assert "most" not in sentence and "least" not in sentence
    shown = verdicts.differences_display(table)
    assert shown.loc["ship", "95% CI"] == "no interval" and shown.loc["ship", "p (Holm)"] == "n/a"


@pytest.mark.parametrize(
    "values", [[0.01, -0.02, 0.03], [0.5, 0.5, 0.5], [0.3, 0.1, 0.7, 0.2, 0.9]]
)
def test_bootstrap_interval_is_the_percentile_bootstrap_of_the_mean(values):
    # Independent computation: resample with the seeded generator, take the 2.5% and 97.5% quantiles.
    x = np.asarray(values)
    means = x[np.random.default_rng(7).integers(0, len(x), size=(2000, len(x)))].mean(axis=1)
    expected = tuple(np.quantile(means, [0.025, 0.975]))
    assert stats.bootstrap_mean_ci(values, 0.95, n_boot=2000, seed=7) == pytest.approx(
        expected, abs=1e-12
    )
    assert stats.bootstrap_mean_ci(values[:1]) is None
