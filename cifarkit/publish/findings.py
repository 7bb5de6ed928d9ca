"""The introduction's findings: sentences built from the runs, never typed by hand.

Each function takes the objects the chapters compute (:class:`cifarkit.studies.variants.Comparison`
and friends) and returns one sentence that claims only what their confidence intervals
support. The introduction executes after the other chapters, so every run it reads is
already in the store (it never trains: ``train=False``).
"""

from __future__ import annotations

from collections.abc import Mapping

from cifarkit.evaluation import stats
from cifarkit.studies.variants import Comparison


def headline(comparison: Comparison, model: str, baseline: str) -> str:
    """"ResNet20 reaches 83.4% test accuracy (95% CI [..]) over 3 seeds; the baseline CNN ..."""
    def one(label: str) -> str:
        s = comparison.summary.loc[label]
        ci = ("95% CI " + stats.interval_text(s["low"], s["high"], digits=1) if s["n"] > 1
              else "one seed, no CI")
        return f"{s['mean'] * 100:.1f}% ({ci})"

    n = int(comparison.summary.loc[model, "n"])
    return (f"{model} reaches {one(model)} test accuracy over {n} seed{'s' if n != 1 else ''}; "
            f"the {baseline} trained with the same recipe reaches {one(baseline)}. "
            f"{comparison.sentence(model)}")


def seed_spread(comparison: Comparison, model: str) -> str:
    """How much the test accuracy moves between seeds, against the first attempt's 44-49%."""
    values = comparison.per_seed[model].dropna() * 100
    if len(values) < 2:
        return f"{model} was trained with one seed only, so its seed-to-seed spread is not measured."
    return (f"Between seeds, {model}'s test accuracy ranges from {values.min():.1f}% to {values.max():.1f}% "
            f"(standard deviation {values.std(ddof=1):.2f} points over {len(values)} seeds), against the "
            f"five-point spread (44-49%) of the first attempt's repeated runs.")


def largest_ablation_effect(comparisons: Mapping[str, Comparison]) -> str:
    """The ablation whose difference to its reference is largest among the distinguishable ones."""
    best = None
    for group, comparison in comparisons.items():
        for label, effect in comparison.paired.items():
            if effect.distinguishable and (best is None or abs(effect.mean_diff) > abs(best[2].mean_diff)):
                best = (group, label, effect, comparison)
    if best is None:
        total = sum(len(c.paired) for c in comparisons.values())
        return (f"None of the {total} ablation variants differs from its reference by more than the seed-to-seed "
                "noise at 95% confidence with this budget.")
    group, label, _, comparison = best
    return f"The largest measured effect in the ablations ({group}): {comparison.sentence(label)}"
