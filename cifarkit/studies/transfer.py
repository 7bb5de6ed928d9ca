"""Transfer-learning studies: split-CIFAR (always runs) and ImageNet backbones (when their weights exist).

**Split-CIFAR** (the design of Yosinski et al. 2014 on CIFAR-10): task A = airplane,
automobile, bird, cat, deer; task B = dog, frog, horse, ship, truck. Both hold two vehicles
and three animals, and each B class has a related A class (truck/automobile, ship/airplane,
dog/cat, horse/deer, frog/bird), so transfer has a fair chance; the split is also the
first/last five of CIFAR-10's class order, so nobody picked it after seeing results.
ResNet20 is pretrained on A (:func:`source_config`), then trained on B with each
:data:`STRATEGIES` entry at several training-set sizes and seeds (:func:`run_grid`);
every run goes through :func:`cifarkit.runs.get_or_train` (cached, MLflow-tracked). A
target config names the source run's folder, itself content-addressed, so a changed
source changes every target's run key. The chapter's **primary comparison** is
:data:`PRIMARY`: the linear probe of A's frozen features against random frozen features
(:func:`transfer_check`); every strategy-against-scratch contrast is exploratory, with
Holm-adjusted p-values (:func:`gains_over_scratch`).

**ImageNet** (:func:`imagenet_availability`, :func:`imagenet_probe`,
:func:`imagenet_finetune`): keras.applications backbones with ImageNet weights from Keras'
cache or ``model.weights_path``. The transfer assumption is checked first with a linear
probe (frozen backbone + trained head) of ImageNet against random weights; fine-tuning
runs only if ImageNet features score above random ones on the *validation* split (one
seed, so the decision is exploratory; the test split is kept for reporting). Missing
weights make rows "not run", never a silent switch to random weights.

The defaults of each profile (sizes, epochs, seeds, strategies) are in
:data:`PROFILE_DEFAULTS`; :func:`study_plan` fills every ``None`` parameter from them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from cifarkit.core.config import ExperimentConfig, load_config
from cifarkit.core.errors import CifarkitError
from cifarkit.evaluation import stats, verdicts

log = logging.getLogger(__name__)

TASK_A: tuple[str, ...] = ("airplane", "automobile", "bird", "cat", "deer")
TASK_B: tuple[str, ...] = ("dog", "frog", "horse", "ship", "truck")
SOURCE_EXPERIMENT, TARGET_EXPERIMENT, IMAGENET_EXPERIMENT = (
    "transfer_source",
    "transfer_target",
    "transfer_imagenet",
)
RESNET20_GROUPS = 3  # stage 1 (with the stem), stage 2, stage 3
DIFF_LR_DECAY = (
    0.4  # each group one step further from the head trains at 0.4x the LR (ULMFiT uses 1/2.6)
)

#: strategy -> (uses the task-A source, transfer-section fields; ``unfreeze_every`` is set per run).
STRATEGIES: dict[str, tuple[bool, dict[str, Any] | None]] = {
    "scratch": (False, None),
    "frozen1": (True, {"freeze_through": 1}),
    "frozen2": (True, {"freeze_through": 2}),
    "frozen3": (True, {"freeze_through": 3}),
    "finetune": (True, {"freeze_through": 0}),
    "progressive": (True, {"freeze_through": RESNET20_GROUPS, "unfreeze_every": None}),
    "difflr": (True, {"freeze_through": 0, "lr_group_decay": DIFF_LR_DECAY}),
    "random_frozen3": (False, {"freeze_through": 3}),
}
#: The chapter's primary comparison, declared in the study definition: the linear probe on
#: task B, A's frozen features (``frozen3``) against the same network's random features.
PRIMARY = ("random_frozen3", "frozen3")
LABELS: dict[str, str] = {
    "scratch": "from scratch",
    "frozen1": "A-features frozen through stage 1",
    "frozen2": "A-features frozen through stage 2",
    "frozen3": "A-features frozen through stage 3 (linear head)",
    "finetune": "full fine-tuning",
    "progressive": "progressive unfreezing",
    "difflr": f"differential LR (x{DIFF_LR_DECAY} per group)",
    "random_frozen3": "random features frozen through stage 3 (linear head)",
}


@dataclass(frozen=True)
class StudyPlan:
    """The split-CIFAR grid one chapter build runs."""

    profile: str
    sizes: tuple[int, ...]  # B training images in total (5 classes)
    strategies: tuple[str, ...]
    seeds: tuple[int, ...]
    source_epochs: int
    source_per_class: int | None  # task-A training images per class; None = all of the split
    target_epochs: dict[int, int]  # per size
    val_per_class: int  # validation images per B class (monitoring only)
    probe_size: int  # size at which the transfer check (A-features vs random features) runs
    test_limit: int | None  # task-B test images (stratified; None = all 5,000)
    imagenet_backbones: tuple[str, ...] = ("resnet50", "efficientnetb0", "mobilenetv2")
    imagenet_input_size: int = 96
    imagenet_size: int = 2500
    imagenet_epochs: int = 5
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def n_runs(self) -> int:
        probe = 0 if "random_frozen3" in self.strategies else len(self.seeds)
        return 1 + len(self.sizes) * len(self.strategies) * len(self.seeds) + probe


PROFILE_DEFAULTS: dict[str, dict[str, Any]] = {
    # One small size, one seed (so no CIs), two epochs: exercises the code.
    "smoke": dict(
        sizes=(250,),
        strategies=("scratch", "frozen3", "finetune", "progressive", "difflr"),
        seeds=(0,),
        source_epochs=3,
        source_per_class=None,
        target_epochs={250: 2},
        val_per_class=50,
        probe_size=250,
        test_limit=500,
        imagenet_size=250,
        imagenet_epochs=1,
    ),
    # Every strategy at one small task-B size over five seeds (the primary probe is called or
    # bounded by the report's rule, which needs five), from a two-epoch source
    # (`cifarkit plan --chapter transfer` prints the cost on this machine).
    "cpu": dict(
        sizes=(500,),
        strategies=("scratch", "frozen3", "finetune", "progressive", "difflr"),
        seeds=(0, 1, 2, 3, 4),
        source_epochs=2,
        source_per_class=None,
        target_epochs={500: 8},
        val_per_class=50,
        probe_size=500,
        test_limit=2500,
        imagenet_size=2500,
        imagenet_epochs=3,
    ),
    # The whole grid, for a GPU.
    "full": dict(
        sizes=(500, 2500, 20000),
        strategies=(
            "scratch",
            "frozen1",
            "frozen2",
            "frozen3",
            "finetune",
            "progressive",
            "difflr",
        ),
        seeds=(0, 1, 2, 3, 4),
        source_epochs=30,
        source_per_class=None,
        target_epochs={500: 60, 2500: 30, 20000: 30},
        val_per_class=200,
        probe_size=500,
        test_limit=None,
        imagenet_size=2500,
        imagenet_epochs=10,
        imagenet_input_size=224,
    ),
}


def study_plan(
    profile: str,
    sizes: Sequence[int] | None = None,
    strategies: Sequence[str] | None = None,
    seeds: int | Sequence[int] | None = None,
    epochs: int | None = None,
    source_epochs: int | None = None,
    imagenet_input_size: int | None = None,
) -> StudyPlan:
    """The profile's default grid with any non-None parameter replacing its default."""
    if profile not in PROFILE_DEFAULTS:
        raise CifarkitError(
            f"no transfer-study defaults for profile {profile!r}; use one of "
            f"{', '.join(PROFILE_DEFAULTS)} or pass every parameter"
        )
    plan = StudyPlan(profile=profile, **PROFILE_DEFAULTS[profile])
    if sizes is not None:
        bad = [s for s in sizes if s < len(TASK_B) or s % len(TASK_B)]
        if bad:
            raise CifarkitError(
                f"sizes {bad} must be positive multiples of {len(TASK_B)} (images split "
                "evenly over the 5 classes of task B)"
            )
        default = max(plan.target_epochs.values())
        plan = replace(
            plan,
            sizes=tuple(sizes),
            target_epochs={s: plan.target_epochs.get(s, default) for s in sizes},
        )
    if strategies is not None:
        unknown = [s for s in strategies if s not in STRATEGIES]
        if unknown:
            raise CifarkitError(
                f"unknown strategies {unknown}; choose from {', '.join(STRATEGIES)}"
            )
        plan = replace(plan, strategies=tuple(strategies))
    if seeds is not None:
        plan = replace(plan, seeds=tuple(range(seeds)) if isinstance(seeds, int) else tuple(seeds))
    if epochs is not None:
        plan = replace(plan, target_epochs={s: epochs for s in plan.sizes})
    if source_epochs is not None:
        plan = replace(plan, source_epochs=source_epochs)
    if imagenet_input_size is not None:
        plan = replace(plan, imagenet_input_size=imagenet_input_size)
    if plan.probe_size not in plan.sizes:
        plan = replace(plan, probe_size=min(plan.sizes))
    return plan


# --------------------------------------------------------------------------- configs


def source_config(plan: StudyPlan) -> ExperimentConfig:
    """ResNet20 on task A with the plan's (shortened) schedule."""
    overrides: dict[str, Any] = {
        "train.epochs": plan.source_epochs,
        "train.schedule.warmup_epochs": min(2, plan.source_epochs / 4),
    }
    if plan.source_per_class is not None:
        overrides["data.train_per_class"] = plan.source_per_class
    return load_config(SOURCE_EXPERIMENT, plan.profile, overrides)


def target_config(
    plan: StudyPlan, strategy: str, size: int, source_run: str | None
) -> ExperimentConfig:
    """ResNet20 on ``size`` task-B images, trained with ``strategy``."""
    if strategy not in STRATEGIES:
        raise CifarkitError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
    uses_source, section = STRATEGIES[strategy]
    epochs = plan.target_epochs[size]
    overrides: dict[str, Any] = {
        "train.epochs": epochs,
        "data.train_per_class": size // len(TASK_B),
        "data.val_per_class": plan.val_per_class,
        "data.test_limit": plan.test_limit,
    }
    if section is not None:
        transfer = dict(section)
        if "unfreeze_every" in transfer:  # unfreeze one group per quarter of training
            transfer["unfreeze_every"] = max(1, epochs // (RESNET20_GROUPS + 1))
        if uses_source:
            if source_run is None:
                raise CifarkitError(f"strategy {strategy!r} needs the task-A source run")
            transfer["source_run"] = source_run
        overrides.update({f"transfer.{k}": v for k, v in transfer.items()})
    return load_config(TARGET_EXPERIMENT, plan.profile, overrides)


# --------------------------------------------------------------------------- running


@dataclass(frozen=True)
class GridRun:
    strategy: str
    size: int
    seed: int
    run: Any  # cifarkit.runs.Run

    @property
    def accuracy(self) -> float:
        return float(self.run.metrics()["test_accuracy"])


def _run(cfg: ExperimentConfig, seed: int, label: str, train: bool):
    """The complete run of (``cfg``, ``seed``): trained when missing if ``train``, else a
    missing run is an error naming the command that makes it."""
    from cifarkit.runs import get_or_train

    if train:
        return get_or_train(cfg, seed, label=label)
    from cifarkit.data.identity import data_hash_for
    from cifarkit.runs import locate
    from cifarkit.studies.variants import train_command

    run = locate(cfg, seed, data_hash_for(cfg.data))
    if not run.complete:
        raise CifarkitError(
            f"run {run.path.name} ({label.strip()} seed {seed}) is {run.status}; make it with: "
            f"{train_command(cfg, [seed])}"
        )
    return run


def train_source(plan: StudyPlan, seed: int = 0, *, train: bool = True):
    """The task-A ResNet20 (trained once, then cached; ``train=False``: only looked up)."""
    return _run(source_config(plan), seed, "[transfer source] ", train)


def grid_cells(plan: StudyPlan) -> list[tuple[str, int, int]]:
    """Every (strategy, size, seed) target run of the grid, with the transfer check's baseline."""
    cells = [
        (st, size, seed) for size in plan.sizes for st in plan.strategies for seed in plan.seeds
    ]
    if "random_frozen3" not in plan.strategies:  # the transfer check's random-feature baseline
        cells += [("random_frozen3", plan.probe_size, seed) for seed in plan.seeds]
    return cells


def run_grid(plan: StudyPlan, *, train: bool = True) -> tuple[Any, list[GridRun]]:
    """Train (or fetch) the source, then every (strategy, size, seed) target run; with
    ``train=False`` a missing run is an error instead of a training (the introduction, which
    executes after this chapter, reads the runs this way)."""
    source = train_source(plan, train=train)
    cells = grid_cells(plan)
    done = []
    for i, (strategy, size, seed) in enumerate(cells, start=1):
        cfg = target_config(plan, strategy, size, source.path.name)
        run = _run(cfg, seed, f"[transfer {i}/{len(cells)} {strategy} n={size}] ", train)
        done.append(GridRun(strategy, size, seed, run))
    return source, done


def results_table(runs: Sequence[GridRun]) -> pd.DataFrame:
    """One row per (strategy, size): mean test accuracy over seeds with its 95% t interval."""
    rows = []
    keyed: dict[tuple[str, int], list[GridRun]] = {}
    for r in runs:
        keyed.setdefault((r.strategy, r.size), []).append(r)
    for (strategy, size), group in keyed.items():
        summary = stats.summarise([r.accuracy for r in group])
        rows.append(
            {
                "strategy": strategy,
                "label": LABELS[strategy],
                "size": size,
                "mean": summary.mean,
                "low": summary.low,
                "high": summary.high,
                "n": summary.n,
                "accuracy": summary.format(scale=100, digits=1),
                "per_seed": [r.accuracy for r in sorted(group, key=lambda g: g.seed)],
                "seeds": [r.seed for r in sorted(group, key=lambda g: g.seed)],
                "runs": [r.run.path.name for r in sorted(group, key=lambda g: g.seed)],
            }
        )
    order = list(STRATEGIES)
    return (
        pd.DataFrame(rows)
        .sort_values(
            ["size", "strategy"], key=lambda c: c.map(order.index) if c.name == "strategy" else c
        )
        .reset_index(drop=True)
    )


def wide_table(table: pd.DataFrame) -> pd.DataFrame:
    """Strategies as rows, sizes as columns, ``mean ± half-width`` (percent) as cells."""
    wide = table.pivot(index="label", columns="size", values="accuracy")
    order = [LABELS[s] for s in STRATEGIES if LABELS[s] in wide.index]
    wide = wide.loc[order]
    wide.columns = [f"{c:,} images" for c in wide.columns]
    wide.index.name = "strategy (test accuracy on B, %)"
    return wide


def gains_over_scratch(runs: Sequence[GridRun]) -> pd.DataFrame:
    """Paired (same seed) difference of each strategy to training from scratch, per size.

    These contrasts are exploratory: ``p_holm`` adjusts the paired t-test's ``p`` over all of
    them (Holm), and ``verdict``/``sentence`` come from
    :func:`cifarkit.evaluation.verdicts.verdict` on the adjusted p-value.
    """
    by_key = {(r.strategy, r.size, r.seed): r.accuracy for r in runs}
    cells = []
    for strategy, size in dict.fromkeys((r.strategy, r.size) for r in runs):
        if strategy in (
            "scratch",
            "random_frozen3",
        ):  # the reference, and the probe's random baseline
            continue
        seeds = sorted(
            s
            for (st, n, s) in by_key
            if st == strategy and n == size and ("scratch", size, s) in by_key
        )
        if not seeds:
            continue
        scratch = {s: by_key[("scratch", size, s)] for s in seeds}
        ours = {s: by_key[(strategy, size, s)] for s in seeds}
        cells.append((strategy, size, stats.paired_comparison(scratch, ours)))
    adjusted = stats.holm([c.p_value for _, _, c in cells])
    rows = []
    for (strategy, size, c), p_holm in zip(cells, adjusted, strict=True):
        v = verdicts.verdict(
            c,
            f"from scratch ({size:,} images)",
            f"{LABELS[strategy]} ({size:,} images)",
            metric="test accuracy on B",
            p_adjusted=p_holm,
        )
        rows.append(
            {
                "group": f"{size:,} images",
                "variant": LABELS[strategy],
                "strategy": strategy,
                "size": size,
                "mean_diff": c.mean_diff,
                "low": c.low,
                "high": c.high,
                "n": c.n,
                "p": c.p_value,
                "p_holm": p_holm,
                "verdict": v.kind,
                "sentence": v.sentence,
                "per_seed": list(c.diffs),
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "group",
            "variant",
            "strategy",
            "size",
            "mean_diff",
            "low",
            "high",
            "n",
            "p",
            "p_holm",
            "verdict",
            "sentence",
            "per_seed",
        ],
    )


def gains_sentence(gains: pd.DataFrame) -> str:
    """What :func:`gains_over_scratch` supports, in words: the contrasts whose difference can be
    called after Holm's adjustment, or that none can. It never picks the largest or smallest
    of the noisy differences."""
    if gains.empty:
        return "No strategy has runs to compare with training from scratch in this build."
    k = len(gains)
    claimed = gains[gains["verdict"] == "claimed"]
    head = (
        f"All {k} strategy-and-size contrasts with training from scratch are exploratory (paired over "
        f"seeds, Holm-adjusted over the {k})"
    )
    if claimed.empty:
        return (
            f"{head}; none can be called a gain or a loss with this build's seeds. The table gives each "
            "contrast's difference with its interval."
        )
    return f"{head}; {len(claimed)} can be called: " + " ".join(claimed["sentence"])


def transfer_check(runs: Sequence[GridRun], size: int) -> dict[str, Any]:
    """The chapter's primary comparison (:data:`PRIMARY`): linear probe on task B, A-pretrained
    features (frozen3) against random features (random_frozen3), paired over seeds.

    ``transfers`` is True only when :func:`cifarkit.evaluation.verdicts.verdict` calls the
    difference in favour of A's features.
    """
    pre = {r.seed: r.accuracy for r in runs if r.strategy == "frozen3" and r.size == size}
    rnd = {r.seed: r.accuracy for r in runs if r.strategy == "random_frozen3" and r.size == size}
    seeds = sorted(set(pre) & set(rnd))
    if not seeds:
        return {"ran": False, "size": size}
    diffs = [pre[s] - rnd[s] for s in seeds]
    comparison = stats.paired_comparison({s: rnd[s] for s in seeds}, {s: pre[s] for s in seeds})
    verdict = verdicts.verdict(
        comparison,
        "the probe on random features",
        "the probe on A's features",
        metric="test accuracy on B",
    )
    return {
        "ran": True,
        "size": size,
        "pretrained": stats.summarise([pre[s] for s in seeds]),
        "random": stats.summarise([rnd[s] for s in seeds]),
        "gain": stats.summarise(diffs),
        "n": len(seeds),
        "comparison": comparison,
        "verdict": verdict,
        "transfers": verdict.claim and comparison.mean_diff > 0,
    }


def probe_verdict(check: dict[str, Any]) -> str:
    """The linear probe's conclusion: the :func:`cifarkit.evaluation.verdicts.verdict` sentence."""
    if not check.get("ran"):
        return "The linear probe did not run in this build."
    return check["verdict"].sentence


def gains_display(gains: pd.DataFrame) -> pd.DataFrame:
    """:func:`gains_over_scratch` for display: points with their 95% interval, raw and
    Holm-adjusted p, and the verdict, indexed by size and strategy."""
    shown = verdicts.differences_display(gains)
    shown.index = pd.MultiIndex.from_arrays(
        [gains["group"], gains["variant"]], names=["group", "variant"]
    )
    return shown.rename(columns={"Δ (points)": "gain (points)"})


def grid_cells_note(plan: StudyPlan) -> str:
    """Which cells of the full grid this profile ran (for the chapter's prose)."""
    full = study_plan("full")
    ran = [LABELS[s] for s in plan.strategies]
    skipped = [LABELS[s] for s in full.strategies if s not in plan.strategies]
    sizes = ", ".join(f"{s:,}" for s in plan.sizes)
    text = (
        f"This build (profile {plan.profile}) ran {len(plan.strategies)} strategies ({'; '.join(ran)}) at "
        f"{len(plan.sizes)} training-set size(s) of task B ({sizes} images) with {len(plan.seeds)} "
        f"seed(s) each (epochs: {', '.join(f'{e} at {s:,} images' for s, e in plan.target_epochs.items())}; "
        f"task-A pretraining: {plan.source_epochs} epochs), plus the random-feature probe at "
        f"{plan.probe_size:,} images"
    )
    if skipped:
        text += f"; it left out {'; '.join(skipped)}"
    missing = [s for s in full.sizes if s not in plan.sizes]
    if missing:
        text += f" and the size(s) {', '.join(f'{s:,}' for s in missing)}"
    if len(plan.seeds) < 2:
        text += "; with one seed no confidence interval can be given"
    return text + "."


# --------------------------------------------------------------------------- ImageNet


def imagenet_availability(
    backbones: Sequence[str], input_size: int, weights_path: str | None = None
) -> pd.DataFrame:
    """Per backbone: the weights file it needs, where cifarkit looks, and whether it is there."""
    from cifarkit.models.backbones import keras_models_cache, resolve_weights, weights_file_name

    rows = []
    for name in backbones:
        size = input_size
        file_name = weights_file_name(name, size)
        # A named file serves the backbone whose Keras file name it carries; the others use the cache.
        own = weights_path if weights_path and Path(weights_path).name == file_name else None
        try:
            path = str(resolve_weights(name, size, own))
            available, problem = True, ""
        except CifarkitError as exc:
            path, available, problem = "", False, str(exc)
        rows.append(
            {
                "backbone": name,
                "input_size": size,
                "file": file_name,
                "looked_in": own or str(keras_models_cache()),
                "available": available,
                "path": path,
                "problem": problem,
            }
        )
    return pd.DataFrame(rows)


def imagenet_config(
    plan: StudyPlan,
    backbone: str,
    *,
    imagenet: bool,
    freeze_through: int = 0,
    unfreeze_every: int = 0,
    lr_group_decay: float = 1.0,
    weights_path: str | None = None,
) -> ExperimentConfig:
    """A backbone on task B (``plan.imagenet_size`` images): ImageNet or random weights, a strategy."""
    overrides: dict[str, Any] = {
        "model.name": backbone,
        "model.weights": "imagenet" if imagenet else "none",
        "model.input_size": plan.imagenet_input_size,
        "train.epochs": plan.imagenet_epochs,
        "data.train_per_class": plan.imagenet_size // len(TASK_B),
        "data.val_per_class": plan.val_per_class,
        "data.test_limit": plan.test_limit,
        "transfer.freeze_through": freeze_through,
        "transfer.unfreeze_every": unfreeze_every,
        "transfer.lr_group_decay": lr_group_decay,
    }
    if imagenet and weights_path:
        overrides["model.weights_path"] = weights_path
    return load_config(IMAGENET_EXPERIMENT, plan.profile, overrides)


BACKBONE_GROUPS = 4
#: ImageNet strategies: the linear probe, then fine-tuning the top two stages (ResNet50's
#: conv4 + conv5), progressive unfreezing and differential LR over the whole backbone.
IMAGENET_STRATEGIES: dict[str, dict[str, Any]] = {
    "frozen (linear probe)": {"freeze_through": BACKBONE_GROUPS},
    "fine-tune top 2 stages": {"freeze_through": 2},
    "progressive unfreezing": {"freeze_through": BACKBONE_GROUPS, "unfreeze_every": 1},
    "differential LR": {"lr_group_decay": DIFF_LR_DECAY},
}


def _val_accuracy(run: Any) -> float:
    """Accuracy on the validation split from the run's stored validation logits."""
    logits, labels = run.predictions("val")
    return float((logits.argmax(axis=1) == labels).mean())


def imagenet_probe(plan: StudyPlan, availability: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Linear probe (frozen backbone + trained head) with ImageNet vs random weights, per backbone.

    Whether fine-tuning runs is decided on *validation* accuracy (column ``fine_tune``), so
    the test split is only reported; with one seed the decision is exploratory and the
    status says so. Rows of backbones whose ImageNet file is missing say "not run";
    nothing is trained for them.
    """
    from cifarkit.runs import get_or_train

    rows = []
    for row in availability.itertuples():
        out = {"backbone": row.backbone, "input_size": row.input_size}
        if not row.available:
            rows.append(
                {
                    **out,
                    "imagenet val": "not run",
                    "random val": "not run",
                    "imagenet test": "not run",
                    "random test": "not run",
                    "fine_tune": False,
                    "status": f"not run: {row.file} missing",
                }
            )
            continue
        val, test = {}, {}
        for imagenet in (True, False):
            cfg = imagenet_config(
                plan,
                row.backbone,
                imagenet=imagenet,
                freeze_through=BACKBONE_GROUPS,
                weights_path=row.path if imagenet else None,
            )
            run = get_or_train(cfg, seed, label=f"[imagenet probe {row.backbone}] ")
            key = "imagenet" if imagenet else "random"
            val[key], test[key] = _val_accuracy(run), float(run.metrics()["test_accuracy"])
        fine_tune = val["imagenet"] > val["random"]
        rows.append(
            {
                **out,
                "imagenet val": f"{val['imagenet'] * 100:.1f}",
                "random val": f"{val['random'] * 100:.1f}",
                "imagenet test": f"{test['imagenet'] * 100:.1f}",
                "random test": f"{test['random'] * 100:.1f}",
                "fine_tune": fine_tune,
                "status": (
                    f"ImageNet above random on validation (seed {seed} only: exploratory); fine-tuned"
                    if fine_tune
                    else f"ImageNet not above random on validation (seed {seed} only): "
                    "fine-tuning skipped"
                ),
            }
        )
    return pd.DataFrame(rows)


def imagenet_finetune(
    plan: StudyPlan, availability: pd.DataFrame, probe: pd.DataFrame, seed: int = 0
) -> pd.DataFrame:
    """Fine-tuning strategies, run only for backbones whose probe scored above random features
    on validation (:func:`imagenet_probe`'s ``fine_tune``); one seed, so exploratory."""
    from cifarkit.runs import get_or_train

    rows = []
    for row, probed in zip(availability.itertuples(), probe.itertuples(), strict=True):
        for strategy, section in IMAGENET_STRATEGIES.items():
            out = {"backbone": row.backbone, "strategy": strategy}
            if not row.available:
                rows.append(
                    {
                        **out,
                        "test accuracy (%)": "not run",
                        "status": f"not run: {row.file} missing",
                    }
                )
            elif not probed.fine_tune:
                rows.append(
                    {
                        **out,
                        "test accuracy (%)": "not run",
                        "status": "skipped: the probe was not above random features on validation",
                    }
                )
            else:
                cfg = imagenet_config(
                    plan, row.backbone, imagenet=True, weights_path=row.path, **section
                )
                run = get_or_train(cfg, seed, label=f"[imagenet {row.backbone} {strategy}] ")
                rows.append(
                    {
                        **out,
                        "test accuracy (%)": f"{run.metrics()['test_accuracy'] * 100:.1f}",
                        "status": f"run {run.path.name} (seed {seed} only: exploratory)",
                    }
                )
    return pd.DataFrame(rows)


def percent(summary: stats.Summary, points: bool = False) -> str:
    """``23.8% ± 1.2`` (mean ± 95% CI half-width), or ``23.8% (one seed, no CI)``, for prose."""
    unit = " points" if points else "%"
    if summary.n == 0:
        return "not run"
    text = f"{summary.mean * 100:+.1f}{unit}" if points else f"{summary.mean * 100:.1f}{unit}"
    half = summary.half_width
    return f"{text} ± {half * 100:.1f}" if half is not None else f"{text} (one seed, no CI)"


def training_images(cfg: ExperimentConfig) -> int:
    """How many training images ``cfg`` uses (CIFAR-10 has 5,000 a class before the validation split)."""
    per_class = cfg.data.train_per_class or 5000 - cfg.data.val_per_class
    return per_class * len(cfg.data.classes or range(10))


def imagenet_note(availability: pd.DataFrame) -> str:
    """Markdown for the chapter's admonition: which weight files are missing and where to put them."""
    missing = availability[~availability["available"]]
    if missing.empty:
        return "All ImageNet weight files were found ({}); the rows below were run.".format(
            ", ".join(f"`{p}`" for p in availability["path"])
        )
    files = "; ".join(f"`{r.file}` ({r.backbone})" for r in missing.itertuples())
    return (
        f"The ImageNet weights of {', '.join(missing['backbone'])} are not on this machine (it is offline "
        f"and cifarkit never downloads). Put {files} into the Keras cache `{missing['looked_in'].iloc[0]}` "
        "(`KERAS_HOME` moves it), or name the file with the chapter parameter `imagenet_weights_path` "
        "(config key `model.weights_path`). Their rows read *not run*: random weights are never "
        "substituted."
    )
