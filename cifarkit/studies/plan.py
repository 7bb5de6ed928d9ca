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
                  train_per_class: int | None = None, epochs: int | None = None,
                  exploratory: bool | None = None, **_: Any) -> Runs:
    """The ablations chapter: every group's variants over the plan's seeds
    (:func:`cifarkit.studies.ablations.chapter_plan`, which the chapter calls too)."""
    from cifarkit.studies import ablations

    return ablations.plan_runs(ablations.chapter_plan(profile, seeds, base, architectures, groups,
                                                      train_per_class, epochs, exploratory))


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
    """The interpretability chapter: the headline ResNet20 and CNN runs of ``seed`` (the
    profile has ResNet20 keep snapshots for attention over training)."""
    return [(load_config("resnet20", profile), seed), (load_config("baseline_cnn", profile), seed)]


def fast_training_runs(profile: str, seeds: int = 1, budget: Mapping[str, Any] | None = None,
                       steps: int | None = None, **_: Any) -> Runs:
    """The fast-training chapter: the ladder's steps at the profile's chapter budget
    (:func:`cifarkit.studies.ladder.chapter_ladder`)."""
    from cifarkit.studies import ladder
    from cifarkit.studies.variants import seed_list

    common, train = ladder.chapter_ladder(profile, budget, steps)
    configs = ladder.ladder_configs(profile, common)
    chosen = ladder.steps_to_train(list(configs), train)
    return [(configs[step], seed) for step in chosen for seed in seed_list(seeds)]


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
    '4 runs: baseline_cnn, resnet20 on 1,000 training images for 3 epochs (batch 128, float32), seeds 0, 1.'
    """
    from cifarkit.studies.transfer import training_images

    groups: dict[tuple[int, int, int, str], tuple[list[str], set[int], list[int]]] = {}
    distinct = {(cfg.content_hash(), seed): (cfg, seed) for cfg, seed in runs}  # a shared reference once
    for cfg, seed in distinct.values():
        key = (training_images(cfg), cfg.train.epochs, cfg.train.batch_size, precision_text(cfg))
        names, seeds, count = groups.setdefault(key, ([], set(), [0]))
        if cfg.name not in names:
            names.append(cfg.name)
        seeds.add(seed)
        count[0] += 1
    parts = [f"{count[0]} run{'s' if count[0] != 1 else ''}: {', '.join(names)} on {images:,} training images "
             f"for {epochs} epoch{'s' if epochs != 1 else ''} (batch {batch}, {precision}), "
             f"seed{'s' if len(seeds) != 1 else ''} {', '.join(map(str, sorted(seeds)))}"
             for (images, epochs, batch, precision), (names, seeds, count) in groups.items()]
    return "; ".join(parts) + "." if parts else "No runs."


def chapter_budget(profile: str, chapter: str, params: Mapping[str, Any] | None = None) -> str:
    """:func:`budget_text` of one chapter's runs under ``profile`` and its parameters: the
    sentence each training chapter glues, from the same function the plan uses."""
    if chapter not in CHAPTERS:
        raise CifarkitError(f"chapter {chapter!r} trains no runs; chapters that train: {', '.join(CHAPTERS)}")
    given = {k: v for k, v in (params or {}).items() if v is not None}
    return f"Budget of this chapter (profile {profile}): " + budget_text(CHAPTERS[chapter](profile, **given))


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


#: What runs that train at the same speed per image share: model family, precision, batch size.
SpeedKey = tuple[str, str, int]


def speed_key(cfg: ExperimentConfig) -> SpeedKey:
    """Runs of one model family, precision and batch size train at the same speed per image."""
    return cfg.model.name, cfg.train.precision, cfg.train.batch_size


@dataclass(frozen=True)
class Speed:
    """What one speed key costs on this machine.

    ``train_img_s`` and ``predict_img_s`` price the training steps and the evaluation passes;
    ``startup_seconds`` is a run's fixed cost (building, compiling and tracing the model,
    tracing its evaluation and prediction, saving and registering it); ``factor`` is the median of actual over estimated wall time of
    the complete runs of this key already in the run store (1.0 when there are none).
    """

    train_img_s: float
    predict_img_s: float
    startup_seconds: float
    factor: float = 1.0
    runs: int = 0  # stored runs the factor was measured on


def measured_speeds(plan: Sequence[PlannedRun], probe: bool = True) -> dict[SpeedKey, Speed | str]:
    """Every speed key of ``plan``'s missing runs priced on this machine, or why it is not.

    The speeds come from a short throughput probe per key (:func:`cifarkit.bench.throughput`,
    kept under ``artifacts/bench/`` with the machine record, so it runs once per host); the
    complete runs of the same key in the run store then correct the probe's estimate by the
    median ratio of their actual to their estimated wall time.

    Raises
    ------
    CifarkitError
        A missing float16 run (the ``full`` profile's mixed precision) on a machine without a
        GPU that TensorFlow can use: refused here, before anything trains.
    """
    from cifarkit.core import precision

    keys: dict[SpeedKey, ExperimentConfig] = {}
    for e in plan:  # each key priced on its first missing run's config
        if not e.complete:
            keys.setdefault(speed_key(e.config), e.config)
    out: dict[SpeedKey, Speed | str] = {}
    for key, cfg in keys.items():
        precision.require_device(key[1])
        if probe:
            out[key] = _probe(cfg)
    stored = _stored_ratios()
    for key, speed in list(out.items()):
        ratios = stored.get(key, [])
        if isinstance(speed, Speed) and ratios:
            out[key] = Speed(speed.train_img_s, speed.predict_img_s, speed.startup_seconds,
                             float(pd.Series(ratios).median()), len(ratios))
    return out


def _stored_ratios() -> dict[SpeedKey, list[float]]:
    """Per speed key, actual / estimated wall time of each complete, never-resumed stored run
    whose key has a kept probe on this machine."""
    from cifarkit.runs import Run, list_runs, runs_root

    ratios: dict[SpeedKey, list[float]] = {}
    probes: dict[SpeedKey, Speed | None] = {}
    for row in list_runs():
        if row["status"] != "complete" or not row.get("wall_seconds") or row.get("resumed_from_epoch"):
            continue
        try:
            cfg = Run(runs_root() / row["run"]).config()
        except (CifarkitError, OSError, ValueError):
            continue
        key = speed_key(cfg)
        if key not in probes:
            probes[key] = _kept_probe(cfg)
        if probes[key] is not None:
            seconds = 60 * run_minutes(cfg, probes[key])
            ratios.setdefault(key, []).append(float(row["wall_seconds"]) / seconds)
    return ratios


def _kept_probe(cfg: ExperimentConfig) -> Speed | None:
    """The kept probe of ``cfg``'s key if it was measured on this CPU with the start-up figures."""
    import json

    from cifarkit.bench.throughput import config_result_path
    from cifarkit.core.repro import environment_record

    record = environment_record()
    try:  # a file measured on another CPU is not this machine's figure
        kept = json.loads(config_result_path(cfg).read_text())
        same_cpu = (kept["environment"].get("cpu"), kept["environment"].get("cpu_isa")) == (
            record["cpu"], record["cpu_isa"])
        if same_cpu and kept.get("finish_seconds") is not None and kept.get("predict_img_s"):
            return Speed(float(kept["pipeline_img_s"]), float(kept["predict_img_s"]),
                         float(kept["startup_seconds"]) + float(kept["finish_seconds"]))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _probe(cfg: ExperimentConfig) -> Speed:
    """``cfg``'s key priced on this machine: the kept probe, else a short measurement, kept."""
    from cifarkit.bench.throughput import config_result_path, throughput
    from cifarkit.core.atomic import write_json

    kept = _kept_probe(cfg)
    if kept is not None:
        return kept
    log.info("measuring %s's training speed on this machine (once per host)...", cfg.model.name)
    # About 1,500 images timed: enough to price a run within the noise of this host, short
    # enough that a cold build's probes cost a minute or two.
    steps = max(2, -(-1536 // cfg.train.batch_size))
    result = throughput(cfg.name, cfg.profile, batch_size=cfg.train.batch_size, steps=steps, warmup=2, repeats=1,
                        model_alone=False,
                        overrides=overrides_between(load_config(cfg.name, cfg.profile), cfg) or None)
    write_json(config_result_path(cfg), result.as_dict())
    return Speed(result.pipeline_img_s, result.predict_img_s or 3 * result.pipeline_img_s,
                 (result.startup_seconds or 0.0) + (result.finish_seconds or 0.0))


def run_minutes(cfg: ExperimentConfig, speed: Speed) -> float:
    """Wall minutes of one run of ``cfg`` at ``speed``, before the stored runs' correction.

    Training steps at the training speed; a validation pass every ``train.validate_every``
    epochs and the final test and validation predictions at the evaluation speed; and the
    fixed cost (which the probe measures as building, compiling and tracing, plus tracing the
    evaluation and prediction passes and saving the model).
    """
    from cifarkit.studies.transfer import training_images

    train = training_images(cfg) * cfg.train.epochs / speed.train_img_s
    n_classes = len(cfg.data.classes) if cfg.data.classes else 10
    val_images = cfg.data.val_per_class * n_classes
    test_images = cfg.data.test_limit or 1_000 * n_classes  # CIFAR-10's test set: 1,000 per class
    passes = cfg.train.epochs // cfg.train.validate_every
    evaluation = (val_images * (passes + 1) + test_images) / speed.predict_img_s
    return (train + evaluation + speed.startup_seconds) / 60


def estimate_minutes(entry: PlannedRun, speeds: Mapping[SpeedKey, Speed | str]) -> float | None:
    """Wall minutes of ``entry`` on this machine (None if its key has no measured speed)."""
    speed = speeds.get(speed_key(entry.config))
    if not isinstance(speed, Speed):
        return None
    return run_minutes(entry.config, speed) * speed.factor


def plan_table(plan: Sequence[PlannedRun], speeds: Mapping[SpeedKey, Speed | str]) -> pd.DataFrame:
    """One row per run: experiment, changes, seed, epochs, images, chapters, stored, estimate."""
    rows = [{"experiment": e.config.name, "changes": _short(changes(e.config) or "-"), "seed": e.seed,
             "epochs": e.config.train.epochs, "train images": e.training_images,
             "chapters": ", ".join(e.chapters), "stored": "yes" if e.complete else "missing",
             "est. min": None if e.complete else estimate_minutes(e, speeds)} for e in plan]
    return pd.DataFrame(rows, columns=["experiment", "changes", "seed", "epochs", "train images", "chapters",
                                       "stored", "est. min"])


def _short(text: str, limit: int = 70) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def chapter_minutes(plan: Sequence[PlannedRun], speeds: Mapping[SpeedKey, Speed | str]
                    ) -> dict[str, float]:
    """Estimated training minutes per chapter; a run several chapters share counts for the first."""
    out: dict[str, float] = {}
    for e in plan:
        minutes = None if e.complete else estimate_minutes(e, speeds)
        if minutes is not None:  # runs without a measured speed are not priced at zero
            out[e.chapters[0]] = out.get(e.chapters[0], 0.0) + minutes
    return out


def total_text(plan: Sequence[PlannedRun], speeds: Mapping[SpeedKey, Speed | str]) -> str:
    """The plan's size and estimated cost in one line (with why any run has no estimate)."""
    missing = [e for e in plan if not e.complete]
    minutes = [estimate_minutes(e, speeds) for e in missing]
    known = sum(m for m in minutes if m is not None)
    unknown = [e for e, m in zip(missing, minutes, strict=True) if m is None]
    epochs = sum(e.config.train.epochs for e in missing)
    images = sum(e.training_images * e.config.train.epochs for e in missing)
    text = (f"{len(plan)} distinct runs, {len(plan) - len(missing)} stored, {len(missing)} to train "
            f"({epochs:,} epochs, {images:,} training images in all)")
    if len(unknown) < len(missing):
        text += f": about {known:.0f} min on this machine"
        if unknown:
            text += f" for {len(missing) - len(unknown)} of them"
    reasons = sorted({speeds.get(speed_key(e.config)) or "their model family has no measured speed here"
                      for e in unknown}, key=str)
    if unknown:
        text += f"; {len(unknown)} run(s) not estimated: " + "; ".join(map(str, reasons))
    return text


# --------------------------------------------------------------------------- training it


RUNNERS = ("local", "ray")


def local_jobs(plan: Sequence[PlannedRun], speeds: Mapping[SpeedKey, Speed | str],
               cores: int | None = None) -> tuple[int, str]:
    """How many runs the local runner trains at once on this machine, and why.

    A run's fixed cost (building the model, tracing its step functions, saving it) is Python
    work on one core, while its training steps use every core. When the fixed cost is most of
    the missing runs' estimated time (tiny runs, as in the smoke book), two runs at a time keep
    both cores busy; otherwise one at a time. Each run's result is the same either way (same
    seeds, deterministic ops, its own process's thread pools as configured).
    """
    import os

    cores = cores or os.cpu_count() or 1
    fixed = total = 0.0
    for e in plan:
        speed = speeds.get(speed_key(e.config))
        if not e.complete and isinstance(speed, Speed):
            fixed += speed.startup_seconds / 60 * speed.factor
            total += run_minutes(e.config, speed) * speed.factor
    share = fixed / total if total else 0.0
    missing = sum(not e.complete for e in plan)
    if cores >= 2 and missing >= 2 and share >= 0.5:
        return 2, f"two at a time: their fixed cost (tracing, saving; one core) is {share:.0%} of their time"
    return 1, "one at a time" + (f": their training steps ({1 - share:.0%} of their time) use every core"
                                  if total else "")


def _train_in_worker(config_yaml: str, seed: int, label: str, level: int) -> float:
    """One run in a worker process of the local runner; its wall minutes."""
    import yaml

    from cifarkit.core.tfquiet import setup_logging
    from cifarkit.runs import get_or_train

    setup_logging(level)  # a spawned process starts with no logging configured
    started = time.perf_counter()
    get_or_train(ExperimentConfig.model_validate(yaml.safe_load(config_yaml)), seed, label=label)
    return (time.perf_counter() - started) / 60


def train_plan(plan: Sequence[PlannedRun], speeds: Mapping[SpeedKey, Speed | str], *,
               runner: str = "local", address: str | None = None, remote_url: str | None = None,
               jobs: int | None = None) -> dict[str, float]:
    """Train the plan's missing runs with one overall progress line per run (run i of N,
    elapsed, ETA from the estimates, corrected by how the finished runs went); resumable,
    since every run is. Returns each trained folder's actual wall minutes.

    ``runner="local"`` trains here, ``jobs`` runs at a time (default: :func:`local_jobs`
    decides); more than one run at a time trains each in a worker process, a transfer run
    only after its source run. ``runner="ray"`` fans the runs out as tasks on the Ray
    cluster at ``address`` (:func:`cifarkit.runs.cluster.train_on_ray`; through
    ``remote_url`` when given).
    """
    from cifarkit.runs import get_or_train

    if runner not in RUNNERS:
        raise CifarkitError(f"runner={runner!r} is not a runner; choose from {', '.join(RUNNERS)}")
    if jobs is not None and jobs < 1:
        raise CifarkitError(f"jobs={jobs}: the runs trained at once are at least 1")
    missing = [e for e in plan if not e.complete]
    estimates = [estimate_minutes(e, speeds) or 0.0 for e in missing]
    if runner == "ray":
        from cifarkit.runs.cluster import Job, train_on_ray

        if not missing:
            return {}
        outcomes = train_on_ray([Job(e.config, e.seed, e.folder) for e in missing], address or "auto",
                                remote_url=remote_url, estimates=estimates)
        return {folder: outcome.minutes for folder, outcome in outcomes.items()}
    if jobs is None:
        jobs, why = local_jobs(plan, speeds)
        if missing:
            log.info("training the %d missing run(s) %s", len(missing), why)
    if jobs > 1 and len(missing) > 1:
        return _train_at_once(missing, estimates, jobs)
    started = time.perf_counter()
    trained: dict[str, float] = {}
    for i, entry in enumerate(missing):
        elapsed = (time.perf_counter() - started) / 60
        done = sum(estimates[:i])
        pace = elapsed / done if done > 0 and i >= 3 else 1.0  # after a few runs, the plan's own pace
        log.info("[plan: run %d of %d, %.1f min elapsed, about %.0f min left] %s seed %d (%s)", i + 1,
                 len(missing), elapsed, pace * sum(estimates[i:]), entry.config.name, entry.seed,
                 changes(entry.config) or "as configured")
        run_started = time.perf_counter()
        get_or_train(entry.config, entry.seed, label=f"[plan {i + 1}/{len(missing)}] ")
        trained[entry.folder] = (time.perf_counter() - run_started) / 60
    return trained


def _train_at_once(missing: Sequence[PlannedRun], estimates: Sequence[float], jobs: int) -> dict[str, float]:
    """The local runner with ``jobs`` worker processes (spawned: no TensorFlow state shared)."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from cifarkit.runs import tracking

    tracking.prepare_store()
    folders = {e.folder for e in missing}
    waiting = list(range(len(missing)))  # a transfer run waits for its source run
    trained: dict[str, float] = {}
    level = logging.getLogger("cifarkit").getEffectiveLevel()
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        running: dict[Any, int] = {}

        def submit_ready() -> None:
            for i in list(waiting):
                cfg = missing[i].config
                source = cfg.transfer.source_run if cfg.transfer else None
                if source in folders and source not in trained:
                    continue
                if len(running) >= jobs:
                    return
                waiting.remove(i)
                label = f"[plan {i + 1}/{len(missing)}] "
                log.info("%sstarting %s seed %d (%s)", label, cfg.name, missing[i].seed,
                         changes(cfg) or "as configured")
                running[pool.submit(_train_in_worker, cfg.to_yaml(), missing[i].seed, label, level)] = i

        submit_ready()
        while running:
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in finished:
                i = running.pop(future)
                trained[missing[i].folder] = future.result()  # a failed run raises here, by name
                elapsed = (time.perf_counter() - started) / 60
                done = sum(estimates[j] for j in range(len(missing)) if missing[j].folder in trained)
                left = sum(estimates[j] for j in [*running.values(), *waiting])
                pace = elapsed / done if done > 0 and len(trained) >= 3 else 1.0 / jobs
                log.info("[plan: %d of %d done, %.1f min elapsed, about %.0f min left] %s", len(trained),
                         len(missing), elapsed, pace * left, missing[i].folder)
            submit_ready()
    return trained
