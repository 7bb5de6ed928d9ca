"""What the study plan costs on this machine: speed probes, the stored runs' correction, the
estimates and the plan's table.

A speed key (:func:`speed_key`: model family, precision, batch size) is priced once per host
by a short throughput probe (:func:`cifarkit.bench.throughput.throughput`, kept under
``artifacts/bench/``); the complete runs of the same key in the run store then correct the
probe's estimate by the median ratio of their actual to their estimated wall time
(:func:`measured_speeds`). :func:`run_minutes` turns a speed into one run's wall minutes;
:func:`plan_table`, :func:`chapter_minutes` and :func:`total_text` show the plan priced, and
:func:`priced_jobs` hands its missing runs to a runner with their estimates.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from cifarkit.core.config import ExperimentConfig, load_config, overrides_between
from cifarkit.core.errors import CifarkitError
from cifarkit.runs.schedule import Job
from cifarkit.studies.plan import PlannedRun, changes

log = logging.getLogger(__name__)


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
    tracing its evaluation and prediction, saving and registering it); ``save_seconds`` one
    checkpoint, written each epoch; ``factor`` is the median of actual over estimated wall
    time of the complete runs of this key already in the run store (1.0 when there are none).
    """

    train_img_s: float
    predict_img_s: float
    startup_seconds: float
    factor: float = 1.0
    runs: int = 0  # stored runs the factor was measured on
    save_seconds: float = 0.0


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
            out[key] = dataclasses.replace(
                speed, factor=float(pd.Series(ratios).median()), runs=len(ratios)
            )
    return out


def _stored_ratios() -> dict[SpeedKey, list[float]]:
    """Per speed key, actual / estimated wall time of each complete, never-resumed stored run
    whose key has a kept probe on this machine."""
    from cifarkit.runs import Run, list_runs, runs_root

    ratios: dict[SpeedKey, list[float]] = {}
    probes: dict[SpeedKey, Speed | None] = {}
    for row in list_runs():
        if (
            row["status"] != "complete"
            or not row.get("wall_seconds")
            or row.get("resumed_from_epoch")
        ):
            continue
        try:
            cfg = Run(runs_root() / row["run"]).config()
        except (CifarkitError, OSError, ValueError):
            continue
        key = speed_key(cfg)
        if key not in probes:
            probes[key] = _kept_probe(cfg)
        probe = probes[key]
        if probe is not None:
            seconds = 60 * run_minutes(cfg, probe)
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
            record["cpu"],
            record["cpu_isa"],
        )
        measured = ("finish_seconds", "save_seconds", "predict_img_s")
        if same_cpu and all(kept.get(name) is not None for name in measured):
            return Speed(
                float(kept["pipeline_img_s"]),
                float(kept["predict_img_s"]),
                float(kept["startup_seconds"]) + float(kept["finish_seconds"]),
                save_seconds=float(kept["save_seconds"]),
            )
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
    result = throughput(
        cfg.name,
        cfg.profile,
        batch_size=cfg.train.batch_size,
        steps=steps,
        warmup=2,
        repeats=1,
        model_alone=False,
        overrides=overrides_between(load_config(cfg.name, cfg.profile), cfg) or None,
    )
    write_json(config_result_path(cfg), result.as_dict())
    return Speed(
        result.pipeline_img_s,
        result.predict_img_s or 3 * result.pipeline_img_s,
        (result.startup_seconds or 0.0) + (result.finish_seconds or 0.0),
        save_seconds=result.save_seconds or 0.0,
    )


def run_minutes(cfg: ExperimentConfig, speed: Speed) -> float:
    """Wall minutes of one run of ``cfg`` at ``speed``, before the stored runs' correction.

    Training steps at the training speed; a validation pass every ``train.validate_every``
    epochs (the last one's logits are the stored validation predictions) and the test set's
    prediction at the evaluation speed; a checkpoint each epoch; and the fixed cost (which the
    probe measures as building, compiling and tracing, plus tracing the prediction passes and
    the save MLflow's registration makes).
    """
    from cifarkit.studies.transfer import training_images

    train = training_images(cfg) * cfg.train.epochs / speed.train_img_s
    n_classes = len(cfg.data.classes) if cfg.data.classes else 10
    val_images = cfg.data.val_per_class * n_classes
    test_images = cfg.data.test_limit or 1_000 * n_classes  # CIFAR-10's test set: 1,000 per class
    passes = cfg.train.epochs // cfg.train.validate_every
    evaluation = (val_images * passes + test_images) / speed.predict_img_s
    checkpoints = cfg.train.epochs * speed.save_seconds
    return (train + evaluation + checkpoints + speed.startup_seconds) / 60


def estimate_minutes(entry: PlannedRun, speeds: Mapping[SpeedKey, Speed | str]) -> float | None:
    """Wall minutes of ``entry`` on this machine (None if its key has no measured speed)."""
    speed = speeds.get(speed_key(entry.config))
    if not isinstance(speed, Speed):
        return None
    return run_minutes(entry.config, speed) * speed.factor


def plan_table(plan: Sequence[PlannedRun], speeds: Mapping[SpeedKey, Speed | str]) -> pd.DataFrame:
    """One row per run: experiment, changes, seed, epochs, images, chapters, stored, estimate."""
    rows = [
        {
            "experiment": e.config.name,
            "changes": _short(changes(e.config) or "-"),
            "seed": e.seed,
            "epochs": e.config.train.epochs,
            "train images": e.training_images,
            "chapters": ", ".join(e.chapters),
            "stored": "yes" if e.complete else "missing",
            "est. min": None if e.complete else estimate_minutes(e, speeds),
        }
        for e in plan
    ]
    return pd.DataFrame(
        rows,
        columns=[
            "experiment",
            "changes",
            "seed",
            "epochs",
            "train images",
            "chapters",
            "stored",
            "est. min",
        ],
    )


def _short(text: str, limit: int = 70) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def chapter_minutes(
    plan: Sequence[PlannedRun], speeds: Mapping[SpeedKey, Speed | str]
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
    text = (
        f"{len(plan)} distinct runs, {len(plan) - len(missing)} stored, {len(missing)} to train "
        f"({epochs:,} epochs, {images:,} training images in all)"
    )
    if len(unknown) < len(missing):
        text += f": about {known:.0f} min on this machine"
        if unknown:
            text += f" for {len(missing) - len(unknown)} of them"
    reasons = sorted(
        {
            speeds.get(speed_key(e.config)) or "their model family has no measured speed here"
            for e in unknown
        },
        key=str,
    )
    if unknown:
        text += f"; {len(unknown)} run(s) not estimated: " + "; ".join(map(str, reasons))
    return text


def priced_jobs(plan: Sequence[PlannedRun], speeds: Mapping[SpeedKey, Speed | str]) -> list[Job]:
    """The plan's missing runs as a runner's jobs, in plan order, each with its estimate.

    Parameters
    ----------
    plan : sequence of PlannedRun
        The study plan (:func:`cifarkit.studies.plan.study_plan`).
    speeds : mapping
        The speed keys' prices (:func:`measured_speeds`); a run whose key has none has no
        estimate.

    Returns
    -------
    list of Job
        One per missing run, for :func:`cifarkit.runs.local.train_here` or
        :func:`cifarkit.runs.cluster.train_on_ray`.
    """
    out = []
    for e in plan:
        if e.complete:
            continue
        speed = speeds.get(speed_key(e.config))
        fixed = speed.startup_seconds / 60 * speed.factor if isinstance(speed, Speed) else None
        out.append(
            Job(
                e.config,
                e.seed,
                e.folder,
                minutes=estimate_minutes(e, speeds),
                fixed_minutes=fixed,
                note=changes(e.config) or "as configured",
            )
        )
    return out
