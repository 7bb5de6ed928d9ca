"""Statistics across seeds: how sure is each number, and is one configuration really better?

* :func:`summarise` — mean, standard deviation (n-1) and the 95% Student-t confidence
  interval of the mean of a metric over seeds (with one seed: no interval, and it says so);
  :func:`summarise_table`, :func:`per_class_summary` and :func:`curve_summary` apply it to
  many metrics, to classes and to training curves epoch by epoch;
* :func:`paired_comparison` — two configurations over *matched* seeds: paired t-test and a
  t interval of the mean difference, plus a seeded bootstrap interval;
* :func:`holm` — Holm's step-down adjustment of the p-values of exploratory contrasts;
* :func:`wilson_interval` / :func:`wilson_accuracy_interval` — the interval of one model's
  accuracy over the test images it was scored on (not over seeds);
* :func:`mcnemar` — McNemar's test on per-example correctness of two runs on the same test
  set (exact binomial for few discordant examples, chi-squared with continuity correction
  otherwise).

:mod:`cifarkit.evaluation.verdicts` turns these into sentences: the one verdict rule every
comparison in the report goes through, per-class differences, McNemar in words.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

CONFIDENCE = 0.95
EXACT_MCNEMAR_BELOW = 25  # discordant pairs; below this the chi-squared approximation is poor
#: Fewest matched seeds for which a difference whose interval excludes zero is called a
#: difference ("beats"); below it the wording is descriptive unless the evidence is decisive.
MIN_SEEDS_FOR_CLAIM = 5
#: A comparison is *decisive* when its p-value (Holm-adjusted if it is one of several
#: exploratory contrasts) is below this, with at least :data:`MIN_SEEDS_DECISIVE` seeds that
#: all differ in the same direction.
DECISIVE_P = 0.001
MIN_SEEDS_DECISIVE = 3
#: Equivalence margin (fraction of accuracy): a comparison whose interval lies inside
#: ±this, with at least MIN_SEEDS_FOR_CLAIM seeds, is reported as a bounded effect ("any
#: difference is smaller than ..."), not as a bare "not distinguishable". The margin is set near
#: the seed-to-seed spread of a short CPU run (the baseline chapter shows that spread), the
#: smallest effect worth a chapter here.
EQUIVALENCE_MARGIN = 0.015
#: Fewest seeds for which training curves get a Student-t band (below it: each seed is drawn).
MIN_SEEDS_FOR_BAND = 5


def _finite_or_none(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


# --------------------------------------------------------------------------- one metric over seeds


@dataclass(frozen=True)
class Summary:
    """Mean of a metric over ``n`` seeds with its Student-t confidence interval.

    ``low``/``high`` are None when ``n < 2`` (one seed says nothing about seed-to-seed
    spread); ``std`` is the sample standard deviation (n-1), NaN for one seed.
    """

    mean: float
    std: float
    n: int
    low: float | None
    high: float | None
    confidence: float = CONFIDENCE

    @property
    def half_width(self) -> float | None:
        return None if self.low is None else (self.high - self.low) / 2

    @property
    def has_ci(self) -> bool:
        return self.low is not None

    @property
    def note(self) -> str:
        if self.n == 0:
            return "no values"
        if not self.has_ci:
            return f"n={self.n}: no confidence interval (needs at least 2 seeds)"
        return f"{self.confidence:.0%} Student-t CI, {self.n - 1} degrees of freedom"

    def format(self, scale: float = 1.0, digits: int = 2) -> str:
        """``mean ± half-width`` (scaled, e.g. by 100 for percent), or ``mean (n=1, no CI)``."""
        if self.n == 0:
            return "-"
        mean = f"{self.mean * scale:.{digits}f}"
        if not self.has_ci:
            return f"{mean} (n={self.n}, no CI)"
        return f"{mean} ± {self.half_width * scale:.{digits}f}"

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["mean"] = _finite_or_none(self.mean)  # NaN (no values) is not valid JSON
        out["std"] = _finite_or_none(self.std)
        out["half_width"] = self.half_width
        out["note"] = self.note
        return out


def interval_text(
    low: float | None,
    high: float | None,
    *,
    scale: float = 100.0,
    digits: int = 2,
    signed: bool = False,
    missing: str = "n/a (1 seed)",
) -> str:
    """``[low, high]`` scaled (e.g. to percent), with signs for differences; ``missing``
    when there is no interval (fewer than two seeds). The one formatter of interval text
    in tables and prose."""
    if low is None or high is None or pd.isna(low) or pd.isna(high):
        return missing
    sign = "+" if signed else ""
    return f"[{low * scale:{sign}.{digits}f}, {high * scale:{sign}.{digits}f}]"


def t_interval(
    values: Sequence[float], confidence: float = CONFIDENCE
) -> tuple[float, float] | None:
    """Student-t interval of the mean (n-1 degrees of freedom); None for fewer than 2 values."""
    x = np.asarray(values, np.float64)
    if len(x) < 2:
        return None
    mean, sem = x.mean(), x.std(ddof=1) / math.sqrt(len(x))
    half = sps.t.ppf((1 + confidence) / 2, len(x) - 1) * sem
    return float(mean - half), float(mean + half)


def summarise(values: Sequence[float], confidence: float = CONFIDENCE) -> Summary:
    """Mean, std (n-1) and Student-t CI of ``values`` (one per seed); NaNs are dropped."""
    x = np.asarray(values, np.float64)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return Summary(float("nan"), float("nan"), 0, None, None, confidence)
    interval = t_interval(x, confidence)
    std = float(x.std(ddof=1)) if len(x) > 1 else float("nan")
    low, high = interval if interval else (None, None)
    return Summary(float(x.mean()), std, len(x), low, high, confidence)


def summarise_table(
    per_seed: Mapping[str, Sequence[float]] | pd.DataFrame, confidence: float = CONFIDENCE
) -> pd.DataFrame:
    """One row per metric: ``mean``, ``std``, ``low``, ``high``, ``half_width``, ``n``.

    ``per_seed`` maps metric name to its per-seed values (or is a DataFrame with one
    column per metric and one row per seed).
    """
    columns = per_seed.columns if isinstance(per_seed, pd.DataFrame) else list(per_seed)
    rows = {}
    for name in columns:
        s = summarise(per_seed[name], confidence)
        rows[name] = {
            "mean": s.mean,
            "std": s.std,
            "low": s.low,
            "high": s.high,
            "half_width": s.half_width,
            "n": s.n,
        }
    table = pd.DataFrame.from_dict(
        rows, orient="index", columns=["mean", "std", "low", "high", "half_width", "n"]
    )
    return table.astype(
        {"mean": float, "std": float, "low": float, "high": float, "half_width": float}
    )


def per_class_summary(
    per_seed: np.ndarray | pd.DataFrame,
    class_names: Sequence[str] | None = None,
    confidence: float = CONFIDENCE,
) -> pd.DataFrame:
    """Across-seed summary of a per-class metric given as a (seeds × classes) array."""
    frame = (
        per_seed
        if isinstance(per_seed, pd.DataFrame)
        else pd.DataFrame(np.asarray(per_seed, np.float64), columns=list(class_names))
    )
    table = summarise_table(frame, confidence)
    table.index.name = "class"
    return table


def curve_summary(
    histories: Sequence[Sequence[Mapping[str, float]]],
    column: str,
    confidence: float = CONFIDENCE,
    min_seeds_for_band: int = MIN_SEEDS_FOR_BAND,
) -> pd.DataFrame:
    """A history column (e.g. ``val_accuracy``) across seeds, epoch by epoch.

    Parameters
    ----------
    histories
        One training history per seed (rows with ``epoch`` and ``column``), in seed order.
    column
        The history column to summarise.
    confidence
        Coverage of the Student-t band.
    min_seeds_for_band
        Fewest seeds at an epoch for which ``low``/``high`` (the t band of the mean) are
        given; below it they are NaN, since a t band from two to four seeds is mostly a
        statement about the t distribution's tails, and the seeds themselves are drawn.

    Returns
    -------
    pandas.DataFrame
        Indexed by epoch: ``mean``, ``low``, ``high`` (t band, NaN below
        ``min_seeds_for_band`` seeds), ``min``, ``max`` (the range over seeds), ``n``, and
        one column ``seed:<i>`` per history (its value at that epoch, NaN where that seed
        has none), ``i`` being the position in ``histories``.
    """
    by_epoch: dict[int, dict[int, float]] = {}
    for k, history in enumerate(histories):
        for i, row in enumerate(history):
            value = row.get(column)
            if value is not None:
                by_epoch.setdefault(int(row.get("epoch", i + 1)), {})[k] = float(value)
    seed_columns = [f"seed:{k}" for k in range(len(histories))]
    rows = []
    for epoch in sorted(by_epoch):
        values = list(by_epoch[epoch].values())
        s = summarise(values, confidence)
        banded = s.n >= min_seeds_for_band and s.has_ci
        rows.append(
            {
                "epoch": epoch,
                "mean": s.mean,
                "low": s.low if banded else None,
                "high": s.high if banded else None,
                "min": min(values),
                "max": max(values),
                "n": s.n,
                **{
                    f"seed:{k}": by_epoch[epoch].get(k, float("nan")) for k in range(len(histories))
                },
            }
        )
    columns = ["epoch", "mean", "low", "high", "min", "max", "n", *seed_columns]
    return (
        pd.DataFrame(rows, columns=columns)
        .astype({c: float for c in columns if c not in ("epoch", "n")})
        .set_index("epoch")
    )


# --------------------------------------------------------------------------- paired comparison


def bootstrap_mean_ci(
    values: Sequence[float], confidence: float = CONFIDENCE, n_boot: int = 10_000, seed: int = 0
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean of ``values`` (``scipy.stats.bootstrap`` with
    ``method="percentile"``, resampled by ``np.random.default_rng(seed)``); None for fewer
    than 2 values.

    Percentile rather than SciPy's default BCa: BCa gives NaN and a warning when the seed
    differences tie. With few seeds the interval is narrower than the t interval (it ignores
    that the spread itself is estimated), so decisions use the t interval.
    """
    x = np.asarray(values, np.float64)
    if len(x) < 2:
        return None
    result = sps.bootstrap(
        (x,),
        np.mean,
        n_resamples=n_boot,
        confidence_level=confidence,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _no_spread(diff: np.ndarray) -> bool:
    """True when at least two differences are all equal up to rounding (ties included)."""
    return len(diff) >= 2 and float(np.ptp(diff)) <= 1e-12 * max(1.0, float(np.abs(diff).max()))


@dataclass(frozen=True)
class PairedComparison:
    """B − A over matched seeds: mean difference, t interval and test, bootstrap interval.

    With fewer than two seeds, or when every seed's difference is the same (no spread
    observed: a t statistic would be 0/0 or infinite), there is no interval and no p-value:
    ``low``, ``high``, ``p_value``, ``boot_low`` and ``boot_high`` are None.
    """

    seeds: tuple[Any, ...]
    a: tuple[float, ...]
    b: tuple[float, ...]
    mean_diff: float
    low: float | None  # Student-t interval of the mean difference
    high: float | None
    t_statistic: float | None
    p_value: float | None  # two-sided paired t-test
    boot_low: float | None  # percentile bootstrap interval of the mean difference
    boot_high: float | None
    confidence: float = CONFIDENCE

    @property
    def n(self) -> int:
        return len(self.seeds)

    @property
    def diffs(self) -> tuple[float, ...]:
        """B − A seed by seed."""
        return tuple(b - a for a, b in zip(self.a, self.b, strict=True))

    @property
    def no_spread(self) -> bool:
        """True when there are at least two seeds and their differences are all the same."""
        return _no_spread(np.asarray(self.diffs, np.float64))

    @property
    def distinguishable(self) -> bool:
        """True when the t interval of B − A excludes 0 (whatever the number of seeds; the
        wording rules of :func:`cifarkit.evaluation.verdicts.verdict` add the minimum number of seeds)."""
        return self.low is not None and (self.low > 0 or self.high < 0)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(
            n=self.n,
            distinguishable=self.distinguishable,
            no_spread=self.no_spread,
            seeds=list(self.seeds),
            a=list(self.a),
            b=list(self.b),
        )
        return out


def paired_comparison(
    a: Mapping[Any, float] | Sequence[float],
    b: Mapping[Any, float] | Sequence[float],
    *,
    confidence: float = CONFIDENCE,
    n_boot: int = 10_000,
    seed: int = 0,
) -> PairedComparison:
    """Compare configuration B with A on matched seeds (B − A).

    Parameters
    ----------
    a, b
        Either mappings seed → value (only seeds present in both are used) or equal-length
        sequences whose i-th entries share a seed.
    confidence
        Coverage of the t and bootstrap intervals.
    n_boot, seed
        Bootstrap resamples and the seed of their generator.

    Returns
    -------
    PairedComparison
        Without an interval or p-value when fewer than two seeds match or when every
        seed's difference is the same (no spread observed).
    """
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        seeds = tuple(sorted(set(a) & set(b)))
        xa = np.array([a[s] for s in seeds], np.float64)
        xb = np.array([b[s] for s in seeds], np.float64)
    else:
        xa, xb = np.asarray(list(a), np.float64), np.asarray(list(b), np.float64)
        if xa.shape != xb.shape:
            raise ValueError(f"paired comparison needs matched values, got {len(xa)} and {len(xb)}")
        seeds = tuple(range(len(xa)))
    diff = xb - xa
    mean = float(diff.mean()) if len(diff) else float("nan")
    t_stat = p = interval = boot = None
    # No spread (ties, or the same difference in every seed): the t statistic is 0/0 or
    # infinite and any interval would be the point [d, d], so none is given.
    if len(diff) >= 2 and not _no_spread(diff):
        interval = t_interval(diff, confidence)
        result = sps.ttest_rel(xb, xa)
        t_stat, p = float(result.statistic), float(result.pvalue)
        boot = bootstrap_mean_ci(diff, confidence, n_boot, seed)
    return PairedComparison(
        seeds=seeds,
        a=tuple(map(float, xa)),
        b=tuple(map(float, xb)),
        mean_diff=mean,
        low=interval[0] if interval else None,
        high=interval[1] if interval else None,
        t_statistic=t_stat,
        p_value=p,
        boot_low=boot[0] if boot else None,
        boot_high=boot[1] if boot else None,
        confidence=confidence,
    )


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values, in the order given; None (no test) stays None.

    Written here because statsmodels is not a dependency and SciPy offers only the
    Benjamini-Hochberg adjustment (``false_discovery_control``); Holm's method is a sort, a
    running maximum and a clip at 1. Contrasts without a p-value (one seed, no spread) are
    not tests and do not count in the family.
    """
    tested = sorted((float(p), i) for i, p in enumerate(p_values) if p is not None)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - rank) * p))  # monotone in rank
        out[i] = running
    return out


# --------------------------------------------------------------------------- McNemar


@dataclass(frozen=True)
class McNemarResult:
    """McNemar's test on two runs' per-example correctness over the same examples."""

    both_right: int
    a_only: int  # A right, B wrong
    b_only: int  # A wrong, B right
    both_wrong: int
    statistic: float
    p_value: float
    method: str  # "exact binomial" or "chi-squared, continuity corrected"

    @property
    def table(self) -> np.ndarray:
        """2×2 table, rows A right/wrong, columns B right/wrong."""
        return np.array([[self.both_right, self.a_only], [self.b_only, self.both_wrong]])

    @property
    def discordant(self) -> int:
        return self.a_only + self.b_only

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "discordant": self.discordant}


def mcnemar(
    correct_a: np.ndarray, correct_b: np.ndarray, *, exact: bool | None = None
) -> McNemarResult:
    """McNemar's test of whether A and B err on the same examples equally often.

    Only the discordant examples count: ``a_only`` (A right, B wrong) and ``b_only``. With
    ``exact`` (the default when fewer than 25 are discordant) the p-value is the two-sided
    exact binomial test of ``b_only`` out of the discordant ones at 1/2; otherwise the
    chi-squared statistic ``(|a_only - b_only| - 1)² / (a_only + b_only)`` on 1 degree of
    freedom.
    """
    ca, cb = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    if ca.shape != cb.shape:
        raise ValueError(
            f"McNemar needs the same examples for both runs, got {ca.shape} and {cb.shape}"
        )
    both_right, both_wrong = int(np.sum(ca & cb)), int(np.sum(~ca & ~cb))
    a_only, b_only = int(np.sum(ca & ~cb)), int(np.sum(~ca & cb))
    n = a_only + b_only
    if exact is None:
        exact = n < EXACT_MCNEMAR_BELOW
    if n == 0:
        return McNemarResult(
            both_right,
            a_only,
            b_only,
            both_wrong,
            0.0,
            1.0,
            "exact binomial" if exact else "chi-squared, continuity corrected",
        )
    if exact:
        p = sps.binomtest(b_only, n, 0.5, alternative="two-sided").pvalue
        return McNemarResult(
            both_right,
            a_only,
            b_only,
            both_wrong,
            float(min(a_only, b_only)),
            float(p),
            "exact binomial",
        )
    stat = (abs(a_only - b_only) - 1) ** 2 / n
    return McNemarResult(
        both_right,
        a_only,
        b_only,
        both_wrong,
        float(stat),
        float(sps.chi2.sf(stat, 1)),
        "chi-squared, continuity corrected",
    )


# --------------------------------------------------------------------------- one model over test images


def wilson_interval(
    successes: int, total: int, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """Wilson score interval of a proportion ``successes / total`` (SciPy's
    ``binomtest(...).proportion_ci(method="wilson")``).

    Parameters
    ----------
    successes, total
        Counts, ``0 <= successes <= total`` and ``total >= 1``.
    confidence
        Coverage of the interval.

    Returns
    -------
    tuple of float
        ``(low, high)`` as proportions.
    """
    if int(total) < 1:
        raise ValueError(f"total={total} is not a number of trials; pass at least 1")
    if not 0 <= int(successes) <= int(total):
        raise ValueError(f"successes={successes} is outside 0..total={total}")
    ci = sps.binomtest(int(successes), int(total)).proportion_ci(
        confidence_level=confidence, method="wilson"
    )
    return float(ci.low), float(ci.high)


def wilson_accuracy_interval(
    accuracy: float, n_images: int, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """The Wilson interval of one model's ``accuracy`` over the ``n_images`` test images it was
    scored on: how far the figure could move on another test set of that size from the same
    distribution. It covers test-set sampling only, not seed-to-seed variation (that is the
    interval of :func:`summarise`).

    Parameters
    ----------
    accuracy
        A share in [0, 1] (for a mean over seeds: the interval of one model at that accuracy).
    n_images
        How many test images the accuracy was measured on, at least 1.
    confidence
        Coverage of the interval.

    Returns
    -------
    tuple of float
        ``(low, high)`` as shares.
    """
    if not 0.0 <= float(accuracy) <= 1.0:
        raise ValueError(f"accuracy={accuracy} is not a share; pass a value in [0, 1]")
    return wilson_interval(round(float(accuracy) * int(n_images)), int(n_images), confidence)


def accuracy_sampling_text(
    accuracy: float, n_images: int, *, digits: int = 1, confidence: float = CONFIDENCE
) -> str:
    """``"Wilson 95% CI [85.5, 86.9] over the 10,000 test images of one model"`` (percent)."""
    low, high = wilson_accuracy_interval(accuracy, n_images, confidence)
    return (
        f"Wilson {confidence:.0%} CI {interval_text(low, high, digits=digits)} over the "
        f"{int(n_images):,} test images of one model"
    )
