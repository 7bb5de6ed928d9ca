"""Sentences that say only what the numbers support: the one verdict rule for comparing two
arms over matched seeds, per-class differences and McNemar's test in words.

:func:`verdict` is the rule every comparison sentence in the report goes through; its
thresholds (:data:`~cifarkit.evaluation.stats.MIN_SEEDS_FOR_CLAIM` and friends) live beside
the statistics they judge.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from cifarkit.evaluation.stats import (  # noqa: F401 - the names the rule reads
    CONFIDENCE,
    DECISIVE_P,
    EQUIVALENCE_MARGIN,
    MIN_SEEDS_DECISIVE,
    MIN_SEEDS_FOR_CLAIM,
    McNemarResult,
    PairedComparison,
    holm,
    interval_text,
    paired_comparison,
)

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


def _sentence(text: str) -> str:
    """Capitalise the first letter (labels such as "baseline CNN" may start a sentence)."""
    return text[:1].upper() + text[1:]


@dataclass(frozen=True)
class Verdict:
    """What :func:`verdict` concluded about B − A, and the sentence that says it.

    ``kind`` is one of ``"no seeds"``, ``"one seed"``, ``"no spread"`` (every seed's
    difference the same: no interval), ``"claimed"`` (a difference is called: "beats"),
    ``"descriptive"`` (the interval excludes zero but there are too few seeds to call it,
    and it is not decisive), ``"bounded"`` (the interval includes zero and lies inside the
    equivalence margin: any difference is smaller than ``bound``) and ``"not distinguishable"``.
    """

    kind: str
    sentence: str
    n: int
    mean_diff: float  # B − A, unscaled
    low: float | None  # Student-t interval of the mean difference
    high: float | None
    p_value: float | None  # paired t-test
    p_adjusted: (
        float | None
    )  # Holm-adjusted, when the comparison is one of several exploratory ones
    excludes_zero: (
        bool  # the interval excludes 0 (and, with p_adjusted, adjusted p < 1 - confidence)
    )
    decisive: bool
    positive: int  # seeds with B − A > 0
    negative: int  # seeds with B − A < 0
    winner: str | None = None  # the better one's name when a difference is claimed
    min_seeds: int = MIN_SEEDS_FOR_CLAIM
    bound: float | None = None  # "bounded": the largest |B − A| the interval allows, unscaled

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


def verdict(
    comparison: PairedComparison,
    name_a: str = "A",
    name_b: str = "B",
    *,
    metric: str = "accuracy",
    scale: float = 100.0,
    unit: str = "points",
    higher_is_better: bool = True,
    digits: int = 1,
    p_adjusted: float | None = None,
    min_seeds: int = MIN_SEEDS_FOR_CLAIM,
    margin: float = EQUIVALENCE_MARGIN,
) -> Verdict:
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
    margin
        Equivalence margin, unscaled (default :data:`EQUIVALENCE_MARGIN`, 1.5 points of
        accuracy): an interval that includes zero and lies inside ±margin bounds the effect.

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
    * **bounded** (the interval includes zero and lies inside ±``margin``, with at least
      ``min_seeds`` seeds): "any difference is smaller than X", X the interval's larger end
      rounded up. A bounded null is an answer: the effect, if any, is too small to matter at
      this budget. With fewer seeds the same interval is described, not claimed;
    * otherwise **not distinguishable**, with the seeds' range; when the differences change
      sign across seeds the sentence says so.

    p-values are written ``p < 0.001`` below 0.001, never ``p = 0.000``; signed numbers
    use a typographic minus and never read ``+-x``.
    """
    if min_seeds < 2:
        raise ValueError(
            f"min_seeds={min_seeds} is too few; a confidence interval needs at least 2 seeds"
        )
    if p_adjusted is not None and not 0.0 <= p_adjusted <= 1.0:
        raise ValueError(
            f"p_adjusted={p_adjusted} is not a p-value; pass a value in [0, 1] or None"
        )
    conf = f"{comparison.confidence:.0%}"
    n = comparison.n
    seeds = f"{n} seed{'s' if n != 1 else ''}"
    what = f"{unit} of {metric}" if unit else metric
    diffs = np.asarray(comparison.diffs, np.float64)
    positive, negative = int(np.sum(diffs > 0)), int(np.sum(diffs < 0))
    mean = comparison.mean_diff
    d = mean * scale

    def result(
        kind: str,
        text: str,
        *,
        excludes: bool = False,
        decisive: bool = False,
        winner: str | None = None,
        bound: float | None = None,
    ) -> Verdict:
        return Verdict(
            kind,
            _sentence(text),
            n,
            mean,
            comparison.low,
            comparison.high,
            comparison.p_value,
            p_adjusted,
            excludes,
            decisive,
            positive,
            negative,
            winner,
            min_seeds,
            bound,
        )

    if n == 0:
        return result("no seeds", f"{name_a} and {name_b} cannot be compared: they share no seed.")
    if n == 1:
        return result(
            "one seed",
            f"{name_a} and {name_b} cannot be compared at {conf} with 1 seed: "
            f"{name_b} − {name_a} = {_signed(d, digits)} {what}, and a confidence interval needs "
            "at least 2 matched seeds.",
        )
    each = "both seeds" if n == 2 else f"each of the {n} seeds"
    if comparison.no_spread or comparison.low is None:
        if positive == negative == 0:
            return result(
                "no spread",
                f"{name_a} and {name_b} give the same {metric} in {each}: no spread "
                "observed, no interval.",
            )
        return result(
            "no spread",
            f"{name_b} − {name_a} is {_signed(d, digits)} {what} in {each}: no spread "
            f"observed, no interval (an interval needs differences that vary between seeds), so "
            f"{name_a} and {name_b} are not compared at {conf}.",
        )

    alpha = 1 - comparison.confidence
    p_rule = comparison.p_value if p_adjusted is None else p_adjusted
    excludes = comparison.distinguishable and (p_adjusted is None or p_adjusted < alpha)
    same_sign = n in (positive, negative)
    decisive = (
        excludes
        and p_rule is not None
        and p_rule < DECISIVE_P
        and n >= MIN_SEEDS_DECISIVE
        and same_sign
    )
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
        seeds_text = (
            f"{name_b} − {name_a} changes sign across seeds ({spread}; positive in {positive}, "
            f"negative in {negative} of {n})"
        )
    interval = f"{conf} CI [{_visible(low, digits, True)}, {_visible(high, digits, True)}]"

    if excludes and (n >= min_seeds or decisive):
        b_better = (d > 0) == higher_is_better
        winner, loser = (name_b, name_a) if b_better else (name_a, name_b)
        # The winner's improvement (in the metric's good direction) and its interval.
        g = (1 if higher_is_better else -1) * (1 if b_better else -1)
        lo, hi = sorted((g * low, g * high))
        qualifier = (
            ""
            if n >= min_seeds
            else (
                f"; decisive with fewer than {min_seeds} seeds: {format_p(p_rule)} and every seed in the same "
                "direction"
            )
        )
        other_way = (
            ""
            if same_sign
            else (
                f" The difference goes the other way in {min(positive, negative)} of the {n} seeds."
            )
        )
        return result(
            "claimed",
            f"{winner} beats {loser} by {_num(g * d, digits)} {what}, {conf} CI "
            f"[{_visible(lo, digits, False)}, {_visible(hi, digits, False)}] ({test}{qualifier})."
            f"{other_way}",
            excludes=True,
            decisive=decisive,
            winner=winner,
        )
    if excludes:
        return result(
            "descriptive",
            f"{seeds_text}, mean {_signed(d, digits)}, {interval} ({test}); {n} seeds "
            f"are fewer than the {min_seeds} this report needs to call a difference that is not "
            "decisive, so this describes the seeds and claims no difference.",
            excludes=True,
        )
    widest = max(abs(comparison.low), abs(comparison.high))
    if widest < margin:
        # Rounded up, so "smaller than X" holds for the unrounded interval too.
        bound = math.ceil(widest * scale * 10**digits) / 10**digits
        within = f"any difference in {metric} is smaller than {_num(bound, digits)} {unit}"
        if n >= min_seeds:
            return result(
                "bounded",
                f"{name_a} and {name_b} are equivalent within {_num(margin * scale, digits)} "
                f"{unit}: {within} ({interval}, {test}); {seeds_text}.",
                bound=bound / scale,
            )
        within = (
            f"{seeds_text}; mean {_signed(d, digits)}, {interval} ({test}); the interval bounds the "
            f"difference below {_num(bound, digits)} {unit}, but {n} seeds are fewer than the {min_seeds} "
            "this report needs to state a bound, so this describes the seeds"
        )
        return result(
            "not distinguishable",
            f"{name_a} and {name_b} are not distinguishable at {conf} with {seeds}: {within}.",
        )
    adjusted = (
        " once adjusted for the other exploratory contrasts (Holm)"
        if comparison.distinguishable and p_adjusted is not None
        else ""
    )
    return result(
        "not distinguishable",
        f"{name_a} and {name_b} are not distinguishable at {conf} with "
        f"{seeds}{adjusted}: {seeds_text}; mean {_signed(d, digits)}, {interval} ({test}).",
    )


def describe_comparison(
    comparison: PairedComparison,
    name_a: str = "A",
    name_b: str = "B",
    *,
    metric: str = "accuracy",
    scale: float = 100.0,
    unit: str = "points",
    higher_is_better: bool = True,
    digits: int = 1,
    p_adjusted: float | None = None,
) -> str:
    """The sentence of :func:`verdict` (same parameters): claims only what the evidence supports."""
    return verdict(
        comparison,
        name_a,
        name_b,
        metric=metric,
        scale=scale,
        unit=unit,
        higher_is_better=higher_is_better,
        digits=digits,
        p_adjusted=p_adjusted,
    ).sentence


# --------------------------------------------------------------------------- per-class differences


def per_class_differences(
    a: pd.DataFrame,
    b: pd.DataFrame,
    name_a: str = "A",
    name_b: str = "B",
    *,
    confidence: float = CONFIDENCE,
) -> pd.DataFrame:
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
        raise ValueError(
            f"classes {missing} are in A's table but not in B's; pass tables with the same classes"
        )
    comparisons = {
        c: paired_comparison(
            a[c].dropna().to_dict(), b[c].dropna().to_dict(), confidence=confidence
        )
        for c in a.columns
    }
    adjusted = dict(zip(comparisons, holm([c.p_value for c in comparisons.values()]), strict=True))
    rows = {}
    for cls, c in comparisons.items():
        v = verdict(
            c,
            f"{name_a} on {cls}",
            f"{name_b} on {cls}",
            metric="test accuracy",
            p_adjusted=adjusted[cls],
        )
        rows[cls] = {
            "mean_diff": c.mean_diff,
            "low": c.low,
            "high": c.high,
            "n": c.n,
            "p": c.p_value,
            "p_holm": adjusted[cls],
            "verdict": v.kind,
            "sentence": v.sentence,
            "per_seed": list(c.diffs),
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "class"
    return table


def differences_display(
    table: pd.DataFrame, *, scale: float = 100.0, digits: int = 1
) -> pd.DataFrame:
    """:func:`per_class_differences` (or any table with ``mean_diff``, ``low``, ``high``, ``n``,
    ``p``, ``p_holm``, ``verdict``) as display strings: difference, 95% CI, raw and Holm p."""
    return pd.DataFrame(
        {
            "Δ (points)": [_signed(d * scale, digits) for d in table["mean_diff"]],
            "95% CI": [
                interval_text(
                    lo, hi, scale=scale, digits=digits, signed=True, missing="no interval"
                )
                for lo, hi in zip(table["low"], table["high"], strict=True)
            ],
            "seeds": table["n"].astype(int).to_list(),
            "p (paired t)": [p_text(None if pd.isna(p) else p) for p in table["p"]],
            "p (Holm)": [p_text(None if pd.isna(p) else p) for p in table["p_holm"]],
            "verdict": table["verdict"].to_list(),
        },
        index=table.index,
    )


def describe_per_class_differences(
    table: pd.DataFrame,
    name_a: str = "A",
    name_b: str = "B",
    *,
    scale: float = 100.0,
    digits: int = 1,
) -> str:
    """One sentence on :func:`per_class_differences`: the classes whose difference can be
    called after Holm's adjustment, or that none can; never the largest or smallest of
    noisy values."""
    k, n = len(table), int(table["n"].max()) if len(table) else 0
    head = (
        f"Per class, {name_b} − {name_a} over {n} matched seed{'s' if n != 1 else ''} is exploratory "
        f"({k} contrasts, Holm-adjusted)"
    )
    claimed = table[table["verdict"] == "claimed"]
    if claimed.empty:
        return _sentence(
            f"{head}: no class-level difference can be called with these seeds; the table gives "
            "each class's difference with its interval."
        )
    parts = [
        f"{cls} {_signed(r.mean_diff * scale, digits)} points, 95% CI "
        f"{interval_text(r.low, r.high, scale=scale, digits=digits, signed=True)}, Holm {format_p(r.p_holm)}"
        for cls, r in claimed.iterrows()
    ]
    return _sentence(
        f"{head}: the difference can be called for {len(claimed)} of {k} classes ({'; '.join(parts)}); "
        "the others cannot be told apart with these seeds."
    )


def describe_mcnemar(
    result: McNemarResult, name_a: str = "A", name_b: str = "B", *, alpha: float = 0.05
) -> str:
    """One sentence on a McNemar test: who is right more often on the examples they disagree on."""
    counts = (
        f"{name_a} alone right on {result.a_only}, {name_b} alone right on {result.b_only} "
        f"of {result.discordant} disagreements"
    )
    if result.p_value < alpha:
        winner = name_b if result.b_only > result.a_only else name_a
        loser = name_a if winner == name_b else name_b
        return _sentence(
            f"{winner} errs less often than {loser} (McNemar, {result.method}, "
            f"{format_p(result.p_value)}): {counts}."
        )
    return _sentence(
        f"{name_a} and {name_b} are not distinguishable by McNemar's test at {1 - alpha:.0%} "
        f"({result.method}, {format_p(result.p_value)}): {counts}."
    )
