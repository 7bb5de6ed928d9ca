"""Studies: named variants of experiments, trained over seeds through the run store, compared.

A chapter (or the demo) names its variants (:class:`Variant`: an experiment plus dotted
config overrides), resolves them under a profile, gets their runs with
:func:`gather_runs` (``runs.get_or_train`` for each seed, so nothing is trained twice and
an interrupted build resumes) and compares them with :func:`compare`: per-seed metrics,
mean with a Student-t 95% interval, and paired differences against a reference variant on
matched seeds. :func:`runs_caption` is the caption text that names the runs behind a figure.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from cifarkit.core.config import ExperimentConfig, load_config
from cifarkit.core.errors import CifarkitError
from cifarkit.evaluation import stats
from cifarkit.runs import Run

log = logging.getLogger(__name__)

Overrides = Mapping[str, Any]


@dataclass(frozen=True)
class Variant:
    """One arm of a comparison: an experiment under the profile, plus overrides.

    ``overrides`` may be a mapping of dotted keys or a function of the resolved base config
    returning one (for settings that depend on it, such as step-decay milestones that
    depend on the number of epochs).
    """

    label: str
    experiment: str
    overrides: Overrides | Callable[[ExperimentConfig], Overrides] = field(default_factory=dict)

    def config(self, profile: str, common: Overrides | None = None) -> ExperimentConfig:
        """The resolved config: experiment + profile + ``common`` overrides + own overrides."""
        common = dict(common or {})
        own = self.overrides
        if callable(own):
            own = own(load_config(self.experiment, profile, overrides=common))
        return load_config(self.experiment, profile, overrides={**common, **own})


def seed_list(seeds: int | Sequence[int]) -> list[int]:
    """``3`` → ``[0, 1, 2]``; a sequence is kept (sorted, unique)."""
    if isinstance(seeds, int):
        if seeds < 1:
            raise CifarkitError(f"seeds must be at least 1, got {seeds}")
        return list(range(seeds))
    out = sorted({int(s) for s in seeds})
    if not out:
        raise CifarkitError("no seeds given; pass a count (e.g. 3) or a list of seeds")
    return out


def gather_runs(configs: Mapping[str, ExperimentConfig], seeds: int | Sequence[int], *,
                train: bool = True) -> dict[str, dict[int, Run]]:
    """Complete runs for every (variant, seed), training the missing ones when ``train``.

    Configs that resolve to the same run (same identity) are trained once. Without
    ``train``, a missing run is an error naming the command that makes it.
    """
    from cifarkit.data.identity import data_hash_for
    from cifarkit.runs import get_or_train, locate

    seeds = seed_list(seeds)
    jobs = [(label, cfg, seed) for label, cfg in configs.items() for seed in seeds]
    out: dict[str, dict[int, Run]] = {label: {} for label in configs}
    for i, (label, cfg, seed) in enumerate(jobs, start=1):
        if train:  # get_or_train returns a complete run at once and trains only what is missing
            out[label][seed] = get_or_train(cfg, seed, label=f"[{i}/{len(jobs)}] {label}: ")
            continue
        run = locate(cfg, seed, data_hash_for(cfg.data))
        if not run.complete:
            raise CifarkitError(f"run {run.path.name} ({label}, seed {seed}) is {run.status}; "
                                f"make it with: {train_command(cfg, [seed])}")
        out[label][seed] = run
    return out


def available_runs(configs: Mapping[str, ExperimentConfig], seeds: int | Sequence[int]
                   ) -> tuple[dict[str, dict[int, Run]], dict[str, str]]:
    """Never trains: the variants whose runs are complete for every seed, and for each other
    variant the command that makes its missing seeds."""
    from cifarkit.data.identity import data_hash_for
    from cifarkit.runs import locate

    seeds = seed_list(seeds)
    complete: dict[str, dict[int, Run]] = {}
    missing: dict[str, str] = {}
    for label, cfg in configs.items():
        found = {seed: locate(cfg, seed, data_hash_for(cfg.data)) for seed in seeds}
        absent = [seed for seed, run in found.items() if not run.complete]
        if absent:
            missing[label] = train_command(cfg, absent)
        else:
            complete[label] = found
    return complete, missing


def train_command(cfg: ExperimentConfig, seeds: Sequence[int]) -> str:
    """The ``cifarkit train`` command (with ``--set`` for overrides) that makes these runs."""
    from cifarkit.evaluation.report import train_command as command

    return command(cfg.name, cfg.profile, seeds, cfg)


@dataclass
class Comparison:
    """Variants compared on one metric over matched seeds."""

    metric: str
    reference: str
    configs: dict[str, ExperimentConfig]
    runs: dict[str, dict[int, Run]]
    per_seed: pd.DataFrame                       # index: seed; columns: variant labels
    summary: pd.DataFrame                        # index: variant; mean, std, low, high, half_width, n
    paired: dict[str, stats.PairedComparison]    # variant → (variant − reference)
    train_minutes: dict[str, float]              # mean training minutes per run

    def sentence(self, label: str, *, metric_name: str = "test accuracy") -> str:
        """One sentence on ``label`` against the reference that claims only what the CI shows."""
        return stats.describe_comparison(self.paired[label], self.reference, label, metric=metric_name)

    def mean(self, label: str) -> float:
        return float(self.summary.loc[label, "mean"])

    def table(self, scale: float = 100.0, digits: int = 2) -> pd.DataFrame:
        """Display table: mean, 95% CI, difference to the reference with its CI and p."""
        rows = []
        for label in self.summary.index:
            s, p = self.summary.loc[label], self.paired.get(label)
            ci = stats.interval_text(s["low"], s["high"], scale=scale, digits=digits)
            if label == self.reference:
                diff = diff_ci = p_text = "reference"
            elif p is None or p.low is None:
                diff, diff_ci, p_text = (f"{p.mean_diff * scale:+.{digits}f}" if p else "n/a"), "n/a", "n/a"
            else:
                diff = f"{p.mean_diff * scale:+.{digits}f}"
                diff_ci = stats.interval_text(p.low, p.high, scale=scale, digits=digits, signed=True)
                p_text = "< 0.001" if p.p_value is not None and p.p_value < 0.001 else f"{p.p_value:.3f}"
            rows.append({"variant": label, "mean (%)": f"{s['mean'] * scale:.{digits}f}", "95% CI": ci,
                         "seeds": int(s["n"]), f"Δ vs {self.reference}": diff, "Δ 95% CI": diff_ci,
                         "p (paired t)": p_text, "train min/run": f"{self.train_minutes[label]:.1f}"})
        return pd.DataFrame(rows).set_index("variant")

    def caption(self) -> str:
        return runs_caption(self.configs, self.runs)


def compare(configs: Mapping[str, ExperimentConfig], seeds: int | Sequence[int], *, reference: str,
            metric: str = "test_accuracy", train: bool = True) -> Comparison:
    """Gather (training if needed) and compare ``configs`` over ``seeds`` on ``metric``."""
    if reference not in configs:
        raise CifarkitError(f"reference {reference!r} is not one of the variants: {', '.join(configs)}")
    return compare_runs(configs, gather_runs(configs, seeds, train=train), reference=reference, metric=metric)


def compare_runs(configs: Mapping[str, ExperimentConfig], runs: Mapping[str, Mapping[int, Run]], *,
                 reference: str, metric: str = "test_accuracy") -> Comparison:
    """:func:`compare` on runs already gathered (e.g. by :func:`available_runs`)."""
    configs = {label: configs[label] for label in runs}
    if reference not in configs:
        raise CifarkitError(f"reference {reference!r} is not one of the variants: {', '.join(configs)}")
    runs = {label: dict(by_seed) for label, by_seed in runs.items()}
    per_seed = pd.DataFrame({label: {seed: float(run.metrics()[metric]) for seed, run in by_seed.items()}
                             for label, by_seed in runs.items()})
    per_seed.index.name = "seed"
    summary = stats.summarise_table(per_seed)
    paired = {label: stats.paired_comparison(per_seed[reference].to_dict(), per_seed[label].to_dict())
              for label in configs if label != reference}
    minutes = {label: sum(float(r.metrics().get("train_seconds", 0.0)) for r in by_seed.values()) / 60 / len(by_seed)
               for label, by_seed in runs.items()}
    return Comparison(metric, reference, dict(configs), runs, per_seed, summary, paired, minutes)


def _seed_text(seeds: Sequence[int]) -> str:
    seeds = sorted(seeds)
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"seeds {seeds[0]}–{seeds[-1]}"
    return f"seed{'s' if len(seeds) != 1 else ''} {', '.join(map(str, seeds))}"


def runs_caption(configs: Mapping[str, ExperimentConfig], runs: Mapping[str, Mapping[int, Run]]) -> str:
    """Caption text naming every run behind a figure: experiment, config hash, run folders, seeds."""
    parts = []
    for label, cfg in configs.items():
        by_seed = runs.get(label, {})
        folders = sorted({run.path.name for run in by_seed.values()})
        parts.append(f"{label}: {cfg.name}, profile {cfg.profile}, config {cfg.content_hash()[:12]}, "
                     f"runs {', '.join(folders)} ({_seed_text(list(by_seed))})")
    return "Runs: " + "; ".join(parts) + "."
