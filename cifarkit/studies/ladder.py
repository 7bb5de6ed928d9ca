"""The fast recipe's ablation ladder: accuracy and time as each trick is added.

The airbench ablation design: start from the plain net (one-cycle LR, flip + translate, no
other trick) and add the tricks of :data:`ABLATION_LADDER` one at a time,
each step keeping all before it. Every step is an ordinary run of ``configs/airbench.yaml``
with overrides, so it is cached, resumable and tracked like any other run, and the ladder
can be filled in over several invocations (``cifarkit bench ladder``). Each step is compared
with the step before it on matched seeds.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from cifarkit.core.config import ExperimentConfig
from cifarkit.core.errors import CifarkitError
from cifarkit.evaluation import stats, verdicts
from cifarkit.studies.variants import (
    Comparison,
    Variant,
    available_runs,
    compare_runs,
    gather_runs,
    seed_list,
)

EXPERIMENT = "airbench"

# Each step adds one trick to the previous one (the airbench ablation design); overrides are
# dotted config keys applied to configs/airbench.yaml with every trick switched off first.
TRICKS_OFF: dict[str, Any] = {
    "model.airbench.whiten": False,
    "model.airbench.dirac": False,
    "model.airbench.bn_bias_lr": 1.0,
    "train.schedule.name": "onecycle",
    "train.ema": None,
    "train.augment.alternating_flip": False,
    "train.loss.label_smoothing": 0.0,
}
ABLATION_LADDER: tuple[tuple[str, dict[str, Any]], ...] = (
    ("base net, one-cycle LR, flip+translate", {}),
    ("+ whitening conv", {"model.airbench.whiten": True}),
    ("+ dirac init", {"model.airbench.dirac": True}),
    ("+ BN-bias LR x64", {"model.airbench.bn_bias_lr": 64.0}),
    ("+ triangular LR", {"train.schedule.name": "triangular"}),
    ("+ label smoothing 0.2", {"train.loss.label_smoothing": 0.2}),
    ("+ lookahead", {"train.ema": {"momentum": 0.95, "overwrite_every": 5, "ramp": "cubic"}}),
    ("+ alternating flip", {"train.augment.alternating_flip": True}),
)


def ablation_overrides() -> list[tuple[str, dict[str, Any]]]:
    """Cumulative overrides per ladder step: ``[(label, overrides), ...]`` (TTA is reported
    beside each step by the benchmark, not as a step)."""
    steps, current = [], {k: v for k, v in TRICKS_OFF.items()}
    for label, add in ABLATION_LADDER:
        current = {**current, **add}
        steps.append((label, dict(current)))
    return steps


@dataclass(frozen=True)
class ChapterLadder:
    """What a profile's book trains of the ladder and how it is compared."""

    budget: dict[str, Any]  # overrides of every step (its data and epochs)
    steps: (
        bool | int | tuple[int, ...]
    )  # True every step, N the first N, a tuple those step numbers
    seeds: int  # seeds per trained step


#: What each profile's book trains of the ladder. ``cpu``: the ladder's two ends, the plain
#: net and the full recipe, over five seeds (the report's rule needs five to call or bound a
#: difference), on 5,000 training images (500 per class; 100 per class kept for validation,
#: as airbench keeps 1,000 of 50,000 for it) for four epochs, validated once after the last.
#: The steps between are exploratory and trained only on request (the chapter's ``steps``
#: parameter, or ``cifarkit bench ladder``). ``smoke``: the two ends at the profile's tiny
#: budget with two seeds (numbers exercise the code only).
CHAPTER_LADDERS: dict[str, ChapterLadder] = {
    "smoke": ChapterLadder({}, (1, len(ABLATION_LADDER)), 2),
    "cpu": ChapterLadder(
        {
            "data.train_per_class": 500,
            "data.val_per_class": 100,
            "train.epochs": 4,
            "train.validate_every": 4,
        },
        (1, len(ABLATION_LADDER)),
        5,
    ),
    "full": ChapterLadder({}, True, 5),
}


def chapter_ladder(
    profile: str,
    budget: Mapping[str, Any] | None = None,
    steps: int | Sequence[int] | None = None,
    seeds: int | None = None,
) -> ChapterLadder:
    """The ladder a book build of ``profile`` trains, the chapter's parameters (``budget``,
    ``steps``: how many from the first, or a list of step numbers; ``seeds``) replacing the
    profile's defaults (any other profile: ``cpu``'s)."""
    default = CHAPTER_LADDERS.get(profile, CHAPTER_LADDERS["cpu"])
    chosen: bool | int | tuple[int, ...] = default.steps
    if steps is not None:
        chosen = int(steps) if isinstance(steps, int) else tuple(int(n) for n in steps)
    return ChapterLadder(
        dict(default.budget if budget is None else budget),
        chosen,
        default.seeds if seeds is None else int(seeds),
    )


def ladder_variants(experiment: str = EXPERIMENT) -> dict[str, Variant]:
    """One variant per ladder step, in order; each holds the cumulative overrides."""
    return {
        label: Variant(label, experiment, overrides) for label, overrides in ablation_overrides()
    }


def ladder_configs(
    profile: str, common: Mapping[str, Any] | None = None, experiment: str = EXPERIMENT
) -> dict[str, ExperimentConfig]:
    return {label: v.config(profile, common) for label, v in ladder_variants(experiment).items()}


@dataclass
class Ladder:
    """The steps that have runs (compared), and the command for each step that has not."""

    steps: list[str]  # every step, in ladder order
    comparison: Comparison | None  # over the steps with runs for every seed
    missing: dict[str, str]  # step → command that makes its runs

    def step_pairs(self) -> dict[str, stats.PairedComparison]:
        """Step → (step − previous step) on matched seeds, where both have runs."""
        if self.comparison is None:
            return {}
        per_seed, out = self.comparison.per_seed, {}
        for before, after in zip(self.steps, self.steps[1:], strict=False):
            if before in per_seed and after in per_seed:
                out[after] = stats.paired_comparison(
                    per_seed[before].to_dict(), per_seed[after].to_dict()
                )
        return out

    def overall(self) -> stats.PairedComparison | None:
        """Last step − first step (every trick against none) on matched seeds, when both have runs."""
        first, last = self.steps[0], self.steps[-1]
        if self.comparison is None or len(self.steps) < 2:
            return None
        per_seed = self.comparison.per_seed
        if first not in per_seed or last not in per_seed:
            return None
        return stats.paired_comparison(per_seed[first].to_dict(), per_seed[last].to_dict())

    def table(self, scale: float = 100.0, digits: int = 2) -> pd.DataFrame:
        """One row per step: test accuracy mean and 95% CI, gain over the previous step with its
        CI, training minutes per run; a step without runs says so."""
        pairs, rows = self.step_pairs(), []
        summary = self.comparison.summary if self.comparison is not None else pd.DataFrame()
        minutes = self.comparison.train_minutes if self.comparison is not None else {}
        for i, step in enumerate(self.steps):
            if step not in summary.index:
                rows.append(
                    {
                        "step": step,
                        "test acc (%)": "not run",
                        "95% CI": "",
                        "seeds": 0,
                        "Δ vs previous step": "",
                        "Δ 95% CI": "",
                        "train min/run": "",
                    }
                )
                continue
            s, pair = summary.loc[step], pairs.get(step)
            ci = stats.interval_text(s["low"], s["high"], scale=scale, digits=digits)
            if i == 0:
                diff, diff_ci = "start", ""
            elif pair is None:
                diff, diff_ci = "n/a (previous step not run)", ""
            else:
                diff = f"{pair.mean_diff * scale:+.{digits}f}"
                diff_ci = stats.interval_text(
                    pair.low, pair.high, scale=scale, digits=digits, signed=True
                )
            rows.append(
                {
                    "step": step,
                    "test acc (%)": f"{s['mean'] * scale:.{digits}f}",
                    "95% CI": ci,
                    "seeds": int(s["n"]),
                    "Δ vs previous step": diff,
                    "Δ 95% CI": diff_ci,
                    "train min/run": f"{minutes[step]:.1f}",
                }
            )
        return pd.DataFrame(rows).set_index("step")

    def sentences(self) -> list[str]:
        """For each step with a measured predecessor, a sentence that claims only what its CI
        shows; then, when the first and last steps have runs, the same for all tricks together."""
        previous = dict(zip(self.steps[1:], self.steps, strict=False))
        pairs, overall = self.step_pairs(), self.overall()
        out = []
        if pairs and all(len(pair.seeds) < 2 for pair in pairs.values()):
            out.append(
                "With one seed per step no interval can be given: each difference in the table is a "
                "single run against a single run, and says nothing yet about which trick helps."
            )
        else:
            out += [
                verdicts.describe_comparison(pair, previous[step], step, metric="test accuracy")
                for step, pair in pairs.items()
            ]
        if overall is not None and len(self.steps) > 2:
            out.append(
                "All tricks together: "
                + verdicts.describe_comparison(
                    overall,
                    f"the first step ({self.steps[0]})",
                    "the full recipe",
                    metric="test accuracy",
                )
            )
        return out

    def summary_table(self, scale: float = 100.0, digits: int = 1) -> pd.DataFrame:
        """:meth:`table` narrow enough for the page: each interval beside its estimate
        (``estimate [low, high]``), and the seeds and minutes per run."""
        pairs, rows = self.step_pairs(), []
        summary = self.comparison.summary if self.comparison is not None else pd.DataFrame()
        minutes = self.comparison.train_minutes if self.comparison is not None else {}
        for i, step in enumerate(self.steps):
            if step not in summary.index:
                rows.append(
                    {
                        "step": step,
                        "test accuracy, % [95% CI]": "not run",
                        "seeds": 0,
                        "Δ vs previous step, points [95% CI]": "",
                        "train min/run": "",
                    }
                )
                continue
            s, pair = summary.loc[step], pairs.get(step)
            accuracy = (
                f"{s['mean'] * scale:.{digits}f} "
                f"{stats.interval_text(s['low'], s['high'], scale=scale, digits=digits, missing='(1 seed)')}"
            )
            if i == 0:
                diff = "start"
            elif pair is None:
                diff = "previous step not run"
            else:
                diff = (
                    f"{pair.mean_diff * scale:+.{digits}f} "
                    + stats.interval_text(
                        pair.low,
                        pair.high,
                        scale=scale,
                        digits=digits,
                        signed=True,
                        missing="(no interval)",
                    )
                ).replace("-", "−")
            rows.append(
                {
                    "step": step,
                    "test accuracy, % [95% CI]": accuracy,
                    "seeds": int(s["n"]),
                    "Δ vs previous step, points [95% CI]": diff,
                    "train min/run": f"{minutes[step]:.1f}",
                }
            )
        return pd.DataFrame(rows).set_index("step")

    def status(self) -> str:
        """How many of the steps have runs, in a sentence."""
        return f"{len(self.steps) - len(self.missing)} of {len(self.steps)} steps have runs."

    def text(self) -> str:
        """:meth:`sentences` as one paragraph, or why there is none."""
        return (
            " ".join(self.sentences())
            or "No two steps that can be compared have runs yet, so no gain can be measured."
        )

    def primary_sentence(self) -> str:
        """The ladder's primary comparison, the full recipe against the plain network, in the
        report's words (:func:`cifarkit.evaluation.verdicts.describe_comparison`), or why it is
        not measured."""
        overall = self.overall()
        if overall is None:
            return "The first and the last step do not both have runs, so the full recipe is not compared with the plain network."
        return verdicts.describe_comparison(
            overall, f"the first step ({self.steps[0]})", "the full recipe", metric="test accuracy"
        )

    def provenance(self) -> str:
        """Markdown list of the runs behind the ladder (:meth:`Comparison.provenance`)."""
        return (
            self.comparison.provenance()
            if self.comparison is not None
            else "No ladder step has runs yet."
        )

    def figure(self):
        """Accuracy per step with CIs beside training minutes (:func:`cifarkit.plots.ladder_figure`)."""
        from cifarkit.plots import ladder_figure

        if self.comparison is None:
            return ladder_figure(
                self.steps, pd.DataFrame(columns=["mean", "low", "high"]), pd.DataFrame(), {}
            )
        c = self.comparison
        return ladder_figure(self.steps, c.summary, c.per_seed, c.train_minutes)

    def caption(self) -> str:
        return (
            self.comparison.caption()
            if self.comparison is not None
            else "No ladder step has runs yet."
        )

    def missing_note(self, profile: str, common: Mapping[str, Any] | None = None) -> str:
        """Markdown listing each step without runs and the command that makes it (or saying
        every step has runs)."""
        if not self.missing:
            return "Every step of the ladder has runs at this budget."
        sets = "".join(f" --set {key}={value}" for key, value in (common or {}).items())
        return (
            f"{len(self.missing)} of {len(self.steps)} steps have no runs at this budget. The "
            "command that makes each is below (or "
            f"`cifarkit bench ladder --profile {profile}{sets}` for all of them; add "
            f"`--step 1 --step {len(self.steps)}` to make the two ends first):\n\n"
            + "\n".join(f"- {step}: `{command}`" for step, command in self.missing.items())
        )


def steps_to_train(steps: Sequence[str], train: bool | int | Collection[int]) -> list[str]:
    """The steps to train: ``True`` every one, ``False`` none, an integer N the first N, a
    collection of 1-based step numbers those steps (e.g. ``{1, 8}``: the two ends first)."""
    if isinstance(train, bool):
        return list(steps) if train else []
    if isinstance(train, int):
        return list(steps[: max(train, 0)])  # a negative N is none, not a slice from the end
    wrong = sorted(n for n in train if not 1 <= n <= len(steps))
    if wrong:
        raise CifarkitError(
            f"ladder step {wrong[0]} does not exist; pass step numbers 1 to {len(steps)}"
        )
    return [steps[n - 1] for n in sorted(set(train))]


def run_ladder(
    profile: str,
    seeds: int | Sequence[int],
    *,
    train: bool | int | Collection[int],
    common: Mapping[str, Any] | None = None,
    experiment: str = EXPERIMENT,
) -> Ladder:
    """Gather the ladder's runs and compare them. ``train`` chooses the missing steps to train
    (:func:`steps_to_train`); steps not trained are shown if they exist."""
    configs = ladder_configs(profile, common, experiment)
    steps = list(configs)
    chosen = steps_to_train(steps, train)
    if chosen:
        gather_runs({step: configs[step] for step in chosen}, seed_list(seeds), train=True)
    runs, missing = available_runs(configs, seeds)
    comparison = compare_runs(configs, runs, reference=next(iter(runs))) if runs else None
    return Ladder(steps, comparison, missing)
