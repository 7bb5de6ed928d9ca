"""Time-to-accuracy benchmark: wall time of *training* until held-out accuracy reaches a target.

Each seed trains fresh (never from the run store: a cached run would time nothing) into a
folder of its own that is deleted once the seed is measured, through the same
:func:`cifarkit.training.fit.train_run` every run uses; a seed cut short (the process killed or ended)
keeps its checkpoint there and the next call resumes it. Each epoch's timed training is its steps and tracing as the run's step clock measures
them, so the validation evaluation and the checkpoint write at the end of each epoch are
excluded; the total wall time (everything, data
loading and evaluation included) is reported beside it. The target is checked against
*plain validation accuracy* (no TTA) after each epoch, so it is a different figure from a
test accuracy with TTA, even when the two share a number; the test split is used once at
the end, with and without test-time augmentation
(:func:`cifarkit.evaluation.metrics.tta_evaluate`). Time to target is reported as "k of N
seeds reached it" with each of those seeds' times: a mean over the seeds that reached the
target would leave out the ones that did not, and is never given as "the time".
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd

from cifarkit.core.errors import CifarkitError

log = logging.getLogger(__name__)

RESULT_GLOB = "time-to-accuracy-*.json"


TIMED_KEY = "timed_train_seconds"  # the epoch's training seconds, stored in the run's history row


class TrainClock(keras.callbacks.Callback):
    """Each epoch's training seconds written into its logs (``timed_train_seconds``): the
    epoch's training steps and its tracing, as the run's step clock (first in the list,
    :mod:`cifarkit.training.fit`) measured them, so validation and checkpoint writes are left
    out. The checkpoint callback, which runs after this one on the same dict, keeps it in
    the run's history, so a resumed seed adds up the epochs of earlier, interrupted calls."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        from cifarkit.training.fit import STEP_SECONDS, TRACE_SECONDS

        if logs is not None:
            logs[TIMED_KEY] = logs.get(STEP_SECONDS, 0.0) + logs.get(TRACE_SECONDS, 0.0)


@dataclass
class SeedTiming:
    seed: int
    epochs: int
    train_seconds: float  # timed training only
    total_seconds: float  # everything for this seed
    time_to_target: float | None  # training seconds at the first epoch with val acc >= target
    epoch_to_target: int | None
    test_accuracy: float
    test_accuracy_tta: float
    val_curve: list[dict[str, float | None]] = field(default_factory=list)
    resumed_from_epoch: int = (
        0  # > 0: epochs before it were trained by an earlier, interrupted call
    )
    measured: str | None = None  # UTC minute the seed finished; a shared host's speed drifts


@dataclass
class TimeToAccuracy:
    experiment: str
    profile: str
    config_hash: str
    target: float
    tta_views: list[str]
    seeds: list[SeedTiming]
    environment: dict[str, Any]  # the machine of the call that measured the latest seed
    tta_shift: int = 1
    train_size: int = 0  # training images per epoch
    config: dict[str, Any] | None = None  # the resolved config (older result files lack it)

    @property
    def precision(self) -> str | None:
        """``bfloat16`` or ``float32`` as the config asked (None when the file has no config)."""
        if self.config is None:
            return None
        train = self.config.get("train", {})
        if "precision" in train:
            return "bfloat16" if train["precision"] == "bfloat16" else "float32"
        return (
            "bfloat16" if train.get("bfloat16") else "float32"
        )  # a file written before train.precision

    def summary(self) -> dict[str, Any]:
        """Across-seed summaries; ``time_to_target`` lists the seeds that reached the target
        and their training seconds (no mean: it would leave out the others)."""
        from cifarkit.evaluation.stats import summarise

        def s(values: list[float]) -> dict[str, Any]:
            return summarise(values).as_dict()

        hit = [r for r in self.seeds if r.time_to_target is not None]
        return {
            "test_accuracy": s([r.test_accuracy for r in self.seeds]),
            "test_accuracy_tta": s([r.test_accuracy_tta for r in self.seeds]),
            "train_seconds": s([r.train_seconds for r in self.seeds]),
            "total_seconds": s([r.total_seconds for r in self.seeds]),
            "time_to_target": {
                "n": len(hit),
                "of": len(self.seeds),
                "seeds": [r.seed for r in hit],
                "train_seconds": [r.time_to_target for r in hit],
                "checked_on": "plain validation accuracy, after each epoch",
                "note": "the seeds that reached the target only; no mean is given",
            },
            "reached": len(hit),
            "n": len(self.seeds),
        }

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "summary": self.summary()}


def _spread(values: list[float], scale: float, digits: int) -> str:
    """``mean ± std`` (sample std over seeds) or just the mean for one seed."""
    x = np.asarray(values, np.float64) * scale
    if len(x) < 2:
        return f"{x.mean():.{digits}f}"
    return f"{x.mean():.{digits}f} ± {x.std(ddof=1):.{digits}f}"


def tta_views_note(tta_shift: int = 1) -> str:
    """The benchmark's test-time augmentation in words (``"10 views (the image and its mirror, each
    also shifted by 1 pixel up, down, left and right), their softmax probabilities averaged"``)."""
    from cifarkit.evaluation.metrics import tta_views

    n = len(tta_views(np.zeros((1, 32, 32, 3), np.uint8), flip=True, shift=tta_shift))
    shifted = (
        f", each also shifted by {tta_shift} pixel{'s' if tta_shift != 1 else ''} up, down, left and right"
        if tta_shift
        else ""
    )
    return f"{n} views (the image and its mirror{shifted}), their softmax probabilities averaged"


def reached_text(result: TimeToAccuracy) -> str:
    """``"2 of 3 seeds, after 31.0 and 33.0 min of training (seeds 0, 1)"``: who reached the
    target and each one's time; never a mean over the seeds that reached it."""
    runs = result.seeds
    hit = [r for r in runs if r.time_to_target is not None]
    text = f"{len(hit)} of {len(runs)} seed{'s' if len(runs) != 1 else ''}"
    if not hit:
        return text
    times = [f"{r.time_to_target / 60:.1f}" for r in hit]
    listed = times[0] if len(times) == 1 else ", ".join(times[:-1]) + " and " + times[-1]
    return (
        f"{text}, after {listed} min of training (seed{'s' if len(hit) != 1 else ''} "
        f"{', '.join(str(r.seed) for r in hit)})"
    )


def headline(result: TimeToAccuracy) -> str:
    """One line: accuracy with TTA and without, training minutes, who reached the target and when."""
    runs = result.seeds
    bf16 = ", bfloat16" if result.precision == "bfloat16" else ""
    views = f"{len(result.tta_views)} view{'s' if len(result.tta_views) != 1 else ''}"
    return (
        f"{result.experiment} ({result.profile}{bf16}, {len(runs)} seed{'s' if len(runs) > 1 else ''}): "
        f"test {_spread([r.test_accuracy_tta for r in runs], 100, 1)}% (TTA, {views}), "
        f"{_spread([r.test_accuracy for r in runs], 100, 1)}% plain (mean ± std over seeds), "
        f"in {_spread([r.train_seconds for r in runs], 1 / 60, 1)} min training "
        f"({runs[0].epochs} epochs); target {result.target:.1%} plain validation accuracy reached by "
        f"{reached_text(result)}"
    )


def with_target(result: SeedTiming, target: float) -> SeedTiming:
    """``result`` with the time and epoch of its first validation accuracy >= ``target``."""
    hit = next(
        (
            row
            for row in result.val_curve
            if row["val_accuracy"] is not None and row["val_accuracy"] >= target
        ),
        None,
    )
    return replace(
        result,
        time_to_target=None if hit is None else hit["train_seconds"],
        epoch_to_target=None if hit is None else int(hit["epoch"]),
    )


def run_seed(
    cfg, seed: int, splits, target: float, tta_shift: int, scratch: Path
) -> tuple[SeedTiming, list[str]]:
    """Train ``cfg`` with ``seed`` into ``scratch`` and measure it.

    ``scratch`` is deleted once the seed is measured. If an earlier call was interrupted
    (the process ended), its checkpoint there is resumed: the training seconds of its
    epochs come from their history rows, the total adds their epoch wall times.
    """
    from cifarkit.evaluation.metrics import tta_evaluate
    from cifarkit.training.fit import predict_logits, train_run

    started = time.perf_counter()
    outcome = train_run(cfg, seed, scratch, splits, callbacks=[TrainClock()])
    tta = tta_evaluate(
        lambda x: predict_logits(outcome.model, x),
        splits.x_test,
        splits.y_test,
        flip=True,
        shift=tta_shift,
    )
    resumed = outcome.resumed_from_epoch
    curve, elapsed = [], 0.0
    for row in outcome.history:
        # an epoch without the clock's figure (never expected) counts its whole wall time
        elapsed += float(row.get(TIMED_KEY, row.get("epoch_seconds", 0.0)))
        val = row.get("val_accuracy")
        curve.append(
            {
                "epoch": int(row["epoch"]),
                "train_seconds": elapsed,
                "val_accuracy": None if val is None else float(val),
            }
        )
    earlier_wall = sum(float(row.get("epoch_seconds", 0.0)) for row in outcome.history[:resumed])
    result = with_target(
        SeedTiming(
            seed=seed,
            epochs=len(curve),
            train_seconds=elapsed,
            total_seconds=earlier_wall + time.perf_counter() - started,
            time_to_target=None,
            epoch_to_target=None,
            test_accuracy=float(outcome.metrics["test_accuracy"]),
            test_accuracy_tta=tta.accuracy,
            val_curve=curve,
            resumed_from_epoch=resumed,
            measured=dt.datetime.now(dt.UTC).isoformat(timespec="minutes"),
        ),
        target,
    )
    shutil.rmtree(scratch, ignore_errors=True)
    log.info(
        "seed %d: %.1f%% test (%.1f%% TTA), %.0f s training%s, target %s",
        seed,
        100 * result.test_accuracy,
        100 * result.test_accuracy_tta,
        result.train_seconds,
        f" (resumed after epoch {resumed})" if resumed else "",
        "not reached"
        if result.epoch_to_target is None
        else f"reached after epoch {result.epoch_to_target}",
    )
    return result, list(tta.views)


def partial_dir(bench_dir: Path, name: str, config_hash: str, seed: int) -> Path:
    """Where one seed trains; kept if the call is interrupted, so the next call resumes it."""
    return bench_dir / f".partial-{name}-{config_hash[:12]}-seed{seed}"


def time_to_accuracy(
    experiment: str,
    profile: str = "cpu",
    *,
    target: float,
    seeds: int = 3,
    overrides: dict[str, Any] | None = None,
    tta_shift: int = 1,
    out: str | Path | None = None,
    resume: bool = True,
) -> tuple[TimeToAccuracy, Path]:
    """Train ``seeds`` fresh runs (seeds 0..N-1) and write the measurements as JSON.

    The JSON is rewritten after each seed. With ``resume`` a seed already in that file for the
    same config hash and TTA is kept rather than trained again, and a seed whose training was
    interrupted resumes from its last epoch (:func:`run_seed`), so ``--seeds 3`` can be
    completed over several calls.

    ``out`` defaults to ``artifacts/bench/time-to-accuracy-<experiment>-<profile>-<hash12>.json``.
    """
    from cifarkit.core.atomic import write_json
    from cifarkit.core.config import load_config
    from cifarkit.core.paths import artifacts_dir
    from cifarkit.core.repro import environment_record
    from cifarkit.data import splits_from_config
    from cifarkit.evaluation.metrics import tta_views

    if not 0.0 < target < 1.0:
        raise CifarkitError(
            f"target={target} is not an accuracy; pass a fraction in (0, 1), e.g. 0.907"
        )
    if seeds < 1:
        raise CifarkitError(f"seeds={seeds}; pass at least 1")
    if tta_shift < 0:
        raise CifarkitError(
            f"tta_shift={tta_shift} is negative; pass 0 (flip only) or a shift in pixels"
        )
    cfg = load_config(experiment, profile, overrides)
    splits = splits_from_config(cfg.data)
    bench_dir = artifacts_dir() / "bench"
    path = (
        Path(out)
        if out
        else bench_dir / f"time-to-accuracy-{cfg.name}-{cfg.profile}-{cfg.content_hash()[:12]}.json"
    )
    done = finished_seeds(path, cfg.content_hash(), tta_shift) if resume else {}
    if not resume:  # --fresh: interrupted seeds of this config start over too
        for seed in range(seeds):
            shutil.rmtree(
                partial_dir(bench_dir, cfg.name, cfg.content_hash(), seed), ignore_errors=True
            )
    results: list[SeedTiming] = []
    views = list(tta_views(np.zeros((1, 32, 32, 3), np.uint8), flip=True, shift=tta_shift))
    environment = environment_record()
    resolved = cfg.model_dump(mode="json")

    def report(environment: dict[str, Any]) -> TimeToAccuracy:
        """The seeds measured so far, with the machine that measured them."""
        return TimeToAccuracy(
            cfg.name,
            cfg.profile,
            cfg.content_hash(),
            target,
            views,
            results,
            environment,
            tta_shift,
            len(splits.y_train),
            resolved,
        )

    for seed in range(seeds):
        if seed in done:
            log.info("[seed %d/%d] kept from %s (--fresh measures it again)", seed + 1, seeds, path)
            results.append(with_target(done[seed], target))
            continue
        scratch = partial_dir(bench_dir, cfg.name, cfg.content_hash(), seed)
        log.info(
            "[seed %d/%d] training %s (%s) %s",
            seed + 1,
            seeds,
            cfg.name,
            cfg.profile,
            "from an interrupted earlier call"
            if (scratch / "checkpoint").exists()
            else "from scratch",
        )
        result, views = run_seed(cfg, seed, splits, target, tta_shift, scratch)
        results.append(result)
        # Written after every seed: a benchmark stopped midway keeps the seeds it finished.
        write_json(path, report(environment).as_dict())
    if all(
        seed in done for seed in range(seeds)
    ):  # nothing measured now: the file keeps the machine that measured it
        environment = read_result(path).environment
    final = report(environment)
    write_json(path, final.as_dict())
    return final, path


def read_result(path: Path) -> TimeToAccuracy:
    """One time-to-accuracy JSON file back as :class:`TimeToAccuracy` (its summary is recomputed)."""
    import json

    try:
        data = json.loads(path.read_text())
        data.pop("summary", None)
        data["seeds"] = [SeedTiming(**row) for row in data["seeds"]]
        return TimeToAccuracy(**data)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CifarkitError(
            f"{path} is not a time-to-accuracy result ({exc}); "
            "delete it or pass --fresh to measure again"
        ) from exc


def finished_seeds(path: Path, config_hash: str, tta_shift: int) -> dict[int, SeedTiming]:
    """Seeds already measured in ``path`` for this exact config and TTA; {} when none match.

    The target is not part of the match: a seed's validation curve answers any target, so the
    time to a new target is recomputed from it.
    """
    if not path.is_file():
        return {}
    result = read_result(path)
    if result.config_hash != config_hash or result.tta_shift != tta_shift:
        log.warning("%s measured another config or TTA; measuring every seed again", path)
        return {}
    return {row.seed: row for row in result.seeds}


def load_results(profile: str | None = None, folder: Path | None = None) -> list[TimeToAccuracy]:
    """The time-to-accuracy results under ``artifacts/bench`` (of one profile if given), newest
    measurement last; files that are not results are skipped with a warning."""
    from cifarkit.core.paths import artifacts_dir

    folder = folder or artifacts_dir() / "bench"
    found = []
    for path in sorted(folder.glob(RESULT_GLOB), key=lambda p: p.stat().st_mtime):
        try:
            result = read_result(path)
        except CifarkitError as exc:
            log.warning("skipping: %s", exc)
            continue
        if profile is None or result.profile == profile:
            found.append(result)
    return found


def _interval(values: list[float]) -> str:
    """The Student-t 95% interval of the mean over seeds, in percent."""
    from cifarkit.evaluation.stats import interval_text, summarise

    s = summarise(values)
    return interval_text(s.low, s.high)


def config_changes(result: TimeToAccuracy) -> str:
    """What the measured config sets differently from the experiment's config under its profile
    today, as ``key=value`` overrides (e.g. ``train.precision=bfloat16``), so rows that share an
    experiment name can be told apart; "not recorded" for files without a config."""
    from pydantic import ValidationError

    from cifarkit.core.config import ExperimentConfig, load_config, overrides_between

    if result.config is None:
        return "not recorded"
    try:
        base = load_config(result.experiment, result.profile)
        measured = ExperimentConfig.model_validate(result.config)
    except (CifarkitError, ValidationError) as exc:
        log.debug("config of %s not comparable: %s", result.experiment, exc)
        return "not comparable"
    changes = overrides_between(base, measured)
    return ", ".join(f"{key}={value}" for key, value in sorted(changes.items())) or "none"


def results_table(results: list[TimeToAccuracy]) -> pd.DataFrame:
    """One row per result: experiment, config, seeds, precision, the settings changed from the
    experiment's config (:func:`config_changes`), test accuracy with and without TTA
    (mean ± std over seeds, and the 95% interval of the TTA mean over seeds), training and
    total minutes, the target (plain validation accuracy) and which seeds reached it when
    (:func:`reached_text`)."""
    rows = []
    for r in results:
        rows.append(
            {
                "experiment": r.experiment,
                "config": r.config_hash[:12],
                "seeds": len(r.seeds),
                "train images": f"{r.train_size:,}" if r.train_size else "?",
                "epochs": r.seeds[0].epochs if r.seeds else 0,
                "precision": r.precision or "not recorded",
                "changes": config_changes(r),
                "TTA views": len(r.tta_views),
                "test % (TTA)": _spread([s.test_accuracy_tta for s in r.seeds], 100, 2),
                "TTA 95% CI": _interval([s.test_accuracy_tta for s in r.seeds]),
                "test % (plain)": _spread([s.test_accuracy for s in r.seeds], 100, 2),
                "train min": _spread([s.train_seconds for s in r.seeds], 1 / 60, 1),
                "total min": _spread([s.total_seconds for s in r.seeds], 1 / 60, 1),
                "target (plain val acc)": f"{r.target:.1%}",
                "reached": reached_text(r),
            }
        )
    return pd.DataFrame(rows)


def seeds_table(result: TimeToAccuracy) -> pd.DataFrame:
    """One row per seed of ``result``: accuracies, minutes, the epoch that reached the target,
    and when it was measured (wall times on a shared host drift from hour to hour)."""
    return pd.DataFrame(
        [
            {
                "seed": s.seed,
                "test % (TTA)": round(100 * s.test_accuracy_tta, 2),
                "test % (plain)": round(100 * s.test_accuracy, 2),
                "train min": round(s.train_seconds / 60, 1),
                "total min": round(s.total_seconds / 60, 1),
                "s per epoch": round(s.train_seconds / s.epochs) if s.epochs else None,
                "target at epoch": "not reached"
                if s.epoch_to_target is None
                else str(s.epoch_to_target),
                "min to target": ""
                if s.time_to_target is None
                else round(s.time_to_target / 60, 1),
                "resumed after epoch": str(s.resumed_from_epoch) if s.resumed_from_epoch else "",
                "measured": _utc_minute(s.measured),
            }
            for s in result.seeds
        ]
    ).set_index("seed")


def _utc_minute(stamp: str | None) -> str:
    """``2026-11-30T02:51+00:00`` -> ``2026-11-30 02:51 UTC`` (as stored when it is not UTC)."""
    if not stamp:
        return "not recorded"
    return stamp.replace("T", " ").replace("+00:00", " UTC")
