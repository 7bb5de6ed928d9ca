"""The ablation study: which parts of the recipe matter, each measured over matched seeds.

Each *group* changes one thing against its own reference (the recipe of ``configs/``):

* **augmentation × architecture**: crop + flip on and off, for the baseline CNN and ResNet20,
  each architecture's "no augmentation" compared with the *same* architecture's crop + flip
  (never across architectures, which would measure the architecture);
* **schedule**: warmup + cosine (reference), step decay (×0.1 at 50% and 75% of training),
  constant learning rate;
* **loss**: cross-entropy with label smoothing 0.1 (reference), plain cross-entropy, focal
  loss (γ = 2, Keras' ``CategoricalFocalCrossentropy``);
* **regularisation**: weight decay 5e-4 (reference), no weight decay, and Cutout 8 px added.

Each group has one **primary comparison**, declared in :data:`PRIMARY` by design, not by
any measured effect: the reference recipe against the same recipe with one of its
components removed (for the augmentation group: on the headline model,
:attr:`Plan.headline`). Every other contrast is exploratory and reported with a
Holm-adjusted p-value (within its group) beside the raw one.

:func:`default_plan` scales the study to a profile's budget (which architecture the
single-factor groups use, which training-set size, how many seeds) and states it in one
sentence for the chapter; :func:`run_ablations` gathers the runs through the run store
and returns one :class:`cifarkit.studies.variants.Comparison` per group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from cifarkit.core.config import ExperimentConfig
from cifarkit.core.errors import CifarkitError
from cifarkit.studies.variants import Comparison, Variant, compare

GROUPS = ("augmentation", "schedule", "loss", "regularisation")
#: Each model's name in figures and sentences (the ablations' architectures, the fast recipe's net).
ARCH_LABELS = {
    "baseline_cnn": "baseline CNN",
    "airbench": "airbench net",
    "resnet20": "ResNet20",
    "resnet32": "ResNet32",
    "resnet56": "ResNet56",
}
#: Each group's primary comparison: the variant compared with its reference, chosen as the
#: removal of one component of the recipe (not by the size of any measured effect). For
#: the augmentation group the variant is "<headline architecture>, no augmentation".
PRIMARY: dict[str, str] = {
    "augmentation": "no augmentation",
    "schedule": "constant LR",
    "loss": "plain CE",
    "regularisation": "no weight decay",
}
HEADLINE_ARCHITECTURE = "resnet20"  # the model of the baseline chapter's headline


def _arch(arch: str) -> str:
    return ARCH_LABELS.get(arch, arch)


def _step_decay(cfg: ExperimentConfig) -> dict[str, Any]:
    epochs = cfg.train.epochs
    milestones = sorted({max(1, round(epochs * 0.5)), max(1, round(epochs * 0.75))} - {epochs})
    return {
        "train.schedule.name": "step",
        "train.schedule.warmup_epochs": 0.0,
        "train.schedule.step_epochs": milestones or [max(1, epochs - 1)],
    }


def _linear_decay(cfg: ExperimentConfig) -> dict[str, Any]:
    """Budget-aware: the same warm-up as the reference, then a straight line to zero at the end of
    the budget (Li, Yumer & Ramanan 2020, "Budgeted Training"), as cifarkit's triangular schedule."""
    epochs = cfg.train.epochs
    peak = min(0.5, max(cfg.train.schedule.warmup_epochs / epochs, 1e-3))
    return {
        "train.schedule.name": "triangular",
        "train.schedule.warmup_epochs": 0.0,
        "train.schedule.triangle_start": 0.01,
        "train.schedule.triangle_peak": peak,
        "train.schedule.final_lr_fraction": 0.0,
    }


def group_variants(
    group: str, base: str, architectures: Sequence[str] = ("baseline_cnn", "resnet20")
) -> tuple[dict[str, Variant], str]:
    """The variants of one group and the label of its reference."""
    if group == "augmentation":
        variants = {}
        for arch in architectures:
            name = ARCH_LABELS.get(arch, arch)
            variants[f"{name}, crop + flip"] = Variant(f"{name}, crop + flip", arch)
            variants[f"{name}, no augmentation"] = Variant(
                f"{name}, no augmentation", arch, {"train.augment.enabled": False}
            )
        return variants, f"{ARCH_LABELS.get(architectures[0], architectures[0])}, crop + flip"
    table: dict[str, list[tuple[str, Any]]] = {
        "schedule": [
            ("warmup + cosine", {}),
            ("step decay", _step_decay),
            ("linear decay to zero", _linear_decay),
            (
                "constant LR",
                {"train.schedule.name": "constant", "train.schedule.warmup_epochs": 0.0},
            ),
        ],
        "loss": [
            ("CE + label smoothing 0.1", {}),
            ("plain CE", {"train.loss.label_smoothing": 0.0}),
            ("focal (γ = 2)", {"train.loss.name": "focal", "train.loss.label_smoothing": 0.0}),
        ],
        "regularisation": [
            ("weight decay 5e-4", {}),
            ("no weight decay", {"train.optimizer.weight_decay": 0.0}),
            ("+ Cutout 8 px", {"train.augment.cutout": 8}),
        ],
    }
    if group not in table:
        raise CifarkitError(f"unknown ablation group {group!r}; choose from {', '.join(GROUPS)}")
    rows = table[group]
    return {label: Variant(label, base, overrides) for label, overrides in rows}, rows[0][0]


def group_references(
    group: str, architectures: Sequence[str] = ("baseline_cnn", "resnet20")
) -> dict[str, str]:
    """Variant → its own reference, where it is not the group's reference: in the augmentation
    group each architecture's "no augmentation" against that architecture's "crop + flip"."""
    if group != "augmentation":
        return {}
    return {f"{_arch(a)}, no augmentation": f"{_arch(a)}, crop + flip" for a in architectures}


def primary_variant(
    group: str,
    architectures: Sequence[str] = ("baseline_cnn", "resnet20"),
    headline: str = HEADLINE_ARCHITECTURE,
) -> str:
    """The label of the group's primary contrast (:data:`PRIMARY`); for the augmentation group
    on ``headline`` when it is among ``architectures``, else on the first of them."""
    if group not in PRIMARY:
        raise CifarkitError(f"unknown ablation group {group!r}; choose from {', '.join(GROUPS)}")
    if group == "augmentation":
        arch = headline if headline in architectures else architectures[0]
        return f"{_arch(arch)}, {PRIMARY[group]}"
    return PRIMARY[group]


@dataclass(frozen=True)
class Plan:
    """What the ablation chapter runs under one profile."""

    profile: str
    seeds: int
    base: str  # experiment of the single-factor groups
    architectures: tuple[str, ...]  # of the augmentation group
    common: Mapping[str, Any] = field(default_factory=dict)  # budget overrides for every run
    groups: tuple[str, ...] = GROUPS
    headline: str = (
        HEADLINE_ARCHITECTURE  # architecture of the augmentation group's primary contrast
    )
    exploratory: bool = True  # False: each group's reference and primary variant only...
    keep: tuple[str, ...] = ()  # ...and these exploratory arms

    def variants(self, group: str) -> tuple[dict[str, Variant], str]:
        """The variants ``group`` trains under this plan, and the label of its reference: every
        variant, or (``exploratory`` off) only the primary comparison's two arms."""
        variants, reference = group_variants(group, self.base, self.architectures)
        if not self.exploratory:
            own_reference, primary = self.primary(group)
            variants = {
                label: v
                for label, v in variants.items()
                if label in (own_reference, primary, *self.keep)
            }
            reference = own_reference
        return variants, reference

    def configs(self, group: str) -> dict[str, ExperimentConfig]:
        """Label -> resolved config of every variant ``group`` trains (the study plan and the
        chapter both read the runs of exactly these)."""
        return {
            label: v.config(self.profile, self.common)
            for label, v in self.variants(group)[0].items()
        }

    def primary(self, group: str) -> tuple[str, str]:
        """(reference, variant) of ``group``'s primary comparison."""
        variant = primary_variant(group, self.architectures, self.headline)
        _, reference = group_variants(group, self.base, self.architectures)
        return group_references(group, self.architectures).get(variant, reference), variant

    def describe(self) -> str:
        """One sentence for the chapter: what this profile ran, and each group's primary comparison
        (how many seeds a verdict needs is said once, on the report's how-to-read page)."""
        budget = (
            ", ".join(f"{k} = {v}" for k, v in self.common.items())
            or "the headline models' data and epochs"
        )
        archs = " and ".join(_arch(a) for a in self.architectures)
        primaries = "; ".join(
            f"{g}: {v} against {r}" for g in self.groups for r, v in [self.primary(g)]
        )
        kept = " and ".join(self.keep)
        others = (
            "every other contrast is exploratory, with Holm-adjusted p-values within its group"
            if self.exploratory
            else f"of the exploratory arms only {kept} is trained at this budget"
            if self.keep
            else "no exploratory arm is trained at this budget"
        )
        return (
            f"Profile {self.profile}: {self.seeds} seeds per variant; augmentation on/off for {archs}; "
            f"the single-factor groups ({', '.join(g for g in self.groups if g != 'augmentation')}) on "
            f"{_arch(self.base)}; budget: {budget}. Primary comparisons, declared in the study "
            f"definition, each removing one component of the recipe ({primaries}); {others}."
        )


def default_plan(profile: str, **changes: Any) -> Plan:
    """The budget of each profile; ``changes`` (e.g. from the chapter's parameters) win.

    ``cpu``: designed for power, not breadth. Every group is one primary comparison on the
    baseline CNN over five seeds, at the headline's budget (the full training split, the
    profile's epochs), so the reference arm *is* the baseline chapter's CNN (its runs are
    shared, not trained again) and is trained far enough to mean something. Exploratory arms
    (step decay, focal loss, Cutout, ResNet20 without augmentation) are left out at this
    budget but one: the budget-aware linear decay to zero, measured against the reference's
    warm-up + cosine over the same five seeds, which decides the recipe's schedule at this budget.
    The chapter's parameters bring the others back (``exploratory=True``).
    ``cifarkit plan --chapter ablations`` prints the cost and the smallest difference each
    comparison can detect.
    ``smoke``: the profile's tiny data, two seeds and two of the groups (the others run the
    same code); numbers exercise the code only. Any other profile gets the exploratory design:
    every arm of every group, both architectures in the augmentation group, three seeds, on
    5,000 training images for 3 epochs each.
    """
    plans = {
        "smoke": Plan(
            "smoke",
            seeds=2,
            base="baseline_cnn",
            architectures=("baseline_cnn", "resnet20"),
            groups=("augmentation", "loss"),
        ),
        "cpu": Plan(
            "cpu",
            seeds=5,
            base="baseline_cnn",
            architectures=("baseline_cnn",),
            exploratory=False,
            keep=("linear decay to zero",),
        ),
        "full": Plan("full", seeds=5, base="resnet20", architectures=("baseline_cnn", "resnet20")),
    }
    explore = Plan(
        profile,
        seeds=3,
        base="baseline_cnn",
        architectures=("baseline_cnn", "resnet20"),
        common={"data.train_per_class": 500, "train.epochs": 3, "train.validate_every": 3},
    )
    plan = plans.get(profile, explore)
    changes = {k: v for k, v in changes.items() if v is not None}
    if "groups" in changes:
        unknown = [g for g in changes["groups"] if g not in GROUPS]
        if unknown:
            raise CifarkitError(
                f"unknown ablation group(s) {', '.join(map(str, unknown))}; choose from "
                f"{', '.join(GROUPS)}"
            )
        changes["groups"] = tuple(changes["groups"])
    if "architectures" in changes:
        changes["architectures"] = tuple(changes["architectures"])
    return replace(plan, **changes)


def chapter_plan(
    profile: str,
    seeds: int | None = None,
    base: str | None = None,
    architectures: Sequence[str] | None = None,
    groups: Sequence[str] | None = None,
    train_per_class: int | None = None,
    epochs: int | None = None,
    exploratory: bool | None = None,
) -> Plan:
    """The ablation chapter's plan from its parameters (None: the profile's default): the one
    function both the study plan and the chapter call, so what is trained is what is read.

    ``train_per_class`` and ``epochs`` are added to the plan's budget overrides.
    """
    plan = default_plan(
        profile,
        seeds=seeds,
        base=base,
        architectures=architectures,
        groups=groups,
        exploratory=exploratory,
    )
    common = dict(plan.common)
    if train_per_class is not None:
        common["data.train_per_class"] = train_per_class
    if epochs is not None:
        common["train.epochs"] = epochs
    return replace(plan, common=common)


def plan_runs(plan: Plan) -> list[tuple[ExperimentConfig, int]]:
    """Every (config, seed) ``plan`` trains, group by group (a run shared by groups, such as a
    reference, is listed once per group; the study plan merges them)."""
    from cifarkit.studies.variants import seed_list

    return [
        (cfg, seed)
        for group in plan.groups
        for cfg in plan.configs(group).values()
        for seed in seed_list(plan.seeds)
    ]


def run_ablations(plan: Plan, *, train: bool = True) -> dict[str, Comparison]:
    """One comparison per group of ``plan`` (training missing runs when ``train``)."""
    out = {}
    for group in plan.groups:
        _, reference = plan.variants(group)
        out[group] = compare(
            plan.configs(group),
            plan.seeds,
            reference=reference,
            train=train,
            references=group_references(group, plan.architectures),
            primary=primary_variant(group, plan.architectures, plan.headline),
        )
    return out


def forest_rows(comparisons: Mapping[str, Comparison]) -> pd.DataFrame:
    """Rows for :func:`cifarkit.plots.comparison_forest`: every variant against its own reference
    (in the augmentation group, the same architecture's crop + flip), with its role (primary or
    exploratory), raw and Holm-adjusted p-values, and its model (which colours its row)."""
    rows = []
    for group, comparison in comparisons.items():
        holm = comparison.holm()
        for label, effect in comparison.paired.items():
            variant = (
                label.replace(", no augmentation", ": no augmentation")
                if group == "augmentation"
                else label
            )
            model = comparison.configs[label].model.name if label in comparison.configs else None
            rows.append(
                {
                    "group": group,
                    "variant": variant,
                    "mean_diff": effect.mean_diff,
                    "low": effect.low,
                    "high": effect.high,
                    "per_seed": list(effect.diffs),
                    "role": comparison.role(label),
                    "p": effect.p_value,
                    "p_holm": holm.get(label),
                    "model": model,
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "group",
            "variant",
            "mean_diff",
            "low",
            "high",
            "per_seed",
            "role",
            "p",
            "p_holm",
            "model",
        ],
    )


def group_text(comparison: Comparison | None) -> str:
    """A group's sentences for the chapter: its primary comparison's, then each exploratory
    one's (:meth:`~cifarkit.studies.variants.Comparison.sentences`); ``None`` (a group the
    chapter's ``groups`` parameter left out) says so."""
    if comparison is None:
        return "This group was not run (groups parameter)."
    return " ".join(comparison.sentences())


def details_table(comparisons: Mapping[str, Comparison]) -> pd.DataFrame:
    """Every group's :meth:`~cifarkit.studies.variants.Comparison.details_table` in one table,
    indexed by group and variant: seeds, reference, raw and Holm-adjusted p, training minutes."""
    tables = {group: c.details_table() for group, c in comparisons.items()}
    if not tables:
        return pd.DataFrame()
    return pd.concat(tables, names=["group", "variant"])


def provenance(comparisons: Mapping[str, Comparison]) -> str:
    """Markdown: each group's runs (:meth:`~cifarkit.studies.variants.Comparison.provenance`)
    under the group's name; a run shared by several groups is listed in each."""
    return "\n\n".join(
        f"**{group.capitalize()}**\n\n{c.provenance()}" for group, c in comparisons.items()
    )
