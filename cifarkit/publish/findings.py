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
from typing import Any

from cifarkit.evaluation.verdicts import Verdict, verdict
from cifarkit.studies.ladder import Ladder
from cifarkit.studies.variants import Comparison, recipe_differences


def headline(comparison: Comparison, model: str, baseline: str) -> str:
    """ "ResNet20 reaches 83.4% (95% CI [..] over 3 seeds; Wilson ... over the test images of one
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
        differs = " " + recipe_differences(
            comparison.configs[model], comparison.configs[baseline], model, baseline
        )
    return (
        f"{model} reaches {comparison.accuracy_text(model)} test accuracy; "
        f"the {baseline} reaches {comparison.accuracy_text(baseline)}.{differs} "
        f"{comparison.sentence(model)}"
    )


def seed_spread(comparison: Comparison, model: str) -> str:
    """How much the test accuracy moves between seeds, against the first attempt's 44-49%."""
    values = comparison.per_seed[model].dropna() * 100
    if len(values) < 2:
        return (
            f"{model} was trained with one seed only, so its seed-to-seed spread is not measured."
        )
    return (
        f"Between seeds, {model}'s test accuracy ranges from {values.min():.1f}% to {values.max():.1f}% "
        f"(standard deviation {values.std(ddof=1):.2f} points over {len(values)} seeds), against the "
        f"five-point spread (44-49%) of the first attempt's repeated runs."
    )


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
        parts.append(
            f"{group.capitalize()} (primary: {label} against {reference}): "
            f"{comparison.verdict(label).sentence}"
        )
    if not parts:
        return "No ablation group was run."
    if exploratory:
        parts.append(
            f"The other {exploratory} contrasts are exploratory; the chapter reports them with "
            "Holm-adjusted p-values."
        )
    return " ".join(parts)


# --------------------------------------------------------------------------- plain answers
#
# The sentences a chapter opens with: which one wins, by how much and how sure, in words a
# reader takes in at a glance. They read the same Verdict as the statistics sentences
# above (:func:`cifarkit.evaluation.verdicts.verdict`), so they never claim more than it does;
# the chapter gives the statistics sentence after its main figure.


def _points(x: float, digits: int = 1, *, signed: bool = False) -> str:
    """``1.2``, or with ``signed`` ``+1.2`` / ``−1.2``, a typographic minus and never ``−0.0``."""
    text = f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"
    if float(text) == 0:
        text = f"{0:.{digits}f}"
    return text.replace("-", "−")


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _seeds(n: int) -> str:
    return f"{n} seed{'s' if n != 1 else ''}"


def plain_verdict(
    v: Verdict,
    name_a: str,
    name_b: str,
    *,
    scale: float = 100.0,
    unit: str = "points",
    digits: int = 1,
) -> str:
    """How sure the difference B − A of a :class:`~cifarkit.evaluation.verdicts.Verdict` is, in
    one plain sentence: who is ahead, by how much, and whether the seeds settle it (for a
    metric where higher is better, such as accuracy).

    The wording follows the verdict's kind: a *claimed* difference is "clear"; a *bounded* one
    is "as good as each other", with the bound; a *descriptive* one (the interval excludes
    zero, but there are too few seeds to call it) says so; *not distinguishable* is "cannot
    be told apart"; one seed or no spread gives no interval.
    """
    d = v.mean_diff * scale
    lo = None if v.low is None else v.low * scale
    hi = None if v.high is None else v.high * scale
    if v.kind == "no seeds":
        return _capital(f"{name_a} and {name_b} share no seed, so they are not compared.")
    if v.kind == "one seed":
        return _capital(
            f"with one seed, the difference of {name_b} against {name_a} is "
            f"{_points(d, digits, signed=True)} {unit}; a single run of each cannot say how sure that is."
        )
    if v.kind == "no spread":
        return _capital(
            f"the difference of {name_b} against {name_a} is {_points(d, digits, signed=True)} {unit} in "
            f"each of the {_seeds(v.n)}; with no spread between seeds no interval can be given."
        )
    if v.kind == "claimed":
        b_wins = d > 0  # a metric where higher is better, such as accuracy
        winner, loser = (name_b, name_a) if b_wins else (name_a, name_b)
        low, high = sorted((lo, hi) if b_wins else (-hi, -lo))
        how = (
            f"every one of the {_seeds(v.n)} agrees"
            if v.decisive and v.n < v.min_seeds
            else f"95% interval {_points(low, digits)} to {_points(high, digits)} {unit} over {_seeds(v.n)}"
        )
        return _capital(
            f"{winner} is ahead of {loser} by {_points(abs(d), digits)} {unit}, a clear difference "
            f"({how})."
        )
    if v.kind == "bounded":
        return _capital(
            f"{name_a} and {name_b} are as good as each other: with {_seeds(v.n)}, any difference is "
            f"smaller than {_points(v.bound * scale, digits)} {unit} ({name_b} − {name_a}: "
            f"{_points(d, digits, signed=True)} {unit})."
        )
    ahead, behind = (name_b, name_a) if d > 0 else (name_a, name_b)
    if v.kind == "descriptive":
        where = (
            ("in both seeds" if v.n == 2 else f"in all {v.n} seeds")
            if v.same_sign
            else f"on average over {_seeds(v.n)}"
        )
        return _capital(
            f"{ahead} is ahead of {behind} by {_points(abs(d), digits)} {unit} {where}, but "
            f"{_seeds(v.n)} are too few to call that a difference."
        )
    interval = (
        ""
        if lo is None
        else f" (95% interval {_points(lo, digits, signed=True)} to {_points(hi, digits, signed=True)})"
    )
    return _capital(
        f"{name_a} and {name_b} cannot be told apart with {_seeds(v.n)}: the difference, "
        f"{_points(d, digits, signed=True)} {unit}{interval}, is within the seed-to-seed noise."
    )


def baseline_answer(comparison: Comparison, model: str, baseline: str) -> str:
    """The baseline chapter's answer: both accuracies, then :func:`plain_verdict` on the
    chapter's primary comparison (``model`` against ``baseline``)."""
    n = int(comparison.summary.loc[model, "n"])
    means = (
        f"{model} reaches {comparison.mean(model) * 100:.1f}% test accuracy and the {baseline} "
        f"{comparison.mean(baseline) * 100:.1f}% (means over {_seeds(n)})."
    )
    return (
        f"{means} {plain_verdict(comparison.verdict(model), comparison.reference_of(model), model)}"
    )


def _change(variant: str, reference: str) -> str:
    """``"no augmentation instead of crop + flip (ResNet20)"`` for the labels of an ablation."""
    arch_v, _, what_v = variant.rpartition(", ")
    arch_r, _, what_r = reference.rpartition(", ")
    if arch_v and arch_v == arch_r:
        return f"{what_v} instead of {what_r} ({arch_v})"
    return f"{variant} instead of {reference}"


def _unsettled(v: Verdict) -> str:
    """Why a difference is not called, in a few words (for a list of changes)."""
    if v.kind == "one seed":
        return "from one seed"
    if v.kind == "no spread":
        return "in every seed, with no spread to give an interval"
    if v.kind == "descriptive":
        agree = "the same way in every seed" if v.same_sign else "on average"
        return f"({agree}, but too few seeds to call)"
    if v.kind == "no seeds":
        return "(no seed in common)"
    if v.kind == "bounded":
        return f"(equivalent: any difference is smaller than {_points(v.bound * 100)} points)"
    return "(within the seed-to-seed noise)"


def ablation_answer(comparisons: Mapping[str, Comparison], *, digits: int = 1) -> str:
    """The ablation chapter's answer from each group's declared primary comparison: which
    changes clearly matter (by how much, with their interval) and which the seeds cannot
    resolve, with the difference of each. Never picks the largest of the exploratory effects."""
    clear, unclear, n_seeds = [], [], set()
    for comparison in comparisons.values():
        label = comparison.primary_label
        if label is None:
            continue
        v = comparison.verdict(label)
        n_seeds.add(v.n)
        change = _change(label, comparison.reference_of(label))
        if v.claim:
            word = "costs" if v.mean_diff < 0 else "gains"
            clear.append(
                f"{change} {word} {_points(abs(v.mean_diff) * 100, digits)} points (95% interval "
                f"{_points(v.low * 100, digits, signed=True)} to {_points(v.high * 100, digits, signed=True)})"
            )
        else:
            unclear.append(
                f"{change}, {_points(v.mean_diff * 100, digits, signed=True)} points {_unsettled(v)}"
            )
    if not clear and not unclear:
        return "No ablation group with a primary comparison was run."
    seeds = _seeds(max(n_seeds)) if len(n_seeds) == 1 else "the seeds run"
    parts = []
    if clear:
        verb = "matters" if len(clear) == 1 else "matter"
        parts.append(
            _capital(
                f"with {seeds} per variant, {len(clear)} of the {len(clear) + len(unclear)} "
                f"changes clearly {verb}: {'; '.join(clear)}."
            )
        )
    if unclear:
        lead = (
            "the others"
            if clear
            else f"with {seeds} per variant, none of the changes can be called"
        )
        parts.append(_capital(f"{lead}: {'; '.join(unclear)}."))
    return " ".join(parts)


def ladder_answer(ladder: Ladder) -> str:
    """The fast-training chapter's answer: the full recipe against the plain network (the
    ladder's primary comparison) when both ends of the ladder have runs, with the training
    minutes of a run; otherwise how much of the ladder has runs."""
    c = ladder.comparison
    total = len(ladder.steps)
    if c is None:
        return f"None of the {total} steps of the fast recipe's ladder has runs at this build's budget yet."
    overall = ladder.overall()
    first, last = ladder.steps[0], ladder.steps[-1]
    if overall is None:
        done = [step for step in ladder.steps if step in c.summary.index]
        minutes = sum(c.train_minutes[step] for step in done) / len(done)
        return (
            f"At this build's budget {len(done)} of the {total} steps of the ladder have runs, so the full "
            f"recipe is not compared with the plain network here; a run of those steps trains in about "
            f"{minutes:.1f} minutes on this machine."
        )
    v = verdict(overall, "the plain network", "the full recipe", metric="test accuracy")
    return (
        f"The full recipe reaches {c.mean(last) * 100:.1f}% test accuracy and the plain network "
        f"{c.mean(first) * 100:.1f}% (means over {_seeds(overall.n)}). "
        f"{plain_verdict(v, 'the plain network', 'the full recipe')} A run of the full recipe trains in "
        f"{c.train_minutes[last]:.1f} minutes on this machine."
    )


def transfer_answer(check: Mapping[str, Any], gains: Any = None) -> str:
    """The transfer chapter's answer: the linear probe on task A's features against random
    features (:func:`cifarkit.studies.transfer.transfer_check`, the chapter's primary
    comparison) and, given :func:`cifarkit.studies.transfer.gains_over_scratch`, how many of
    the strategies' contrasts with training from scratch can be called."""
    if not check.get("ran"):
        return "The linear probe did not run in this build, so whether task A's features transfer is not measured."
    pre, rnd, n = check["pretrained"], check["random"], check["n"]
    how_sure = plain_verdict(check["verdict"], "random features", "task A's features")
    text = (
        f"A linear head on features learnt from task A reaches {pre.mean * 100:.1f}% on task B, against "
        f"{rnd.mean * 100:.1f}% on random features ({_seeds(n)}, {check['size']:,} training images of B). "
        f"{how_sure}"
    )
    if gains is not None and len(gains):
        called = int((gains["verdict"] == "claimed").sum())
        text += (
            f" Against training from scratch, {called} of the {len(gains)} strategy-and-size contrasts can "
            "be called a gain or a loss with these seeds."
        )
    return text


def data_answer(sizes: Mapping[str, int], spread: Mapping[str, float], source_format: str) -> str:
    """The data chapter's answer: how the images are split
    (:func:`cifarkit.data.statistics.split_sizes`), how balanced the classes are
    (:func:`~cifarkit.data.statistics.balance_spread`), and, when the source is the JPEG copy
    (by its ``source_format``), that it costs some accuracy."""
    from cifarkit.data.statistics import JPEG_NOTE, provenance_note

    jpeg = provenance_note(source_format) == JPEG_NOTE
    worst = max(spread.values()) if spread else 1.0
    balance = (
        "every class is equally frequent in every split"
        if worst == 1.0
        else f"the largest class is at most {worst:.3f} times the smallest in any split"
    )
    text = (
        f"This build splits CIFAR-10 into {sizes['train']:,} training, {sizes['val']:,} validation and "
        f"{sizes['test']:,} test images, and {balance}."
    )
    if jpeg:
        text += (
            " The images are a lossy JPEG copy of CIFAR-10, so accuracies here sit a few points below "
            "published ones for the same model."
        )
    return text


def interpretability_answer(studies: Mapping[str, tuple[Any, str]]) -> str:
    """The interpretability chapter's answer: for each model (label → its
    :class:`cifarkit.interpret.study.FaithfulnessStudy` and the method key read), in how many
    of the four faithfulness tests (deletion and insertion, against a random and a smoothed
    random map) the method's maps find the evidence better than a map without information."""
    parts = []
    for label, (study, key) in studies.items():
        outcomes = list(study.verdicts(key).values())
        images = study.comparison(key, "random", "deletion_auc").n
        better, worse = outcomes.count("better"), outcomes.count("worse")
        rest = len(outcomes) - better - worse
        others = " and ".join(
            text
            for text in (
                f"worse in {worse}" if worse else "",
                f"not distinguishable in {rest}" if rest else "",
            )
            if text
        )
        parts.append(
            f"for {label}, {key}'s maps beat a map without information in {better} of "
            f"{len(outcomes)} tests{f' ({others})' if others else ''}, on {images} test images"
        )
    if not parts:
        return "No faithfulness test ran in this build."
    return _capital("; ".join(parts)) + (
        ". The tests remove or reveal the pixels a map marks first, against a "
        "random and a smoothed random map."
    )
