"""The study plan: every run a book build needs, known before anything trains.

Each chapter that trains declares its runs here, from the chapter's own parameters and
through the same study functions its notebook calls (so the plan and the chapter cannot
drift apart: a run the plan missed is one the chapter trains or, with ``--no-train``, fails
on by name). :func:`study_plan` merges the chapters' runs, one row per distinct run folder,
with the chapters that use it; :func:`estimate_minutes` prices the missing ones from this
machine's measured training speed; :func:`train_plan` trains them with one progress bar.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from cifarkit.core.config import ExperimentConfig, load_config, overrides_between
from cifarkit.core.errors import CifarkitError

log = logging.getLogger(__name__)

Runs = list[tuple[ExperimentConfig, int]]


# --------------------------------------------------------------------------- each chapter's runs


def baseline_runs(profile: str, seeds: int | None = None, **_: Any) -> Runs:
    """The baseline chapter: the CNN and ResNet20 over the same seeds."""
    configs = [load_config("baseline_cnn", profile), load_config("resnet20", profile)]
    n = seeds or configs[1].seeds
    return [(cfg, seed) for cfg in configs for seed in range(n)]


def ablation_runs(profile: str, seeds: int | None = None, base: str | None = None,
                  architectures: Sequence[str] | None = None, groups: Sequence[str] | None = None,
                  train_per_class: int | None = None, epochs: int | None = None, **_: Any) -> Runs:
    """The ablations chapter: every group's variants over the plan's seeds."""
    from cifarkit.studies import ablations
    from cifarkit.studies.variants import seed_list

    plan = ablations.default_plan(profile, seeds=seeds, base=base, architectures=architectures, groups=groups)
    common = dict(plan.common)
    if train_per_class is not None:
        common["data.train_per_class"] = train_per_class
    if epochs is not None:
        common["train.epochs"] = epochs
    plan = ablations.default_plan(profile, seeds=plan.seeds, base=plan.base, architectures=plan.architectures,
                                  groups=plan.groups, common=common)
    out: Runs = []
    for group in plan.groups:
        variants, _ = ablations.group_variants(group, plan.base, plan.architectures)
        for variant in variants.values():
            cfg = variant.config(plan.profile, plan.common)
            out += [(cfg, seed) for seed in seed_list(plan.seeds)]
    return out


def transfer_runs(profile: str, sizes: Sequence[int] | None = None, strategies: Sequence[str] | None = None,
                  seeds: Any = None, epochs: int | None = None, source_epochs: int | None = None,
                  imagenet_input_size: int | None = None, **_: Any) -> Runs:
    """The transfer chapter's split-CIFAR grid: the task-A source, then every target run.

    ImageNet backbones are left out: they train only where their weight files exist.
    """
    from cifarkit.data.identity import data_hash_for
    from cifarkit.runs import locate
    from cifarkit.studies import transfer

    plan = transfer.study_plan(profile, sizes=sizes, strategies=strategies, seeds=seeds, epochs=epochs,
                               source_epochs=source_epochs, imagenet_input_size=imagenet_input_size)
    source = transfer.source_config(plan)
    source_run = locate(source, 0, data_hash_for(source.data)).path.name
    targets = [(transfer.target_config(plan, strategy, size, source_run), seed)
               for strategy, size, seed in transfer.grid_cells(plan)]
    return [(source, 0), *targets]


def interpretability_runs(profile: str, seed: int = 0, **_: Any) -> Runs:
    """The interpretability chapter: ResNet20 and the CNN, and ResNet20 with epoch snapshots."""
    from cifarkit.interpret.study import snapshot_plan

    resnet, cnn = load_config("resnet20", profile), load_config("baseline_cnn", profile)
    snapshots = load_config("resnet20", profile,
                            overrides={"train.snapshot_epochs": list(snapshot_plan(resnet.train.epochs))})
    return [(resnet, seed), (cnn, seed), (snapshots, seed)]


def fast_training_runs(profile: str, seeds: int = 1, train_steps: int | None = None, **_: Any) -> Runs:
    """The fast-training chapter: the ladder's first ``train_steps`` steps (2 in smoke, else 0)."""
    from cifarkit.studies import ladder
    from cifarkit.studies.variants import seed_list

    train = (2 if profile == "smoke" else 0) if train_steps is None else int(train_steps)
    configs = ladder.ladder_configs(profile)
    chosen = ladder.steps_to_train(list(configs), train)
    return [(configs[step], seed) for step in chosen for seed in seed_list(seeds)]


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


def study_plan(profile: str, chapter: str | None = None, params: Mapping[str, Any] | None = None,
               chapters: Sequence[str] | None = None) -> list[PlannedRun]:
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
        raise CifarkitError(f"chapter {chapter!r} trains no runs or does not exist; chapters that train: "
                            f"{', '.join(CHAPTERS)}")
    names = [chapter] if chapter is not None else [c for c in CHAPTERS if chapters is None or c in chapters]
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


# --------------------------------------------------------------------------- estimates


def speed_key(cfg: ExperimentConfig) -> tuple[str, str, int]:
    """Runs of one model family, precision and batch size train at the same speed per image."""
    return cfg.model.name, "bfloat16" if cfg.train.bfloat16 else "float32", cfg.train.batch_size


def measured_speeds(plan: Sequence[PlannedRun], probe: bool = True) -> dict[tuple[str, str, int], float]:
    """Training images per second for every speed key of ``plan``'s missing runs, on this machine.

    Read from the run store first (the complete runs of the same family: images x epochs /
    training seconds), else from a short throughput probe (:func:`cifarkit.bench.throughput`,
    kept under ``artifacts/bench/`` with the machine record, so it runs once per host).
    """
    from cifarkit.runs import Run, list_runs, runs_root
    from cifarkit.studies.transfer import training_images

    speeds: dict[tuple[str, str, int], list[float]] = {}
    for row in list_runs():
        if row["status"] != "complete" or not row["train_seconds"]:
            continue
        try:
            cfg = Run(runs_root() / row["run"]).config()
        except (CifarkitError, OSError, ValueError):
            continue
        images = training_images(cfg)
        speeds.setdefault(speed_key(cfg), []).append(images * cfg.train.epochs / float(row["train_seconds"]))
    out = {key: float(pd.Series(values).median()) for key, values in speeds.items()}
    if probe:
        for entry in plan:
            key = speed_key(entry.config)
            if not entry.complete and key not in out:
                out[key] = _probe(entry.config)
    return out


def _probe(cfg: ExperimentConfig) -> float:
    """Real-pipeline img/s of ``cfg``'s family on this machine: the kept probe if it was measured
    on this CPU, else a short measurement, kept for next time."""
    import json

    from cifarkit.bench.throughput import result_path, throughput
    from cifarkit.core.atomic import write_json
    from cifarkit.core.repro import environment_record

    precision = "mixed_bfloat16" if cfg.train.bfloat16 else "float32"
    path = result_path(cfg.name, cfg.profile, cfg.train.augment.mode, cfg.train.batch_size, precision)
    record = environment_record()
    try:  # a file measured on another CPU is not this machine's figure: measure again
        kept = json.loads(path.read_text())
        if (kept["environment"].get("cpu"), kept["environment"].get("cpu_isa")) == (record["cpu"], record["cpu_isa"]):
            return float(kept["pipeline_img_s"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    log.info("measuring %s's training speed on this machine (once per host)...", cfg.model.name)
    result = throughput(cfg.name, cfg.profile, batch_size=cfg.train.batch_size, steps=10, warmup=3, repeats=1,
                        overrides=overrides_between(load_config(cfg.name, cfg.profile), cfg) or None)
    write_json(path, result.as_dict())
    return result.pipeline_img_s


def estimate_minutes(entry: PlannedRun, speeds: Mapping[tuple[str, str, int], float]) -> float | None:
    """Training minutes of ``entry`` at the measured speed of its family (None if unmeasured).

    The validation pass after each epoch and the final test predictions run at about three
    times the training speed (no backward pass), so they add their images at that rate.
    """
    speed = speeds.get(speed_key(entry.config))
    if not speed:
        return None
    cfg = entry.config
    train = entry.training_images * cfg.train.epochs / speed
    evaluation = (10 * cfg.data.val_per_class * cfg.train.epochs + (cfg.data.test_limit or 10_000)) / (3 * speed)
    return (train + evaluation) / 60


def plan_table(plan: Sequence[PlannedRun], speeds: Mapping[tuple[str, str, int], float]) -> pd.DataFrame:
    """One row per run: experiment, changes, seed, epochs, images, chapters, stored, estimate."""
    rows = [{"experiment": e.config.name, "changes": _short(changes(e.config) or "-"), "seed": e.seed,
             "epochs": e.config.train.epochs, "train images": e.training_images,
             "chapters": ", ".join(e.chapters), "stored": "yes" if e.complete else "missing",
             "est. min": None if e.complete else estimate_minutes(e, speeds)} for e in plan]
    return pd.DataFrame(rows, columns=["experiment", "changes", "seed", "epochs", "train images", "chapters",
                                       "stored", "est. min"])


def _short(text: str, limit: int = 70) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def total_text(plan: Sequence[PlannedRun], speeds: Mapping[tuple[str, str, int], float]) -> str:
    """The plan's size and estimated cost in one line."""
    missing = [e for e in plan if not e.complete]
    minutes = [estimate_minutes(e, speeds) for e in missing]
    known = sum(m for m in minutes if m is not None)
    unknown = sum(m is None for m in minutes)
    text = (f"{len(plan)} distinct runs, {len(plan) - len(missing)} stored, {len(missing)} to train: "
            f"about {known:.0f} min of training on this machine")
    if unknown:
        text += f" plus {unknown} run(s) whose model family has no measured speed here"
    return text


# --------------------------------------------------------------------------- training it


def train_plan(plan: Sequence[PlannedRun], speeds: Mapping[tuple[str, str, int], float]) -> list[str]:
    """Train the plan's missing runs in order with one overall progress line per run (run i of N,
    elapsed, ETA from the estimates); resumable, since every run is. Returns the trained folders."""
    from cifarkit.runs import get_or_train

    missing = [e for e in plan if not e.complete]
    estimates = [estimate_minutes(e, speeds) or 0.0 for e in missing]
    started = time.perf_counter()
    trained = []
    for i, entry in enumerate(missing):
        elapsed = (time.perf_counter() - started) / 60
        left = sum(estimates[i:])
        log.info("[plan: run %d of %d, %.1f min elapsed, about %.0f min left] %s seed %d (%s)", i + 1,
                 len(missing), elapsed, left, entry.config.name, entry.seed, changes(entry.config) or "as configured")
        get_or_train(entry.config, entry.seed, label=f"[plan {i + 1}/{len(missing)}] ")
        trained.append(entry.folder)
    return trained
