"""Power in the plan: what each chapter's primary comparison can detect, stated before training.

Every chapter asks one declared question (its *primary comparison*: two configs over matched
seeds). Before anything trains, the plan states for each: the seeds, the seed-to-seed spread
of the paired difference it expects, the smallest difference it would detect (paired t-test,
two-sided 5%, power 80%) and the half-width of the 95% interval it expects, so whether the
comparison can end in a verdict — a difference called, or an effect bounded inside the
report's equivalence margin (:data:`~cifarkit.evaluation.stats.EQUIVALENCE_MARGIN`) — is
known at design time, not discovered in the book.

The spread comes from stored runs of the same two configs (paired over their common seeds,
at least three), else from :data:`PILOT_SD`, a stated design assumption. A comparison with
fewer seeds than the report's rule needs, or whose expected interval is wider than the
margin (so a null could be neither called nor bounded), is a **design error** that the plan
prints.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from scipy import optimize
from scipy import stats as sps

from cifarkit.core.config import ExperimentConfig, load_config
from cifarkit.evaluation.stats import CONFIDENCE, EQUIVALENCE_MARGIN, MIN_SEEDS_FOR_CLAIM

#: Seed-to-seed standard deviation of a paired accuracy difference assumed where no stored
#: runs measure it: 1.0 point, the upper end of what two short CPU runs of one recipe differ
#: by across seeds (a pilot estimate; stored runs replace it as soon as three seeds exist).
PILOT_SD = 0.010
POWER = 0.8
MIN_SEEDS_FOR_SPREAD = 3


@dataclass(frozen=True)
class Primary:
    """One chapter's primary comparison: ``variant`` against ``reference`` over ``seeds``."""

    chapter: str
    label: str
    reference: ExperimentConfig
    variant: ExperimentConfig
    seeds: tuple[int, ...]


def primaries(profile: str, params: Mapping[str, Mapping[str, Any]] | None = None) -> list[Primary]:
    """The primary comparison of every chapter that trains, under ``profile`` (``params``:
    chapter -> its parameters, as ``cifarkit plan --chapter NAME --params``)."""
    from cifarkit.data.identity import data_hash_for
    from cifarkit.runs import locate
    from cifarkit.studies import ablations, ladder, transfer
    from cifarkit.studies.variants import seed_list

    params = params or {}
    out: list[Primary] = []
    cnn, resnet = load_config("baseline_cnn", profile), load_config("resnet20", profile)
    n = params.get("baseline", {}).get("seeds") or resnet.seeds
    out.append(
        Primary("baseline", "ResNet20 against the baseline CNN", cnn, resnet, tuple(range(n)))
    )

    plan = ablations.chapter_plan(profile, **params.get("ablations", {}))
    for group in plan.groups:
        reference, variant = plan.primary(group)
        configs = plan.configs(group)
        out.append(
            Primary(
                "ablations",
                f"{group}: {variant} against {reference}",
                configs[reference],
                configs[variant],
                tuple(seed_list(plan.seeds)),
            )
        )

    study = transfer.study_plan(profile, **params.get("transfer", {}))
    source = transfer.source_config(study)
    source_run = locate(source, 0, data_hash_for(source.data)).path.name
    random_probe, probe = (
        transfer.target_config(study, s, study.probe_size, source_run) for s in transfer.PRIMARY
    )
    out.append(
        Primary(
            "transfer",
            "linear probe on A's features against random features",
            random_probe,
            probe,
            tuple(study.seeds),
        )
    )

    chapter = ladder.chapter_ladder(profile, **params.get("fast_training", {}))
    steps = list(ladder.ladder_configs(profile, chapter.budget).values())
    out.append(
        Primary(
            "fast_training",
            "the full recipe against the plain net",
            steps[0],
            steps[-1],
            tuple(seed_list(chapter.seeds)),
        )
    )
    return out


def stored_spread(
    reference: ExperimentConfig, variant: ExperimentConfig, seeds: int = 20
) -> tuple[float, int] | None:
    """Standard deviation of variant − reference test accuracy over the stored seeds both have
    (among the first ``seeds``), and how many; None below :data:`MIN_SEEDS_FOR_SPREAD`."""
    from cifarkit.data.identity import data_hash_for
    from cifarkit.runs import locate

    diffs = []
    hash_a, hash_b = data_hash_for(reference.data), data_hash_for(variant.data)
    for seed in range(seeds):
        a, b = locate(reference, seed, hash_a), locate(variant, seed, hash_b)
        if a.complete and b.complete:
            acc_a, acc_b = (
                a.status_record().get("test_accuracy"),
                b.status_record().get("test_accuracy"),
            )
            if acc_a is not None and acc_b is not None:
                diffs.append(float(acc_b) - float(acc_a))
    if len(diffs) < MIN_SEEDS_FOR_SPREAD:
        return None
    return float(pd.Series(diffs).std(ddof=1)), len(diffs)


def detectable_difference(
    sd: float, n: int, power: float = POWER, alpha: float = 1 - CONFIDENCE
) -> float:
    """Smallest true mean difference a two-sided paired t-test over ``n`` seeds detects with
    ``power``, for a paired difference of standard deviation ``sd`` (noncentral t).

    statsmodels' ``TTestPower.solve_power`` computes the same; scipy's noncentral t, already a
    dependency, is enough for this one case.
    """
    if n < 2 or sd <= 0:
        return math.inf if n < 2 else 0.0
    df = n - 1
    crit = sps.t.ppf(1 - alpha / 2, df)

    def shortfall(effect: float) -> float:
        nc = effect * math.sqrt(n) / sd
        reached = float(sps.nct.sf(crit, df, nc) + sps.nct.cdf(-crit, df, nc))
        return (1.0 if math.isnan(reached) else reached) - power

    # At this effect the noncentrality is well past the critical value: power is near 1.
    upper = (crit + 10) * sd / math.sqrt(n)
    return float(optimize.brentq(shortfall, 1e-12, upper))


def expected_half_width(sd: float, n: int, confidence: float = CONFIDENCE) -> float:
    """Expected half-width of the ``confidence`` t interval of the mean paired difference."""
    if n < 2:
        return math.inf
    return float(sps.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n))


def power_table(items: list[Primary]) -> pd.DataFrame:
    """One row per primary comparison: seeds, expected spread (and where it comes from), the
    smallest detectable difference, the expected interval half-width, and the design verdict."""
    rows = []
    for p in items:
        stored = stored_spread(p.reference, p.variant)
        sd, source = (
            (stored[0], f"stored runs ({stored[1]} seeds)")
            if stored
            else (PILOT_SD, "pilot estimate")
        )
        n = len(p.seeds)
        mdd, half = detectable_difference(sd, n), expected_half_width(sd, n)
        problems = []
        if n < MIN_SEEDS_FOR_CLAIM:
            problems.append(
                f"{n} seeds, fewer than the {MIN_SEEDS_FOR_CLAIM} the report's rule needs"
            )
        if half >= EQUIVALENCE_MARGIN:
            problems.append(
                f"expected interval ±{half * 100:.1f} points is wider than the ±"
                f"{EQUIVALENCE_MARGIN * 100:.1f} margin, so a null could not be bounded"
            )
        rows.append(
            {
                "chapter": p.chapter,
                "primary comparison": p.label,
                "seeds": n,
                "sd of difference (points)": round(sd * 100, 2),
                "spread from": source,
                "detectable (points)": round(mdd * 100, 1),
                "95% CI ± (points)": round(half * 100, 1),
                "design": "; ".join(problems) or "powered",
            }
        )
    return pd.DataFrame(rows)


def design_errors(table: pd.DataFrame) -> list[str]:
    """One line per primary comparison the plan cannot power."""
    bad = table[table["design"] != "powered"]
    return [
        f"design error: {r['chapter']} ({r['primary comparison']}): {r['design']}"
        for _, r in bad.iterrows()
    ]


def power_text(table: pd.DataFrame) -> str:
    """The sentence under the table: the test, the power, and where the spread came from."""
    return (
        f"Smallest difference each primary comparison detects with a two-sided paired t-test at "
        f"{1 - CONFIDENCE:.0%} and {POWER:.0%} power; the spread of the paired difference comes from "
        f"stored runs of the same two configs where {MIN_SEEDS_FOR_SPREAD} or more seeds exist, else from "
        f"a stated pilot estimate of {PILOT_SD * 100:.1f} points. A null result is bounded when its interval "
        f"lies inside ±{EQUIVALENCE_MARGIN * 100:.1f} points."
    )


def plan_power(
    profile: str,
    chapter: str | None = None,
    params: Mapping[str, Any] | None = None,
    chapters: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """The power table of a build (every chapter, or ``chapter`` with its ``params``, or only
    ``chapters``) and its design-error lines, as the study plan prints them."""
    items = primaries(profile, {chapter: dict(params or {})} if chapter else None)
    items = [
        p
        for p in items
        if (chapter is None or p.chapter == chapter) and (chapters is None or p.chapter in chapters)
    ]
    table = power_table(items)
    return table, design_errors(table)
