"""Across-seed statistics: t intervals against scipy, paired tests, McNemar, sentences."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from cifarkit.evaluation import stats


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
    histories = [[{"epoch": 1, "loss": 2.0}, {"epoch": 2, "loss": 1.0}],
                 [{"epoch": 1, "loss": 2.2}, {"epoch": 2, "loss": 1.2}],
                 [{"epoch": 1, "loss": 2.4}]]
    curve = stats.curve_summary(histories, "loss")
    assert curve.loc[1, "mean"] == pytest.approx(2.2) and curve.loc[1, "n"] == 3
    assert curve.loc[2, "n"] == 2
    assert curve.loc[2, "low"] == pytest.approx(stats.t_interval([1.0, 1.2])[0])


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
    flat = stats.paired_comparison([0.5, 0.6, 0.7], [0.6, 0.7, 0.8])
    assert flat.p_value == 0.0 and flat.low == pytest.approx(0.1)


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
    sentence = stats.describe_mcnemar(stats.mcnemar(*table(80, 10, 2, 8)), "A", "B")
    assert sentence.startswith("A errs less often than B")


def test_sentence_follows_the_evidence():
    a = [0.900, 0.905, 0.898]
    b = [0.931, 0.934, 0.930]
    clear = stats.paired_comparison(a, b)
    text = stats.describe_comparison(clear, "A", "B")
    d = np.subtract(b, a) * 100
    lo, hi = sps.t.interval(0.95, 2, loc=d.mean(), scale=sps.sem(d))
    assert text.startswith(f"B beats A by {d.mean():.1f} points of accuracy, 95% CI [{lo:.1f}, {hi:.1f}]")
    assert "3 seeds" in text
    # Reversed roles: the better one is still named first, with a positive interval.
    assert stats.describe_comparison(stats.paired_comparison(b, a), "A", "B").startswith(
        f"A beats B by {d.mean():.1f} points of accuracy, 95% CI [{lo:.1f}, {hi:.1f}]")
    noisy = stats.paired_comparison([0.90, 0.92, 0.88], [0.91, 0.89, 0.90])
    text = stats.describe_comparison(noisy, "A", "B")
    assert text.startswith("A and B are not distinguishable at 95% with 3 seeds")
    # Lower is better (NLL): a drop is a win.
    nll = stats.paired_comparison([1.00, 1.02, 0.99], [0.80, 0.83, 0.79])
    text = stats.describe_comparison(nll, "A", "B", metric="NLL", scale=1, unit="nats",
                                     higher_is_better=False, digits=2)
    assert text.startswith("B beats A by 0.20 nats of NLL, 95% CI [0.1")
    assert "cannot be compared" in stats.describe_comparison(stats.paired_comparison([0.9], [0.95]))


def test_interval_text_formats_scaled_signed_and_missing_intervals():
    from cifarkit.evaluation.stats import interval_text

    assert interval_text(0.8312, 0.8455) == "[83.12, 84.55]"
    assert interval_text(-0.004, 0.021, digits=1, signed=True) == "[-0.4, +2.1]"
    assert interval_text(None, None) == "n/a (1 seed)" and interval_text(float("nan"), 0.1, missing="-") == "-"
