"""Statistics across seeds: how sure is each number, and is one configuration really better?

* :func:`summarise` — mean, standard deviation (n-1) and the 95% Student-t confidence
  interval of the mean of a metric over seeds (with one seed: no interval, and it says so);
  :func:`summarise_table`, :func:`per_class_summary` and :func:`curve_summary` apply it to
  many metrics, to classes and to training curves epoch by epoch;
* :func:`paired_comparison` — two configurations over *matched* seeds: paired t-test and a
  t interval of the mean difference, plus a seeded bootstrap interval;
* :func:`mcnemar` — McNemar's test on per-example correctness of two runs on the same test
  set (exact binomial for few discordant examples, chi-squared with continuity correction
  otherwise);
* :func:`describe_comparison` / :func:`describe_mcnemar` — one sentence whose wording
  follows the evidence.
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
                  confidence: float = CONFIDENCE) -> pd.DataFrame:
    """A history column (e.g. ``val_accuracy``) across seeds, epoch by epoch: ``mean``, ``low``,
    ``high`` (Student-t band, NaN where fewer than 2 seeds reach the epoch) and ``n``."""
    by_epoch: dict[int, list[float]] = {}
    for history in histories:
        for i, row in enumerate(history):
            value = row.get(column)
            if value is not None:
                by_epoch.setdefault(int(row.get("epoch", i + 1)), []).append(float(value))
    rows = []
    for epoch in sorted(by_epoch):
        s = summarise(by_epoch[epoch], confidence)
        rows.append({"epoch": epoch, "mean": s.mean, "low": s.low, "high": s.high, "n": s.n})
    return pd.DataFrame(rows, columns=["epoch", "mean", "low", "high", "n"]).astype(
        {"mean": float, "low": float, "high": float}).set_index("epoch")


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


@dataclass(frozen=True)
class PairedComparison:
    """B − A over matched seeds: mean difference, t interval and test, bootstrap interval."""

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
    def distinguishable(self) -> bool:
        """True when the t interval of B − A excludes 0."""
        return self.low is not None and (self.low > 0 or self.high < 0)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(n=self.n, distinguishable=self.distinguishable, seeds=list(self.seeds),
                   a=list(self.a), b=list(self.b))
        return out


def paired_comparison(a: Mapping[Any, float] | Sequence[float], b: Mapping[Any, float] | Sequence[float], *,
                      confidence: float = CONFIDENCE, n_boot: int = 10_000, seed: int = 0) -> PairedComparison:
    """Compare configuration B with A on matched seeds (B − A).

    ``a`` and ``b`` are either mappings seed → value (only seeds present in both are used)
    or equal-length sequences whose i-th entries share a seed.
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
    t_stat = p = None
    interval = t_interval(diff, confidence)
    if len(diff) >= 2:
        if np.ptp(diff) <= 1e-12 * max(1.0, float(np.abs(diff).max())):
            # No spread (up to rounding): the t statistic is undefined (0/0 or ±inf).
            t_stat, p = (0.0, 1.0) if mean == 0 else (math.copysign(math.inf, mean), 0.0)
        else:
            result = sps.ttest_rel(xb, xa)
            t_stat, p = float(result.statistic), float(result.pvalue)
    boot = bootstrap_mean_ci(diff, confidence, n_boot, seed)
    return PairedComparison(
        seeds=seeds, a=tuple(map(float, xa)), b=tuple(map(float, xb)), mean_diff=mean,
        low=interval[0] if interval else None, high=interval[1] if interval else None,
        t_statistic=t_stat, p_value=p,
        boot_low=boot[0] if boot else None, boot_high=boot[1] if boot else None, confidence=confidence)


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


# --------------------------------------------------------------------------- sentences


def _num(x: float, digits: int) -> str:
    return f"{x:.{digits}f}".replace("-", "−")


def _p(p: float | None) -> str:
    if p is None:
        return "p n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _sentence(text: str) -> str:
    """Capitalise the first letter (labels such as "baseline CNN" may start a sentence)."""
    return text[:1].upper() + text[1:]


def describe_comparison(comparison: PairedComparison, name_a: str = "A", name_b: str = "B", *,
                        metric: str = "accuracy", scale: float = 100.0, unit: str = "points",
                        higher_is_better: bool = True, digits: int = 1) -> str:
    """One sentence that claims only what the evidence supports.

    * interval of B − A excludes 0: ``"B beats A by 3.1 points of accuracy, 95% CI [2.4, 3.8]
      (paired t-test over 3 seeds, p = 0.004)."`` (the better one named first; for metrics
      where lower is better, such as NLL, pass ``higher_is_better=False``);
    * interval includes 0: ``"A and B are not distinguishable at 95% with 3 seeds: B − A =
      +0.4 points of accuracy, 95% CI [−1.2, 2.0] (p = 0.41)."``;
    * fewer than 2 matched seeds: says that no interval can be given.
    """
    conf = f"{comparison.confidence:.0%}"
    n = comparison.n
    seeds = f"{n} seed{'s' if n != 1 else ''}"
    what = f"{unit} of {metric}" if unit else metric
    d = comparison.mean_diff * scale
    if n < 2:
        diff = "no difference measured" if n == 0 else f"{name_b} − {name_a} = {'+' if d >= 0 else ''}{_num(d, digits)} {what}"
        return _sentence(f"{name_a} and {name_b} cannot be compared at {conf} with {seeds}: {diff}, and a "
                f"confidence interval needs at least 2 matched seeds.")
    low, high = comparison.low * scale, comparison.high * scale
    if comparison.distinguishable:
        b_better = (d > 0) == higher_is_better
        winner, loser = (name_b, name_a) if b_better else (name_a, name_b)
        # The winner's improvement (in the metric's good direction) and its interval.
        g = (1 if higher_is_better else -1) * (1 if b_better else -1)
        lo, hi = sorted((g * low, g * high))
        return _sentence(f"{winner} beats {loser} by {_num(g * d, digits)} {what}, {conf} CI "
                f"[{_num(lo, digits)}, {_num(hi, digits)}] (paired t-test over {seeds}, "
                f"{_p(comparison.p_value)}).")
    return _sentence(f"{name_a} and {name_b} are not distinguishable at {conf} with {seeds}: "
            f"{name_b} − {name_a} = {'+' if d >= 0 else ''}{_num(d, digits)} {what}, {conf} CI "
            f"[{_num(low, digits)}, {_num(high, digits)}] ({_p(comparison.p_value)}).")


def describe_mcnemar(result: McNemarResult, name_a: str = "A", name_b: str = "B", *,
                     alpha: float = 0.05) -> str:
    """One sentence on a McNemar test: who is right more often on the examples they disagree on."""
    counts = (f"{name_a} alone right on {result.a_only}, {name_b} alone right on {result.b_only} "
              f"of {result.discordant} disagreements")
    if result.p_value < alpha:
        winner = name_b if result.b_only > result.a_only else name_a
        loser = name_a if winner == name_b else name_b
        return _sentence(f"{winner} errs less often than {loser} (McNemar, {result.method}, {_p(result.p_value)}): {counts}.")
    return _sentence(f"{name_a} and {name_b} are not distinguishable by McNemar's test at {1 - alpha:.0%} "
            f"({result.method}, {_p(result.p_value)}): {counts}.")
