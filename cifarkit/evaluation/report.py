"""What ``cifarkit report`` computes and writes: an experiment's runs over seeds, summarised.

:func:`build_report` gathers the *complete* runs of one experiment + profile for the
requested seeds from the run store (it never trains; :attr:`Report.missing` and
:func:`train_command` say what to run), evaluates each from its stored logits with
:mod:`cifarkit.evaluation.metrics`, and summarises over seeds with :mod:`cifarkit.evaluation.stats`.
:func:`report_figures` draws the figures with :mod:`cifarkit.plots`, :func:`write_report`
writes them and ``report.json`` atomically, :func:`format_report` is the printed table.
Chapters call the same functions.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import cifarkit
from cifarkit.core.config import ExperimentConfig, load_config, overrides_between, train_command  # noqa: F401 - re-exported
from cifarkit.core.errors import CifarkitError
from cifarkit.core.paths import artifacts_dir
from cifarkit.evaluation import metrics as ev
from cifarkit.evaluation import stats, verdicts
from cifarkit.runs import Run, locate

log = logging.getLogger(__name__)

# (key, label, scale, digits): the rows of the printed table, in order.
TABLE_ROWS: tuple[tuple[str, str, float, int], ...] = (
    ("accuracy", "accuracy (%)", 100.0, 2),
    ("top5_accuracy", "top-5 accuracy (%)", 100.0, 2),
    ("macro_f1", "macro-F1 (%)", 100.0, 2),
    ("nll", "NLL (nats)", 1.0, 4),
    ("ece", "ECE (%), 15 bins", 100.0, 2),
    ("temperature", "temperature (fit on val)", 1.0, 3),
    ("nll_ts", "NLL after temp. scaling", 1.0, 4),
    ("ece_ts", "ECE after temp. scaling (%)", 100.0, 2),
)
TTA_ROW = ("tta_accuracy", "TTA accuracy (%)", 100.0, 2)
N_PAIR_GALLERIES = 3


@dataclass
class SeedResult:
    """One complete run, evaluated."""

    seed: int
    run: Run
    evaluation: ev.RunEvaluation
    history: list[dict[str, float]]
    logits: np.ndarray = field(repr=False)
    labels: np.ndarray = field(repr=False)
    notes: list[str] = field(default_factory=list)


@dataclass
class Report:
    """An experiment + profile summarised over the seeds whose runs are complete."""

    config: ExperimentConfig
    experiment_arg: str
    requested_seeds: list[int]
    results: dict[int, SeedResult]
    missing: dict[int, str]  # seed -> run status (missing / running / failed)
    class_names: tuple[str, ...]
    per_seed: pd.DataFrame  # rows: seeds; columns: metric names
    summary: pd.DataFrame  # rows: metrics; mean, std, low, high, half_width, n
    per_class_accuracy: pd.DataFrame  # rows: seeds; columns: classes
    per_class_summary: pd.DataFrame  # rows: classes
    confusion_counts: np.ndarray  # summed over seeds
    tta: dict[str, Any] | None = None  # views, comparison with plain accuracy, sentence
    notes: list[str] = field(default_factory=list)
    x_test: np.ndarray | None = field(default=None, repr=False)

    @property
    def seeds(self) -> list[int]:
        return sorted(self.results)

    @property
    def n(self) -> int:
        return len(self.results)

    @property
    def test_size(self) -> int:
        """Test images each run was evaluated on."""
        return self.results[self.seeds[0]].evaluation.n

    def accuracy_sampling(self) -> dict[str, Any]:
        """The test-set sampling interval (Wilson) of one model at the mean accuracy over seeds:
        what the accuracy's uncertainty would be from the test images alone."""
        mean = float(self.summary.loc["accuracy", "mean"])
        low, high = stats.wilson_accuracy_interval(mean, self.test_size)
        return {
            "accuracy": mean,
            "test_size": self.test_size,
            "low": low,
            "high": high,
            "confidence": stats.CONFIDENCE,
            "method": "Wilson score interval, over the test images of one model",
            "text": stats.accuracy_sampling_text(mean, self.test_size, digits=2),
        }

    @property
    def calibration_notes(self) -> list[str]:
        """Per seed, the note of a temperature that hit its search bound (empty when none did)."""
        return [
            f"seed {s}: {r.evaluation.calibration.note}"
            for s, r in sorted(self.results.items())
            if r.evaluation.calibration is not None and r.evaluation.calibration.at_bound
        ]

    @property
    def train_command(self) -> str | None:
        if not self.missing:
            return None
        return train_command(
            self.experiment_arg, self.config.profile, sorted(self.missing), self.config
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.config.name,
            "profile": self.config.profile,
            "config_hash": self.config.content_hash(),
            "cifarkit_version": cifarkit.__version__,
            "requested_seeds": self.requested_seeds,
            "seeds": self.seeds,
            "n": self.n,
            "missing": {str(k): v for k, v in self.missing.items()},
            "train_command": self.train_command,
            "class_names": list(self.class_names),
            "runs": {
                str(s): {"run": r.run.path.name, "notes": r.notes, **r.evaluation.as_dict()}
                for s, r in self.results.items()
            },
            "per_seed": {
                m: {str(s): _json_float(v) for s, v in self.per_seed[m].items()}
                for m in self.per_seed
            },
            "summary": {
                m: _summary_row(row) | {"confidence": stats.CONFIDENCE, "over": "seeds"}
                for m, row in self.summary.iterrows()
            },
            "accuracy_test_sampling": self.accuracy_sampling(),
            "per_class_accuracy": {
                c: _summary_row(row) for c, row in self.per_class_summary.iterrows()
            },
            "confusion_counts": self.confusion_counts.tolist(),
            "confusion_pairs": ev.confusion_pairs(self.confusion_counts, self.class_names).to_dict(
                "records"
            ),
            "tta": self.tta,
            "notes": self.notes,
        }


def _summary_row(row: pd.Series) -> dict[str, Any]:
    return {k: int(v) if k == "n" else _json_float(v) for k, v in row.items()}


def _json_float(x: Any) -> Any:
    if isinstance(x, float | np.floating):
        return None if not np.isfinite(x) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


# --------------------------------------------------------------------------- finding runs


def find_runs(cfg: ExperimentConfig, seeds: Sequence[int]) -> tuple[dict[int, Run], dict[int, str]]:
    """The complete runs of ``cfg`` for ``seeds`` (never trains) and the status of the others."""
    from cifarkit.data.identity import data_hash_for

    data_hash = data_hash_for(cfg.data)
    found, missing = {}, {}
    for seed in seeds:
        run = locate(cfg, seed, data_hash)
        if run.complete:
            found[seed] = run
        else:
            missing[seed] = run.status
    return found, missing


def default_out_dir(cfg: ExperimentConfig) -> Path:
    return artifacts_dir() / "reports" / f"{cfg.name}-{cfg.profile}"


# --------------------------------------------------------------------------- one run


def _model_predict(run: Run):
    from cifarkit.models import predict_logits

    model = run.load_model()
    return lambda images: predict_logits(model, images)


def evaluate_run(run: Run, splits: Any, *, tta: bool = False, tta_shift: int = 0) -> SeedResult:
    """Evaluate one complete run from its stored test logits (and validation logits for the
    temperature); with ``tta``, also run its model on the test images under flips/shifts.

    ``splits`` is :func:`cifarkit.data.splits_from_config` of the run's data config: its
    test images are in the stored logits' order (checked via the labels).
    """
    seed = int(run.summary.get("seed", -1))
    notes: list[str] = []
    logits, labels = run.predictions("test")
    if not np.array_equal(np.asarray(labels), np.asarray(splits.y_test)):
        raise CifarkitError(
            f"{run.path.name}: stored test labels do not match the configured test split "
            f"({len(labels)} vs {len(splits.y_test)} images); was the data changed?"
        )
    predict = None
    try:
        val = run.predictions("val")
    except CifarkitError:
        # Runs trained before validation logits were stored: recompute them from the saved
        # model on the same validation split (in memory; the run folder is not modified).
        predict = _model_predict(run)
        val = (predict(splits.x_val), splits.y_val)
        notes.append("validation logits not stored (older run); recomputed from model.keras")
        log.warning("%s: %s", run.path.name, notes[-1])
    evaluation = ev.evaluate_logits(logits, labels, splits.class_names, val=val)
    if evaluation.calibration is not None and evaluation.calibration.at_bound:
        notes.append(f"seed {seed}: {evaluation.calibration.note}")
    if tta:
        predict = predict or _model_predict(run)
        evaluation.tta = ev.tta_evaluate(
            predict, splits.x_test, splits.y_test, flip=True, shift=tta_shift
        )
        if abs(evaluation.tta.plain_accuracy - evaluation.accuracy) > 1e-9:
            notes.append(
                f"model re-run gives plain accuracy {evaluation.tta.plain_accuracy:.4f} vs stored "
                f"{evaluation.accuracy:.4f}"
            )
    return SeedResult(seed, run, evaluation, run.history(), logits, labels, notes)


# --------------------------------------------------------------------------- the report


def build_report(
    experiment: str | ExperimentConfig,
    profile: str | None = "cpu",
    seeds: int | Sequence[int] | None = None,
    *,
    tta: bool = False,
    tta_shift: int = 0,
    overrides: Mapping[str, Any] | None = None,
) -> Report:
    """Evaluate the complete runs of ``experiment`` + ``profile`` (+ ``overrides``) for ``seeds``
    (a count meaning 0..N-1, a list, or None for the profile's ``seeds``) and summarise them
    over seeds. ``experiment`` may also be a resolved config (then ``profile`` is ignored).

    Raises :class:`CifarkitError` (with the training command) when none is complete.
    """
    from cifarkit.data import splits_from_config

    if not 0 <= tta_shift <= 8:
        raise CifarkitError(f"--tta-shift must be between 0 and 8 pixels, got {tta_shift}")
    if isinstance(experiment, ExperimentConfig):
        cfg, experiment = experiment, experiment.name
    else:
        cfg = load_config(experiment, profile, overrides=overrides)
    if seeds is None:
        seeds = cfg.seeds
    requested = list(range(seeds)) if isinstance(seeds, int) else sorted(set(int(s) for s in seeds))
    if not requested:
        raise CifarkitError("no seeds requested; pass --seeds N with N >= 1")
    found, missing = find_runs(cfg, requested)
    if not found:
        raise CifarkitError(
            f"no complete run of {cfg.name} (profile {cfg.profile}) for seeds "
            f"{', '.join(map(str, requested))}; train them with: "
            f"{train_command(experiment, cfg.profile, requested, cfg)}"
        )
    splits = splits_from_config(cfg.data)
    results = {}
    for seed, run in found.items():
        log.info("evaluating %s (seed %d)%s", run.path.name, seed, " with TTA" if tta else "")
        results[seed] = evaluate_run(run, splits, tta=tta, tta_shift=tta_shift)

    class_names = tuple(splits.class_names)
    per_seed = pd.DataFrame({s: r.evaluation.scalars() for s, r in results.items()}).T.sort_index()
    per_seed.index.name = "seed"
    per_class = pd.DataFrame(
        {s: r.evaluation.per_class["recall"] for s, r in results.items()}
    ).T.sort_index()
    per_class.index.name = "seed"
    notes = []
    if missing:
        notes.append(
            f"{len(found)} of {len(requested)} requested seeds are complete; the summary is over "
            f"seeds {', '.join(map(str, sorted(found)))} only"
        )
    if len(found) == 1:
        notes.append("one seed: no confidence intervals (they need at least 2 seeds)")
    tta_info = None
    if tta:
        plain = {s: r.evaluation.accuracy for s, r in results.items()}
        augmented = {s: r.evaluation.tta.accuracy for s, r in results.items()}
        comparison = stats.paired_comparison(plain, augmented)
        views = list(next(iter(results.values())).evaluation.tta.views)
        tta_verdict = verdicts.verdict(comparison, "plain evaluation", f"TTA ({len(views)} views)")
        tta_info = {
            "views": views,
            "views_text": ev.tta_views_text(views),
            "comparison": comparison.as_dict(),
            "verdict": tta_verdict.as_dict(),
            "sentence": tta_verdict.sentence,
            "mcnemar": {
                str(s): stats.mcnemar(r.evaluation.correct, r.evaluation.tta.correct).as_dict()
                for s, r in results.items()
            },
        }
    return Report(
        config=cfg,
        experiment_arg=str(experiment),
        requested_seeds=requested,
        results=results,
        missing=missing,
        class_names=class_names,
        per_seed=per_seed,
        summary=stats.summarise_table(per_seed),
        per_class_accuracy=per_class,
        per_class_summary=stats.per_class_summary(per_class),
        confusion_counts=np.sum([r.evaluation.confusion for r in results.values()], axis=0),
        tta=tta_info,
        notes=notes + [n for r in results.values() for n in r.notes],
        x_test=splits.x_test,
    )


# --------------------------------------------------------------------------- printing


def _row(label: str, s: pd.Series, scale: float, digits: int) -> str:
    mean = f"{s['mean'] * scale:.{digits}f}"
    n = int(s["n"])
    if n >= 2 and pd.notna(s["low"]):
        ci = f"± {s['half_width'] * scale:.{digits}f}"
        bounds = f"[{s['low'] * scale:.{digits}f}, {s['high'] * scale:.{digits}f}]"
        std = f"{s['std'] * scale:.{digits}f}"
    else:
        ci, bounds, std = "(no CI: n=1)", "", "-"
    return f"{label:<30} {mean:>9} {ci:>12} {bounds:>20} {std:>9} {n:>3}"


def format_report(report: Report) -> str:
    """The printed summary: mean ± 95% CI per metric with n, per-seed values, TTA, notes."""
    cfg = report.config
    first = report.results[report.seeds[0]].evaluation
    lines = [
        f"{cfg.name} (profile {cfg.profile}, config {cfg.content_hash()[:12]}): "
        f"{report.n} of {len(report.requested_seeds)} requested seeds complete "
        f"(seeds {', '.join(map(str, report.seeds))}); {first.n:,} test images per run"
    ]
    if report.missing:
        lines.append(
            f"missing: {', '.join(f'seed {s} ({status})' for s, status in sorted(report.missing.items()))}"
            f"; make {'it' if len(report.missing) == 1 else 'them'} with: {report.train_command}"
        )
        lines.append(f"reporting over the {report.n} seed{'s' if report.n != 1 else ''} that exist")
    lines.append("")
    lines.append(
        f"{'metric':<30} {'mean':>9} {'± 95% CI':>12} {'[low, high]':>20} {'std':>9} {'n':>3}"
    )
    for key, label, scale, digits in TABLE_ROWS:
        if key in report.summary.index:
            lines.append(_row(label, report.summary.loc[key], scale, digits))
    lines.append(
        "(95% CI: Student t over seeds, n-1 degrees of freedom; ECE on test, temperature fitted on "
        "validation only)"
    )
    lines.append(
        f"test-set sampling of the accuracy: {report.accuracy_sampling()['text']}, at the mean "
        "accuracy (covers the test images, not the seeds)"
    )
    lines.append("")
    shown = [row for row in TABLE_ROWS if row[0] in report.per_seed.columns][:5]
    lines.append(
        f"{'per seed':<10}" + "".join(f"{label.split(',')[0]:>20}" for _, label, _, _ in shown)
    )
    for seed in report.seeds:
        lines.append(
            f"{'seed ' + str(seed):<10}"
            + "".join(
                f"{report.per_seed.loc[seed, key] * scale:>20.{digits}f}"
                for key, _, scale, digits in shown
            )
        )
    if report.tta is not None and TTA_ROW[0] in report.summary.index:
        key, label, scale, digits = TTA_ROW
        lines.append("")
        lines.append(
            f"test-time augmentation ({ev.tta_views_text(report.tta['views'])}),"
            " reported apart from plain accuracy:"
        )
        lines.append(_row(label, report.summary.loc[key], scale, digits))
        lines.append(f"  {report.tta['sentence']}")
        lines.append(
            "  McNemar, TTA vs plain, per seed: "
            + "; ".join(
                f"seed {s}: {m['b_only']} fixed / {m['a_only']} broken, {verdicts.format_p(m['p_value'])}"
                for s, m in report.tta["mcnemar"].items()
            )
        )
    pairs = ev.confusion_pairs(report.confusion_counts, report.class_names, 3)
    if len(pairs):
        lines.append("")
        lines.append(
            "most confused pairs (summed over seeds): "
            + ", ".join(f"{r.a}↔{r.b} {r.count}" for r in pairs.itertuples())
        )
    if report.notes:
        lines.append("")
        lines += [f"note: {note}" for note in report.notes]
    return "\n".join(lines)
