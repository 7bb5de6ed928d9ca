"""The study plan: every run a book build needs, known before anything trains.

Each chapter that trains declares its runs here, from the chapter's own parameters and
through the same study functions its notebook calls (so the plan and the chapter cannot
drift apart: a run the plan missed is one the chapter trains or, with ``--no-train``, fails
on by name). :func:`study_plan` merges the chapters' runs, one row per distinct run folder,
with the chapters that use it. :mod:`cifarkit.studies.pricing` prices the missing ones from
this machine's measured training speed; :func:`cifarkit.studies.runner.train_plan` trains them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cifarkit.core.config import ExperimentConfig, load_config, overrides_between
from cifarkit.core.errors import CifarkitError

Runs = list[tuple[ExperimentConfig, int]]


# --------------------------------------------------------------------------- each chapter's runs


def baseline_runs(profile: str, seeds: int | None = None, **_: Any) -> Runs:
    """The baseline chapter: the CNN and ResNet20 over the same seeds."""
    configs = [load_config("baseline_cnn", profile), load_config("resnet20", profile)]
    n = seeds or configs[1].seeds
    return [(cfg, seed) for cfg in configs for seed in range(n)]


def ablation_runs(
    profile: str,
    seeds: int | None = None,
    base: str | None = None,
    architectures: Sequence[str] | None = None,
    groups: Sequence[str] | None = None,
    train_per_class: int | None = None,
    epochs: int | None = None,
    exploratory: bool | None = None,
    **_: Any,
) -> Runs:
    """The ablations chapter: every group's variants over the plan's seeds
    (:func:`cifarkit.studies.ablations.chapter_plan`, which the chapter calls too)."""
    from cifarkit.studies import ablations

    return ablations.plan_runs(
        ablations.chapter_plan(
            profile, seeds, base, architectures, groups, train_per_class, epochs, exploratory
        )
    )


def transfer_runs(
    profile: str,
    sizes: Sequence[int] | None = None,
    strategies: Sequence[str] | None = None,
    seeds: Any = None,
    epochs: int | None = None,
    source_epochs: int | None = None,
    imagenet_input_size: int | None = None,
    **_: Any,
) -> Runs:
    """The transfer chapter's split-CIFAR grid: the task-A source, then every target run.

    ImageNet backbones are left out: they train only where their weight files exist.
    """
    from cifarkit.data.identity import data_hash_for
    from cifarkit.runs import locate
    from cifarkit.studies import transfer

    plan = transfer.study_plan(
        profile,
        sizes=sizes,
        strategies=strategies,
        seeds=seeds,
        epochs=epochs,
        source_epochs=source_epochs,
        imagenet_input_size=imagenet_input_size,
    )
    source = transfer.source_config(plan)
    source_run = locate(source, 0, data_hash_for(source.data)).path.name
    targets = [
        (transfer.target_config(plan, strategy, size, source_run), seed)
        for strategy, size, seed in transfer.grid_cells(plan)
    ]
    return [(source, 0), *targets]


def interpretability_runs(profile: str, seed: int = 0, **_: Any) -> Runs:
    """The interpretability chapter: the headline ResNet20 and CNN runs of ``seed`` (the
    profile has ResNet20 keep snapshots for attention over training)."""
    return [(load_config("resnet20", profile), seed), (load_config("baseline_cnn", profile), seed)]


def fast_training_runs(
    profile: str,
    seeds: int | None = None,
    budget: Mapping[str, Any] | None = None,
    steps: int | Sequence[int] | None = None,
    **_: Any,
) -> Runs:
    """The fast-training chapter: the ladder's steps at the profile's chapter budget
    (:func:`cifarkit.studies.ladder.chapter_ladder`)."""
    from cifarkit.studies import ladder
    from cifarkit.studies.variants import seed_list

    chapter = ladder.chapter_ladder(profile, budget, steps, seeds)
    configs = ladder.ladder_configs(profile, chapter.budget)
    chosen = ladder.steps_to_train(list(configs), chapter.steps)
    return [(configs[step], seed) for step in chosen for seed in seed_list(chapter.seeds)]


def precision_text(cfg: ExperimentConfig) -> str:
    """The compute precision a run of ``cfg`` trains in, as its chapter states it."""
    from cifarkit.core import precision

    return precision.describe(cfg.train.precision)


def budget_text(runs: Runs) -> str:
    """What ``runs`` cost in images, epochs, seeds and precision, in one sentence for a chapter.

    Examples
    --------
    >>> from cifarkit.studies import plan
    >>> plan.budget_text(plan.baseline_runs("smoke"))  # doctest: +SKIP
    '4 runs: baseline_cnn, resnet20 on 1,000 training images for 3 epochs (batch 128, ...'
    """
    from cifarkit.studies.transfer import training_images

    groups: dict[tuple[int, int, int, str], tuple[list[str], set[int], list[int]]] = {}
    distinct = {
        (cfg.content_hash(), seed): (cfg, seed) for cfg, seed in runs
    }  # a shared reference once
    for cfg, seed in distinct.values():
        key = (training_images(cfg), cfg.train.epochs, cfg.train.batch_size, precision_text(cfg))
        names, seeds, count = groups.setdefault(key, ([], set(), [0]))
        if cfg.name not in names:
            names.append(cfg.name)
        seeds.add(seed)
        count[0] += 1
    parts = [
        f"{count[0]} run{'s' if count[0] != 1 else ''}: {', '.join(names)} "
        f"on {images:,} training images "
        f"for {epochs} epoch{'s' if epochs != 1 else ''} (batch {batch}, {precision}), "
        f"seed{'s' if len(seeds) != 1 else ''} {', '.join(map(str, sorted(seeds)))}"
        for (images, epochs, batch, precision), (names, seeds, count) in groups.items()
    ]
    return "; ".join(parts) + "." if parts else "No runs."


def chapter_budget(profile: str, chapter: str, params: Mapping[str, Any] | None = None) -> str:
    """:func:`budget_text` of one chapter's runs under ``profile`` and its parameters: the
    sentence each training chapter glues, from the same function the plan uses."""
    if chapter not in CHAPTERS:
        raise CifarkitError(
            f"chapter {chapter!r} trains no runs; chapters that train: {', '.join(CHAPTERS)}"
        )
    given = {k: v for k, v in (params or {}).items() if v is not None}
    return f"Budget of this chapter (profile {profile}): " + budget_text(
        CHAPTERS[chapter](profile, **given)
    )


#: chapter name (its notebook's name) -> the function that declares its runs.
CHAPTERS: dict[str, Callable[..., Runs]] = {
    "baseline": baseline_runs,
    "ablations": ablation_runs,
    "fast_training": fast_training_runs,
    "transfer": transfer_runs,
    "interpretability": interpretability_runs,
}


# --------------------------------------------------------------------------- the plan


@dataclass
class PlannedRun:
    """One distinct run of the plan and the chapters that use it."""

    config: ExperimentConfig
    seed: int
    folder: str
    complete: bool
    chapters: list[str] = field(default_factory=list)

    @property
    def training_images(self) -> int:
        from cifarkit.studies.transfer import training_images

        return training_images(self.config)


def study_plan(
    profile: str,
    chapter: str | None = None,
    params: Mapping[str, Any] | None = None,
    chapters: Sequence[str] | None = None,
) -> list[PlannedRun]:
    """The distinct runs a build of ``profile`` needs, in chapter order.

    Parameters
    ----------
    profile : str
        The book's profile (``smoke``, ``cpu``, ``full``).
    chapter : str, optional
        Only this chapter's runs; ``params`` are its parameters (as ``make chapter PARAMS``).
    params : mapping, optional
        Chapter parameters; only with ``chapter``.
    chapters : sequence of str, optional
        Only these chapters (e.g. the ones a book's table of contents lists); default: all.

    Returns
    -------
    list of PlannedRun
        One per run folder, with whether it is stored and which chapters use it.

    Raises
    ------
    CifarkitError
        For an unknown chapter, or parameters without a chapter.
    """
    from cifarkit.data.identity import data_hash_for
    from cifarkit.runs import locate

    if params and chapter is None:
        raise CifarkitError("--params needs --chapter NAME: parameters go to one chapter")
    if chapter is not None and chapter not in CHAPTERS:
        raise CifarkitError(
            f"chapter {chapter!r} trains no runs or does not exist; chapters that train: "
            f"{', '.join(CHAPTERS)}"
        )
    names = (
        [chapter]
        if chapter is not None
        else [c for c in CHAPTERS if chapters is None or c in chapters]
    )
    plan: dict[str, PlannedRun] = {}
    hashes: dict[str, str] = {}
    for name in names:
        for cfg, seed in CHAPTERS[name](profile, **(dict(params or {}) if chapter else {})):
            source = str(cfg.data.source)
            if source not in hashes:
                hashes[source] = data_hash_for(cfg.data)
            run = locate(cfg, seed, hashes[source])
            entry = plan.get(run.path.name)
            if entry is None:
                entry = plan[run.path.name] = PlannedRun(cfg, seed, run.path.name, run.complete)
            if name not in entry.chapters:
                entry.chapters.append(name)
    return list(plan.values())


def changes(cfg: ExperimentConfig) -> str:
    """What ``cfg`` changes from its experiment under its profile, as ``key=value`` text."""
    try:
        base = load_config(cfg.name, cfg.profile)
    except CifarkitError:
        return ""
    return ", ".join(f"{k}={v}" for k, v in overrides_between(base, cfg).items())
