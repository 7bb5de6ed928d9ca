"""Statistics across seeds: how sure is each number, and is one configuration really better?

* :func:`summarise` — mean, standard deviation (n-1) and the 95% Student-t confidence
  interval of the mean of a metric over seeds (with one seed: no interval, and it says so);
  :func:`summarise_table`, :func:`per_class_summary` and :func:`curve_summary` apply it to
  many metrics, to classes and to training curves epoch by epoch;
* :func:`paired_comparison` — two configurations over *matched* seeds: paired t-test and a
  t interval of the mean difference, plus a seeded bootstrap interval;
* :func:`verdict` — the one rule that turns a paired comparison into words (and a
  structured :class:`Verdict`); every sentence of the report that compares two things goes
  through it (:func:`describe_comparison` is its sentence);
* :func:`holm` — Holm's step-down adjustment of the p-values of exploratory contrasts;
* :func:`wilson_interval` / :func:`wilson_accuracy_interval` — the interval of one model's
  accuracy over the test images it was scored on (not over seeds);
* :func:`per_class_differences` — per-class paired differences with Holm-adjusted p-values;
* :func:`mcnemar` — McNemar's test on per-example correctness of two runs on the same test
  set (exact binomial for few discordant examples, chi-squared with continuity correction
  otherwise);
* :func:`describe_mcnemar` — one sentence on a McNemar test.
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


def interval_text(low: float | None, high: float | None, *, scale: float = 100.0, digits: int = 2,
                  signed: bool = False, missing: str = "n/a (1 seed)") -> str:
    """``[low, high]`` scaled (e.g. to percent), with signs for differences; ``missing``
    when there is no interval (fewer than two seeds). The one formatter of interval text
    in tables and prose."""
    if low is None or high is None or pd.isna(low) or pd.isna(high):
        return missing
    sign = "+" if signed else ""
    return f"[{low * scale:{sign}.{digits}f}, {high * scale:{sign}.{digits}f}]"


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float] | None:
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


def summarise_table(per_seed: Mapping[str, Sequence[float]] | pd.DataFrame,
                    confidence: float = CONFIDENCE) -> pd.DataFrame:
    """One row per metric: ``mean``, ``std``, ``low``, ``high``, ``half_width``, ``n``.

    ``per_seed`` maps metric name to its per-seed values (or is a DataFrame with one
    column per metric and one row per seed).
    """
    columns = per_seed.columns if isinstance(per_seed, pd.DataFrame) else list(per_seed)
    rows = {}
    for name in columns:
        s = summarise(per_seed[name], confidence)
        rows[name] = {"mean": s.mean, "std": s.std, "low": s.low, "high": s.high,
                      "half_width": s.half_width, "n": s.n}
    table = pd.DataFrame.from_dict(rows, orient="index", columns=["mean", "std", "low", "high", "half_width", "n"])
    return table.astype({"mean": float, "std": float, "low": float, "high": float, "half_width": float})


def per_class_summary(per_seed: np.ndarray | pd.DataFrame, class_names: Sequence[str] | None = None,
                      confidence: float = CONFIDENCE) -> pd.DataFrame:
    """Across-seed summary of a per-class metric given as a (seeds × classes) array."""
    frame = per_seed if isinstance(per_seed, pd.DataFrame) else pd.DataFrame(
        np.asarray(per_seed, np.float64), columns=list(class_names))
    table = summarise_table(frame, confidence)
    table.index.name = "class"
    return table


def curve_summary(histories: Sequence[Sequence[Mapping[str, float]]], column: str,
                  confidence: float = CONFIDENCE, min_seeds_for_band: int = MIN_SEEDS_FOR_BAND) -> pd.DataFrame:
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
        rows.append({"epoch": epoch, "mean": s.mean, "low": s.low if banded else None,
                     "high": s.high if banded else None, "min": min(values), "max": max(values), "n": s.n,
                     **{f"seed:{k}": by_epoch[epoch].get(k, float("nan")) for k in range(len(histories))}})
    columns = ["epoch", "mean", "low", "high", "min", "max", "n", *seed_columns]
    return pd.DataFrame(rows, columns=columns).astype(
        {c: float for c in columns if c not in ("epoch", "n")}).set_index("epoch")


# --------------------------------------------------------------------------- paired comparison


def bootstrap_mean_ci(values: Sequence[float], confidence: float = CONFIDENCE, n_boot: int = 10_000,
                      seed: int = 0) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean of ``values``, resampled with a seeded
    ``np.random.default_rng(seed)``; None for fewer than 2 values.

    Written here rather than with ``scipy.stats.bootstrap``: its default BCa interval
    degenerates (NaN plus a warning) on the 2-5 identical-ish seed differences this project
    has, and a percentile bootstrap is one resampling matrix — explicit, and the same
    numbers whatever the SciPy version. With few seeds it is narrower than the t interval
    (it ignores that the spread itself is estimated), so decisions use the t interval.
    """
    x = np.asarray(values, np.float64)
    if len(x) < 2:
        return None
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return float(low), float(high)


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
    low: float | None          # Student-t interval of the mean difference
    high: float | None
    t_statistic: float | None
    p_value: float | None      # two-sided paired t-test
    boot_low: float | None     # percentile bootstrap interval of the mean difference
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
        wording rules of :func:`verdict` add the minimum number of seeds)."""
        return self.low is not None and (self.low > 0 or self.high < 0)

    def verdict(self, name_a: str = "A", name_b: str = "B", **options: Any) -> Verdict:
        """:func:`verdict` of this comparison."""
        return verdict(self, name_a, name_b, **options)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(n=self.n, distinguishable=self.distinguishable, no_spread=self.no_spread,
                   seeds=list(self.seeds), a=list(self.a), b=list(self.b))
        return out


def paired_comparison(a: Mapping[Any, float] | Sequence[float], b: Mapping[Any, float] | Sequence[float], *,
                      confidence: float = CONFIDENCE, n_boot: int = 10_000, seed: int = 0) -> PairedComparison:
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
        seeds=seeds, a=tuple(map(float, xa)), b=tuple(map(float, xb)), mean_diff=mean,
        low=interval[0] if interval else None, high=interval[1] if interval else None,
        t_statistic=t_stat, p_value=p,
        boot_low=boot[0] if boot else None, boot_high=boot[1] if boot else None, confidence=confidence)


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
    a_only: int      # A right, B wrong
    b_only: int      # A wrong, B right
    both_wrong: int
    statistic: float
    p_value: float
    method: str      # "exact binomial" or "chi-squared, continuity corrected"

    @property
    def table(self) -> np.ndarray:
        """2×2 table, rows A right/wrong, columns B right/wrong."""
        return np.array([[self.both_right, self.a_only], [self.b_only, self.both_wrong]])

    @property
    def discordant(self) -> int:
        return self.a_only + self.b_only

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "discordant": self.discordant}


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray, *, exact: bool | None = None) -> McNemarResult:
    """McNemar's test of whether A and B err on the same examples equally often.

    Only the discordant examples count: ``a_only`` (A right, B wrong) and ``b_only``. With
    ``exact`` (the default when fewer than 25 are discordant) the p-value is the two-sided
    exact binomial test of ``b_only`` out of the discordant ones at 1/2; otherwise the
    chi-squared statistic ``(|a_only - b_only| - 1)² / (a_only + b_only)`` on 1 degree of
    freedom.
    """
    ca, cb = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    if ca.shape != cb.shape:
        raise ValueError(f"McNemar needs the same examples for both runs, got {ca.shape} and {cb.shape}")
    both_right, both_wrong = int(np.sum(ca & cb)), int(np.sum(~ca & ~cb))
    a_only, b_only = int(np.sum(ca & ~cb)), int(np.sum(~ca & cb))
    n = a_only + b_only
    if exact is None:
        exact = n < EXACT_MCNEMAR_BELOW
    if n == 0:
        return McNemarResult(both_right, a_only, b_only, both_wrong, 0.0, 1.0,
                             "exact binomial" if exact else "chi-squared, continuity corrected")
    if exact:
        p = sps.binomtest(b_only, n, 0.5, alternative="two-sided").pvalue
        return McNemarResult(both_right, a_only, b_only, both_wrong, float(min(a_only, b_only)),
                             float(p), "exact binomial")
    stat = (abs(a_only - b_only) - 1) ** 2 / n
    return McNemarResult(both_right, a_only, b_only, both_wrong, float(stat), float(sps.chi2.sf(stat, 1)),
                         "chi-squared, continuity corrected")


# --------------------------------------------------------------------------- one model over test images


def wilson_interval(successes: int, total: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
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
    ci = sps.binomtest(int(successes), int(total)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def wilson_accuracy_interval(accuracy: float, n_images: int,
                             confidence: float = CONFIDENCE) -> tuple[float, float]:
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


def accuracy_sampling_text(accuracy: float, n_images: int, *, digits: int = 1,
                           confidence: float = CONFIDENCE) -> str:
    """``"Wilson 95% CI [85.5, 86.9] over the 10,000 test images of one model"`` (percent)."""
    low, high = wilson_accuracy_interval(accuracy, n_images, confidence)
    return (f"Wilson {confidence:.0%} CI {interval_text(low, high, digits=digits)} over the "
            f"{int(n_images):,} test images of one model")


# --------------------------------------------------------------------------- sentences


def _num(x: float, digits: int) -> str:
    """``x`` with a typographic minus; a value that rounds to zero is written unsigned."""
    text = f"{x:.{digits}f}"
    if float(text) == 0:
        text = f"{0:.{digits}f}"
    return text.replace("-", "−")


def _signed(x: float, digits: int) -> str:
    """``+1.2`` / ``−1.2`` (never ``+-1.2``); a value that rounds to zero is written ``0.0``."""
    text = f"{x:+.{digits}f}"
    if float(text) == 0:
        text = f"{0:.{digits}f}"
    return text.replace("-", "−")


def _visible(x: float, digits: int, signed: bool) -> str:
    """``x`` with up to two more decimals when it would otherwise round to zero, so that a
    negative difference is never shown as ``0.0`` beside the word "negative"."""
    for d in range(digits, digits + 3):
        text = f"{x:+.{d}f}" if signed else f"{x:.{d}f}"
        if float(text) != 0:
            return text.replace("-", "−")
    return _signed(x, digits) if signed else _num(x, digits)


def format_p(p: float | None) -> str:
    """``"p < 0.001"`` or ``"p = 0.042"``; ``"p n/a"`` when there is no test. Never ``p = 0.000``."""
    if p is None or not math.isfinite(p):
        return "p n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def p_text(p: float | None) -> str:
    """A p-value for a table cell: ``"< 0.001"``, ``"0.042"`` or ``"n/a"``."""
    return format_p(p).removeprefix("p ").removeprefix("= ")


_p = format_p  # the name the sentences below used first


def _sentence(text: str) -> str:
    """Capitalise the first letter (labels such as "baseline CNN" may start a sentence)."""
    return text[:1].upper() + text[1:]


@dataclass(frozen=True)
class Verdict:
    """What :func:`verdict` concluded about B − A, and the sentence that says it.

    ``kind`` is one of ``"no seeds"``, ``"one seed"``, ``"no spread"`` (every seed's
    difference the same: no interval), ``"claimed"`` (a difference is called: "beats"),
    ``"descriptive"`` (the interval excludes zero but there are too few seeds to call it,
    and it is not decisive) and ``"not distinguishable"``.
    """

    kind: str
    sentence: str
    n: int
    mean_diff: float               # B − A, unscaled
    low: float | None              # Student-t interval of the mean difference
    high: float | None
    p_value: float | None          # paired t-test
    p_adjusted: float | None       # Holm-adjusted, when the comparison is one of several exploratory ones
    excludes_zero: bool            # the interval excludes 0 (and, with p_adjusted, adjusted p < 1 - confidence)
    decisive: bool
    positive: int                  # seeds with B − A > 0
    negative: int                  # seeds with B − A < 0
    winner: str | None = None      # the better one's name when a difference is claimed
    min_seeds: int = MIN_SEEDS_FOR_CLAIM

    @property
    def claim(self) -> bool:
        """True when the sentence calls a difference ("beats")."""
        return self.kind == "claimed"

    @property
    def same_sign(self) -> bool:
        """True when every seed's difference points the same way (no ties)."""
        return self.n > 0 and self.n in (self.positive, self.negative)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "claim": self.claim, "same_sign": self.same_sign}


def verdict(comparison: PairedComparison, name_a: str = "A", name_b: str = "B", *,
            metric: str = "accuracy", scale: float = 100.0, unit: str = "points",
            higher_is_better: bool = True, digits: int = 1, p_adjusted: float | None = None,
            min_seeds: int = MIN_SEEDS_FOR_CLAIM) -> Verdict:
    """The one rule that turns B − A over matched seeds into words.

    Parameters
    ----------
    comparison
        :func:`paired_comparison` of A (first) and B.
    name_a, name_b
        How the sentence names A and B.
    metric, scale, unit, digits
        ``metric`` is named in the sentence; values are multiplied by ``scale`` (100 for
        percent) and written in ``unit`` (``"points"``) with ``digits`` decimals.
    higher_is_better
        False for metrics such as NLL, where a drop is a win.
    p_adjusted
        The Holm-adjusted p-value (:func:`holm`) when this is one of several exploratory
        contrasts; the rules below then use it instead of the raw one, and the sentence
        shows both.
    min_seeds
        Fewest matched seeds for which an interval that excludes zero is called a
        difference (default :data:`MIN_SEEDS_FOR_CLAIM`).

    Returns
    -------
    Verdict
        The structured result and its sentence.

    Notes
    -----
    The rules, in order:

    * no matched seed, or one: no interval can be given, and the sentence says so;
    * **no spread** (at least two seeds, every seed's difference the same, ties included):
      the t statistic is undefined and an interval would be the point ``[d, d]``; the
      sentence gives the difference and says "no spread observed, no interval" (never
      ``p = 0`` or ``[d, d]``);
    * **claimed** ("B beats A by ..."): the 95% t interval of the mean difference excludes
      zero (with ``p_adjusted``: the adjusted p-value is also below 0.05) *and* either there
      are at least ``min_seeds`` seeds or the comparison is decisive;
    * **decisive**: the p-value (Holm-adjusted when given) is below :data:`DECISIVE_P`
      (0.001; equivalently the 99.9% t interval excludes zero), there are at least
      :data:`MIN_SEEDS_DECISIVE` (3) seeds, and every seed's difference has the same sign.
      With three seeds the 99.9% t quantile is 31.6, so a decisive difference is far
      outside the seed-to-seed spread that was observed;
    * **descriptive**: the interval excludes zero but there are fewer than ``min_seeds``
      seeds and it is not decisive: the sentence describes the seeds ("B − A is positive
      in all 3 seeds, +0.8 to +1.4 points") and says that this is not a claim;
    * otherwise **not distinguishable**, with the seeds' range; when the differences change
      sign across seeds the sentence says so.

    p-values are written ``p < 0.001`` below 0.001, never ``p = 0.000``; signed numbers
    use a typographic minus and never read ``+-x``.
    """
    if min_seeds < 2:
        raise ValueError(f"min_seeds={min_seeds} is too few; a confidence interval needs at least 2 seeds")
    if p_adjusted is not None and not 0.0 <= p_adjusted <= 1.0:
        raise ValueError(f"p_adjusted={p_adjusted} is not a p-value; pass a value in [0, 1] or None")
    conf = f"{comparison.confidence:.0%}"
    n = comparison.n
    seeds = f"{n} seed{'s' if n != 1 else ''}"
    what = f"{unit} of {metric}" if unit else metric
    diffs = np.asarray(comparison.diffs, np.float64)
    positive, negative = int(np.sum(diffs > 0)), int(np.sum(diffs < 0))
    mean = comparison.mean_diff
    d = mean * scale

    def result(kind: str, text: str, *, excludes: bool = False, decisive: bool = False,
               winner: str | None = None) -> Verdict:
        return Verdict(kind, _sentence(text), n, mean, comparison.low, comparison.high, comparison.p_value,
                       p_adjusted, excludes, decisive, positive, negative, winner, min_seeds)

    if n == 0:
        return result("no seeds", f"{name_a} and {name_b} cannot be compared: they share no seed.")
    if n == 1:
        return result("one seed", f"{name_a} and {name_b} cannot be compared at {conf} with 1 seed: "
                      f"{name_b} − {name_a} = {_signed(d, digits)} {what}, and a confidence interval needs "
                      "at least 2 matched seeds.")
    each = "both seeds" if n == 2 else f"each of the {n} seeds"
    if comparison.no_spread or comparison.low is None:
        if positive == negative == 0:
            return result("no spread", f"{name_a} and {name_b} give the same {metric} in {each}: no spread "
                          "observed, no interval.")
        return result("no spread", f"{name_b} − {name_a} is {_signed(d, digits)} {what} in {each}: no spread "
                      f"observed, no interval (an interval needs differences that vary between seeds), so "
                      f"{name_a} and {name_b} are not compared at {conf}.")

    alpha = 1 - comparison.confidence
    p_rule = comparison.p_value if p_adjusted is None else p_adjusted
    excludes = comparison.distinguishable and (p_adjusted is None or p_adjusted < alpha)
    same_sign = n in (positive, negative)
    decisive = (excludes and p_rule is not None and p_rule < DECISIVE_P and n >= MIN_SEEDS_DECISIVE
                and same_sign)
    low, high = comparison.low * scale, comparison.high * scale
    test = f"paired t-test over {seeds}, {format_p(comparison.p_value)}"
    if p_adjusted is not None:
        test += f", Holm-adjusted {format_p(p_adjusted)}"
    lo_d = _visible(float(diffs.min()) * scale, digits, signed=True)
    hi_d = _visible(float(diffs.max()) * scale, digits, signed=True)
    spread = f"{lo_d} to {hi_d} {what}" if lo_d != hi_d else f"about {lo_d} {what} in each"
    if same_sign:
        every = "both seeds" if n == 2 else f"all {n} seeds"
        seeds_text = f"{name_b} − {name_a} is {'positive' if positive == n else 'negative'} in {every} ({spread})"
    else:
        seeds_text = (f"{name_b} − {name_a} changes sign across seeds ({spread}; positive in {positive}, "
                      f"negative in {negative} of {n})")
    interval = f"{conf} CI [{_visible(low, digits, True)}, {_visible(high, digits, True)}]"

    if excludes and (n >= min_seeds or decisive):
        b_better = (d > 0) == higher_is_better
        winner, loser = (name_b, name_a) if b_better else (name_a, name_b)
        # The winner's improvement (in the metric's good direction) and its interval.
        g = (1 if higher_is_better else -1) * (1 if b_better else -1)
        lo, hi = sorted((g * low, g * high))
        qualifier = "" if n >= min_seeds else (
            f"; decisive with fewer than {min_seeds} seeds: {format_p(p_rule)} and every seed in the same "
            "direction")
        other_way = "" if same_sign else (
            f" The difference goes the other way in {min(positive, negative)} of the {n} seeds.")
        return result("claimed", f"{winner} beats {loser} by {_num(g * d, digits)} {what}, {conf} CI "
                      f"[{_visible(lo, digits, False)}, {_visible(hi, digits, False)}] ({test}{qualifier})."
                      f"{other_way}",
                      excludes=True, decisive=decisive, winner=winner)
    if excludes:
        return result("descriptive", f"{seeds_text}, mean {_signed(d, digits)}, {interval} ({test}); {n} seeds "
                      f"are fewer than the {min_seeds} this report needs to call a difference that is not "
                      "decisive, so this describes the seeds and claims no difference.", excludes=True)
    adjusted = (" once adjusted for the other exploratory contrasts (Holm)"
                if comparison.distinguishable and p_adjusted is not None else "")
    return result("not distinguishable", f"{name_a} and {name_b} are not distinguishable at {conf} with "
                  f"{seeds}{adjusted}: {seeds_text}; mean {_signed(d, digits)}, {interval} ({test}).")


def describe_comparison(comparison: PairedComparison, name_a: str = "A", name_b: str = "B", *,
                        metric: str = "accuracy", scale: float = 100.0, unit: str = "points",
                        higher_is_better: bool = True, digits: int = 1, p_adjusted: float | None = None) -> str:
    """The sentence of :func:`verdict` (same parameters): claims only what the evidence supports."""
    return verdict(comparison, name_a, name_b, metric=metric, scale=scale, unit=unit,
                   higher_is_better=higher_is_better, digits=digits, p_adjusted=p_adjusted).sentence


# --------------------------------------------------------------------------- per-class differences


def per_class_differences(a: pd.DataFrame, b: pd.DataFrame, name_a: str = "A", name_b: str = "B", *,
                          confidence: float = CONFIDENCE) -> pd.DataFrame:
    """Per class, B − A over matched seeds, as exploratory contrasts with Holm-adjusted p-values.

    Parameters
    ----------
    a, b
        Per-class accuracy, rows seeds and columns classes (e.g. ``Report.per_class_accuracy``).
    name_a, name_b
        Names for each class's :func:`verdict` sentence.
    confidence
        Coverage of the t intervals.

    Returns
    -------
    pandas.DataFrame
        Indexed by class: ``mean_diff``, ``low``, ``high``, ``n``, ``p``, ``p_holm`` (Holm
        over the classes), ``verdict`` (the :class:`Verdict` kind), ``sentence`` and
        ``per_seed`` (the differences, seed by seed).
    """
    missing = [c for c in a.columns if c not in b.columns]
    if missing:
        raise ValueError(f"classes {missing} are in A's table but not in B's; pass tables with the same classes")
    comparisons = {c: paired_comparison(a[c].dropna().to_dict(), b[c].dropna().to_dict(), confidence=confidence)
                   for c in a.columns}
    adjusted = dict(zip(comparisons, holm([c.p_value for c in comparisons.values()]), strict=True))
    rows = {}
    for cls, c in comparisons.items():
        v = verdict(c, f"{name_a} on {cls}", f"{name_b} on {cls}", metric="test accuracy",
                    p_adjusted=adjusted[cls])
        rows[cls] = {"mean_diff": c.mean_diff, "low": c.low, "high": c.high, "n": c.n, "p": c.p_value,
                     "p_holm": adjusted[cls], "verdict": v.kind, "sentence": v.sentence, "per_seed": list(c.diffs)}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "class"
    return table


def differences_display(table: pd.DataFrame, *, scale: float = 100.0, digits: int = 1) -> pd.DataFrame:
    """:func:`per_class_differences` (or any table with ``mean_diff``, ``low``, ``high``, ``n``,
    ``p``, ``p_holm``, ``verdict``) as display strings: difference, 95% CI, raw and Holm p."""
    return pd.DataFrame({
        "Δ (points)": [_signed(d * scale, digits) for d in table["mean_diff"]],
        "95% CI": [interval_text(lo, hi, scale=scale, digits=digits, signed=True, missing="no interval")
                   for lo, hi in zip(table["low"], table["high"], strict=True)],
        "seeds": table["n"].astype(int).to_list(),
        "p (paired t)": [p_text(None if pd.isna(p) else p) for p in table["p"]],
        "p (Holm)": [p_text(None if pd.isna(p) else p) for p in table["p_holm"]],
        "verdict": table["verdict"].to_list(),
    }, index=table.index)


def describe_per_class_differences(table: pd.DataFrame, name_a: str = "A", name_b: str = "B", *,
                                   scale: float = 100.0, digits: int = 1) -> str:
    """One sentence on :func:`per_class_differences`: the classes whose difference can be
    called after Holm's adjustment, or that none can; never the largest or smallest of
    noisy values."""
    k, n = len(table), int(table["n"].max()) if len(table) else 0
    head = (f"Per class, {name_b} − {name_a} over {n} matched seed{'s' if n != 1 else ''} is exploratory "
            f"({k} contrasts, Holm-adjusted)")
    claimed = table[table["verdict"] == "claimed"]
    if claimed.empty:
        return _sentence(f"{head}: no class-level difference can be called with these seeds; the table gives "
                         "each class's difference with its interval.")
    parts = [f"{cls} {_signed(r.mean_diff * scale, digits)} points, 95% CI "
             f"{interval_text(r.low, r.high, scale=scale, digits=digits, signed=True)}, Holm {format_p(r.p_holm)}"
             for cls, r in claimed.iterrows()]
    return _sentence(f"{head}: the difference can be called for {len(claimed)} of {k} classes ({'; '.join(parts)}); "
                     "the others cannot be told apart with these seeds.")


def describe_mcnemar(result: McNemarResult, name_a: str = "A", name_b: str = "B", *,
                     alpha: float = 0.05) -> str:
    """One sentence on a McNemar test: who is right more often on the examples they disagree on."""
    counts = (f"{name_a} alone right on {result.a_only}, {name_b} alone right on {result.b_only} "
              f"of {result.discordant} disagreements")
    if result.p_value < alpha:
        winner = name_b if result.b_only > result.a_only else name_a
        loser = name_a if winner == name_b else name_b
        return _sentence(f"{winner} errs less often than {loser} (McNemar, {result.method}, "
                         f"{format_p(result.p_value)}): {counts}.")
    return _sentence(f"{name_a} and {name_b} are not distinguishable by McNemar's test at {1 - alpha:.0%} "
            f"({result.method}, {format_p(result.p_value)}): {counts}.")
