"""The introduction's findings: sentences built from the runs, never typed by hand.

Each function takes the objects the chapters compute (:class:`cifarkit.studies.variants.Comparison`
and friends) and returns one sentence that claims only what their confidence intervals
support, through :func:`cifarkit.evaluation.verdicts.verdict`. The ablation finding reads each
group's *declared* primary comparison, never the largest of many effects (picking the
largest of several noisy differences overstates it). The introduction executes after the
other chapters, so every run it reads is already in the store (it never trains:
``train=False``).
"""

from __future__ import annotations

from collections.abc import Mapping

from cifarkit.studies.variants import Comparison, recipe_differences


def headline(comparison: Comparison, model: str, baseline: str) -> str:
    """"ResNet20 reaches 83.4% (95% CI [..] over 3 seeds; Wilson ... over the test images of one
    model) test accuracy; the baseline CNN, whose config differs in ..., reaches ..."

    Parameters
    ----------
    comparison
        The baseline chapter's comparison (``baseline`` is its reference).
    model, baseline
        Labels of the two variants.

    Returns
    -------
    str
        Both accuracies with what their intervals cover, what the two configs set
        differently (when the comparison holds the configs), and the verdict on the
        difference.
    """
    differs = ""
    if model in comparison.configs and baseline in comparison.configs:
        differs = " " + recipe_differences(comparison.configs[model], comparison.configs[baseline], model, baseline)
    return (f"{model} reaches {comparison.accuracy_text(model)} test accuracy; "
            f"the {baseline} reaches {comparison.accuracy_text(baseline)}.{differs} "
            f"{comparison.sentence(model)}")


def seed_spread(comparison: Comparison, model: str) -> str:
    """How much the test accuracy moves between seeds, against the first attempt's 44-49%."""
    values = comparison.per_seed[model].dropna() * 100
    if len(values) < 2:
        return f"{model} was trained with one seed only, so its seed-to-seed spread is not measured."
    return (f"Between seeds, {model}'s test accuracy ranges from {values.min():.1f}% to {values.max():.1f}% "
            f"(standard deviation {values.std(ddof=1):.2f} points over {len(values)} seeds), against the "
            f"five-point spread (44-49%) of the first attempt's repeated runs.")


def primary_ablation_effects(comparisons: Mapping[str, Comparison]) -> str:
    """One sentence per ablation group on its declared primary comparison, then how many
    contrasts were exploratory.

    Parameters
    ----------
    comparisons
        :func:`cifarkit.studies.ablations.run_ablations` output (group → comparison).

    Returns
    -------
    str
        ``"Augmentation (primary: ...): <verdict>. Schedule (primary: ...): <verdict>. ... The
        other k contrasts are exploratory (Holm-adjusted in the chapter)."``
    """
    parts, exploratory = [], 0
    for group, comparison in comparisons.items():
        label = comparison.primary_label
        exploratory += len(comparison.exploratory)
        if label is None:
            parts.append(f"{group.capitalize()}: no primary comparison was declared.")
            continue
        reference = comparison.reference_of(label)
        parts.append(f"{group.capitalize()} (primary: {label} against {reference}): "
                     f"{comparison.verdict(label).sentence}")
    if not parts:
        return "No ablation group was run."
    if exploratory:
        parts.append(f"The other {exploratory} contrasts are exploratory; the chapter reports them with "
                     "Holm-adjusted p-values.")
    return " ".join(parts)
