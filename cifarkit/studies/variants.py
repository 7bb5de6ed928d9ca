"""Studies: named variants of experiments, trained over seeds through the run store, compared.

A chapter (or the demo) names its variants (:class:`Variant`: an experiment plus dotted
config overrides), resolves them under a profile, gets their runs with
:func:`gather_runs` (``runs.get_or_train`` for each seed, so nothing is trained twice and
an interrupted build resumes) and compares them with :func:`compare`: per-seed metrics,
mean with a Student-t 95% interval, and paired differences against a reference variant on
matched seeds (each variant may name its own reference, e.g. the same architecture's
recipe). One contrast may be declared *primary*; every other one is exploratory and
carries a Holm-adjusted p-value beside its raw one. Sentences come from
:func:`cifarkit.evaluation.verdicts.verdict`. :func:`runs_provenance` lists the runs behind a
figure (config, data and run folders) for a page's provenance block; :func:`runs_caption` says
the same in one line; :func:`recipe_differences` states what two configs set differently.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from cifarkit.core.config import ExperimentConfig, load_config, overrides_between
from cifarkit.core.errors import CifarkitError
from cifarkit.evaluation import stats, verdicts
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


def gather_runs(
    configs: Mapping[str, ExperimentConfig], seeds: int | Sequence[int], *, train: bool = True
) -> dict[str, dict[int, Run]]:
    """Complete runs for every (variant, seed), training the missing ones when ``train``.

    Configs that resolve to the same run (same identity) are trained once. Without
    ``train`` (the chapters' way), runs are only read (:func:`cifarkit.runs.stored_run`): a
    missing run is an error naming the command that makes it.
    """
    from cifarkit.runs import get_or_train, stored_run

    seeds = seed_list(seeds)
    jobs = [(label, cfg, seed) for label, cfg in configs.items() for seed in seeds]
    out: dict[str, dict[int, Run]] = {label: {} for label in configs}
    for i, (label, cfg, seed) in enumerate(jobs, start=1):
        if train:  # get_or_train returns a complete run at once and trains only what is missing
            out[label][seed] = get_or_train(cfg, seed, label=f"[{i}/{len(jobs)}] {label}: ")
        else:
            out[label][seed] = stored_run(cfg, seed, label=label)
    return out


def available_runs(
    configs: Mapping[str, ExperimentConfig], seeds: int | Sequence[int]
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
    """Variants compared on one metric over matched seeds.

    ``paired`` holds, for every variant that is not a reference, variant − its reference
    (``references`` maps a variant to its own reference; the others use ``reference``).
    ``primary`` names the variant whose contrast was declared primary; with a single
    contrast that one is the primary. Every other contrast is exploratory.
    """

    metric: str
    reference: str
    configs: dict[str, ExperimentConfig]
    runs: dict[str, dict[int, Run]]
    per_seed: pd.DataFrame  # index: seed; columns: variant labels
    summary: pd.DataFrame  # index: variant; mean, std, low, high, half_width, n
    paired: dict[str, stats.PairedComparison]  # variant → (variant − its reference)
    train_minutes: dict[str, float]  # mean training minutes per run
    references: dict[str, str] = field(default_factory=dict)  # variant → its own reference
    primary: str | None = None

    def reference_of(self, label: str) -> str:
        """The variant ``label`` is compared with."""
        return self.references.get(label, self.reference)

    @property
    def primary_label(self) -> str | None:
        """The declared primary contrast, or the only contrast when there is one."""
        if self.primary is not None:
            return self.primary
        return next(iter(self.paired)) if len(self.paired) == 1 else None

    @property
    def exploratory(self) -> list[str]:
        """The contrasts that are not primary, in order."""
        return [label for label in self.paired if label != self.primary_label]

    def holm(self) -> dict[str, float | None]:
        """Holm-adjusted p-values over the exploratory contrasts (the primary one is not adjusted)."""
        labels = self.exploratory
        return dict(zip(labels, stats.holm([self.paired[k].p_value for k in labels]), strict=True))

    def role(self, label: str) -> str:
        """``"reference"``, ``"primary"`` or ``"exploratory"``."""
        if label not in self.paired:
            return "reference"
        return "primary" if label == self.primary_label else "exploratory"

    def verdict(self, label: str, *, metric_name: str = "test accuracy") -> verdicts.Verdict:
        """:func:`cifarkit.evaluation.verdicts.verdict` of ``label`` against its reference; an
        exploratory contrast is judged on its Holm-adjusted p-value."""
        adjusted = self.holm().get(label) if self.role(label) == "exploratory" else None
        return verdicts.verdict(
            self.paired[label],
            self.reference_of(label),
            label,
            metric=metric_name,
            p_adjusted=adjusted,
        )

    def sentence(self, label: str, *, metric_name: str = "test accuracy") -> str:
        """One sentence on ``label`` against its reference that claims only what the CI shows
        (prefixed "Exploratory:" unless it is the primary contrast)."""
        text = self.verdict(label, metric_name=metric_name).sentence
        return text if self.role(label) == "primary" else f"Exploratory: {text}"

    def sentences(self, *, metric_name: str = "test accuracy") -> list[str]:
        """The primary contrast's sentence first (labelled), then each exploratory one."""
        out = []
        if self.primary_label is not None:
            out.append(
                f"Primary comparison: {self.sentence(self.primary_label, metric_name=metric_name)}"
            )
        return out + [self.sentence(label, metric_name=metric_name) for label in self.exploratory]

    def mean(self, label: str) -> float:
        return float(self.summary.loc[label, "mean"])

    def test_size(self, label: str) -> int | None:
        """Test images each run of ``label`` was scored on (None when the runs do not say)."""
        sizes = set()
        for run in self.runs.get(label, {}).values():
            size = run.metrics().get("test_size")
            if size is None:
                size = len(run.predictions("test")[1])
            sizes.add(int(size))
        return sizes.pop() if len(sizes) == 1 else None

    def accuracy_text(self, label: str, digits: int = 1) -> str:
        """``"86.2% (95% CI [85.9, 86.5] over 3 seeds; Wilson 95% CI [85.5, 86.9] over the 10,000
        test images of one model)"``: the interval over seeds and, beside it, the test-set
        sampling interval of one model at that accuracy."""
        s = self.summary.loc[label]
        n = int(s["n"])
        over_seeds = (
            f"95% CI {stats.interval_text(s['low'], s['high'], digits=digits)} over {n} seeds"
            if n > 1
            else "one seed, no CI over seeds"
        )
        size = self.test_size(label) if self.metric == "test_accuracy" else None
        sampling = (
            f"; {stats.accuracy_sampling_text(s['mean'], size, digits=digits)}" if size else ""
        )
        return f"{s['mean'] * 100:.{digits}f}% ({over_seeds}{sampling})"

    def table(self, scale: float = 100.0, digits: int = 2) -> pd.DataFrame:
        """Display table: mean, 95% CI over seeds, difference to the reference with its CI, the
        raw p and (for exploratory contrasts) the Holm-adjusted p, and each row's role."""
        shared = len({self.reference_of(label) for label in self.paired} | {self.reference}) == 1
        diff_name = f"Δ vs {self.reference}" if shared else "Δ vs own reference"
        holm = self.holm()
        rows = []
        for label in self.summary.index:
            s, p = self.summary.loc[label], self.paired.get(label)
            ci = stats.interval_text(s["low"], s["high"], scale=scale, digits=digits)
            holm_text = "n/a"
            if p is None:
                diff = diff_ci = p_raw = holm_text = "reference"
            elif p.low is None:
                diff = f"{p.mean_diff * scale:+.{digits}f}".replace("-", "−")
                diff_ci = "no spread, no interval" if p.no_spread else "n/a (1 seed)"
                p_raw = "n/a"
            else:
                diff = f"{p.mean_diff * scale:+.{digits}f}".replace("-", "−")
                diff_ci = stats.interval_text(
                    p.low, p.high, scale=scale, digits=digits, signed=True
                )
                p_raw = verdicts.p_text(p.p_value)
                if label in holm:
                    holm_text = verdicts.p_text(holm[label])
            if p is not None and label not in holm:
                holm_text = "primary: not adjusted"
            row = {
                "variant": label,
                "role": self.role(label),
                "mean (%)": f"{s['mean'] * scale:.{digits}f}",
                "95% CI (seeds)": ci,
                "seeds": int(s["n"]),
            }
            if not shared:
                row["reference"] = "" if p is None else self.reference_of(label)
            row.update(
                {
                    diff_name: diff,
                    "Δ 95% CI": diff_ci,
                    "p (paired t)": p_raw,
                    "p (Holm)": holm_text,
                    "train min/run": f"{self.train_minutes[label]:.1f}",
                }
            )
            rows.append(row)
        return pd.DataFrame(rows).set_index("variant")

    def summary_table(self, scale: float = 100.0, digits: int = 1) -> pd.DataFrame:
        """The table a chapter shows, narrow enough for the page: each variant's role, its mean
        with the 95% interval over seeds, and its difference to its reference with that
        difference's interval (``estimate [low, high]``). :meth:`details_table` has the rest."""
        rows = []
        for label in self.summary.index:
            s, p = self.summary.loc[label], self.paired.get(label)
            accuracy = (
                f"{s['mean'] * scale:.{digits}f} "
                f"{stats.interval_text(s['low'], s['high'], scale=scale, digits=digits, missing='(1 seed)')}"
            )
            if p is None:
                diff = "reference"
            else:
                diff = f"{p.mean_diff * scale:+.{digits}f}".replace("-", "−")
                if p.low is not None:
                    diff += " " + stats.interval_text(
                        p.low, p.high, scale=scale, digits=digits, signed=True
                    ).replace("-", "−")
                else:
                    diff += " (no spread)" if p.no_spread else " (1 seed)"
            rows.append(
                {
                    "variant": label,
                    "role": self.role(label),
                    "test accuracy, % [95% CI]": accuracy,
                    "Δ vs its reference, points [95% CI]": diff,
                }
            )
        return pd.DataFrame(rows).set_index("variant")

    def details_table(self, scale: float = 100.0, digits: int = 2) -> pd.DataFrame:
        """What :meth:`summary_table` leaves out: seeds, the reference of each contrast, the raw
        and the Holm-adjusted p-value, and training minutes per run (:meth:`table` has all)."""
        full = self.table(scale=scale, digits=digits)
        columns = [
            c
            for c in ("seeds", "reference", "p (paired t)", "p (Holm)", "train min/run")
            if c in full
        ]
        return full[columns]

    def figure(self, title: str | None = None):
        """Each seed of each variant as a dot, the mean and its interval beside it
        (:func:`cifarkit.plots.seed_comparison`)."""
        from cifarkit.plots import seed_comparison

        return seed_comparison(self.per_seed, self.summary, title=title)

    def caption(self) -> str:
        return runs_caption(self.configs, self.runs)

    def provenance(self) -> str:
        """Markdown list of the runs behind this comparison (:func:`runs_provenance`)."""
        return runs_provenance(self.configs, self.runs)


def compare(
    configs: Mapping[str, ExperimentConfig],
    seeds: int | Sequence[int],
    *,
    reference: str,
    metric: str = "test_accuracy",
    train: bool = True,
    references: Mapping[str, str] | None = None,
    primary: str | None = None,
) -> Comparison:
    """Gather (training if needed) and compare ``configs`` over ``seeds`` on ``metric``.

    ``references`` gives variants their own reference (default: ``reference``); ``primary``
    declares the one primary contrast (with a single contrast it is that one).
    """
    if reference not in configs:
        raise CifarkitError(
            f"reference {reference!r} is not one of the variants: {', '.join(configs)}"
        )
    return compare_runs(
        configs,
        gather_runs(configs, seeds, train=train),
        reference=reference,
        metric=metric,
        references=references,
        primary=primary,
    )


def compare_runs(
    configs: Mapping[str, ExperimentConfig],
    runs: Mapping[str, Mapping[int, Run]],
    *,
    reference: str,
    metric: str = "test_accuracy",
    references: Mapping[str, str] | None = None,
    primary: str | None = None,
) -> Comparison:
    """:func:`compare` on runs already gathered (e.g. by :func:`available_runs`)."""
    configs = {label: configs[label] for label in runs}
    if reference not in configs:
        raise CifarkitError(
            f"reference {reference!r} is not one of the variants: {', '.join(configs)}"
        )
    references = {k: v for k, v in (references or {}).items() if k in configs}
    unknown = sorted({v for v in references.values() if v not in configs})
    if unknown:
        raise CifarkitError(
            f"references {unknown} are not among the variants: {', '.join(configs)}"
        )
    runs = {label: dict(by_seed) for label, by_seed in runs.items()}
    per_seed = pd.DataFrame(
        {
            label: {seed: float(run.metrics()[metric]) for seed, run in by_seed.items()}
            for label, by_seed in runs.items()
        }
    )
    per_seed.index.name = "seed"
    summary = stats.summarise_table(per_seed)
    is_reference = {reference} | set(references.values())
    paired = {
        label: stats.paired_comparison(
            per_seed[references.get(label, reference)].dropna().to_dict(),
            per_seed[label].dropna().to_dict(),
        )
        for label in configs
        if label not in is_reference
    }
    if primary is not None and primary not in paired:
        raise CifarkitError(
            f"primary={primary!r} is not a compared variant; choose one of: {', '.join(paired)}"
        )
    minutes = {
        label: sum(float(r.metrics().get("train_seconds", 0.0)) for r in by_seed.values())
        / 60
        / len(by_seed)
        for label, by_seed in runs.items()
    }
    return Comparison(
        metric,
        reference,
        dict(configs),
        {label: dict(by_seed) for label, by_seed in runs.items()},
        per_seed,
        summary,
        paired,
        minutes,
        references,
        primary,
    )


def recipe_differences(
    a: ExperimentConfig, b: ExperimentConfig, name_a: str = "A", name_b: str = "B"
) -> str:
    """What ``b`` sets differently from ``a`` apart from the architecture itself, in words.

    Parameters
    ----------
    a, b
        Resolved configs (same profile, so the budget is the same).
    name_a, name_b
        How the sentence names them.

    Returns
    -------
    str
        ``"Apart from the architecture, the configs differ in model.dropout (A 0.0, B 0.3)
        and train.optimizer.lr (A 0.2, B 0.05); every other setting is the same."``, generated
        from :func:`cifarkit.core.config.overrides_between`.
    """
    forward, backward = overrides_between(a, b), overrides_between(b, a)
    # Snapshots are extra files a run keeps, not part of how it trains.
    keys = [
        k
        for k in dict.fromkeys([*backward, *forward])
        if k not in ("model.name", "train.snapshot_epochs")
    ]
    if not keys:
        return "Apart from the architecture, the two configs are the same."
    # overrides_between(b, a) holds a's values where they differ, overrides_between(a, b) b's.
    parts = [
        f"{k} ({name_a} {backward.get(k, '-')}, {name_b} {forward.get(k, '-')})"
        for k in sorted(keys)
    ]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"Apart from the architecture, the configs differ in {listed}; every other setting is the same."


def _seed_text(seeds: Sequence[int]) -> str:
    seeds = sorted(seeds)
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"seeds {seeds[0]}–{seeds[-1]}"
    return f"seed{'s' if len(seeds) != 1 else ''} {', '.join(map(str, seeds))}"


def runs_caption(
    configs: Mapping[str, ExperimentConfig], runs: Mapping[str, Mapping[int, Run]]
) -> str:
    """Caption text naming every run behind a figure: experiment, config hash, run folders, seeds."""
    parts = []
    for label, cfg in configs.items():
        by_seed = runs.get(label, {})
        folders = sorted({run.path.name for run in by_seed.values()})
        parts.append(
            f"{label}: {cfg.name}, profile {cfg.profile}, config {cfg.content_hash()[:12]}, "
            f"runs {', '.join(folders)} ({_seed_text(list(by_seed))})"
        )
    return "Runs: " + "; ".join(parts) + "."


def runs_provenance(
    configs: Mapping[str, ExperimentConfig], runs: Mapping[str, Mapping[int, Run]]
) -> str:
    """Markdown list naming every run behind a figure or table, one item per variant: its
    experiment and profile, config hash, data hash and run folders by seed (for a page's
    collapsed provenance block; a caption says what is shown instead)."""
    from cifarkit.data.identity import data_hash_for

    lines = []
    for label, cfg in configs.items():
        by_seed = dict(sorted(runs.get(label, {}).items()))
        # Each run records the data it was trained on; a run that does not was keyed by the config's.
        data = sorted(
            {
                str(run.summary.get("data_hash") or data_hash_for(cfg.data))[:12]
                for run in by_seed.values()
            }
        )
        folders = ", ".join(f"`{run.path.name}`" for run in by_seed.values()) or "none"
        lines.append(
            f"- **{label}**: experiment `{cfg.name}`, profile `{cfg.profile}`, config "
            f"`{cfg.content_hash()[:12]}`, data {', '.join(f'`{d}`' for d in data) or 'unknown'}; "
            f"{_seed_text(list(by_seed))}: {folders}"
        )
    return "\n".join(lines)
