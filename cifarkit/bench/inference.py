"""Inference speed of one run three ways: the Keras model, its SavedModel export, its ONNX export.

Each backend is timed at batch 1 (images/s, and the p50/p99 latency of single calls) and at
batch 256 (images/s), on the same uint8 images (content does not change the time). The
backends take turns within every repeat, so a slower stretch of a shared machine hits all of
them alike; each figure is reported as the median over the repeats with its range. The
exports are written to a scratch folder and parity-checked against the run first
(:func:`cifarkit.runs.export.export_run`), so what is timed is what ``cifarkit export``
ships. ONNX is timed when the ``onnx`` extra is installed and said to be skipped otherwise.

The result is kept as ``artifacts/bench/inference-<run>.json`` with the machine record
(:func:`cifarkit.core.repro.environment_record`), like the throughput benchmark's files.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cifarkit.core.errors import CifarkitError
from cifarkit.runs.run import Run

log = logging.getLogger(__name__)

BIG_BATCH = 256
BACKENDS = ("keras", "savedmodel", "onnx")


@dataclass
class Spread:
    """Median and range of one figure over the repeats."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        return cls(float(np.median(values)), float(np.min(values)), float(np.max(values)))

    def text(self, digits: int = 0) -> str:
        return f"{self.median:.{digits}f} ({self.low:.{digits}f}-{self.high:.{digits}f})"


@dataclass
class BackendResult:
    backend: str
    batch1_img_s: Spread
    batch256_img_s: Spread
    p50_ms: Spread
    p99_ms: Spread
    parity_max_abs_logit_diff: float | None = None  # exports only


@dataclass
class InferenceBench:
    run: str
    experiment: str | None
    model: str
    repeats: int
    latency_calls: int
    big_batches: int
    results: list[BackendResult]
    skipped: dict[str, str] = field(default_factory=dict)  # backend -> why
    environment: dict = field(default_factory=dict)
    measured_at: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def default_path(self) -> Path:
        from cifarkit.core.paths import artifacts_dir

        return artifacts_dir() / "bench" / f"inference-{self.run}.json"

    def table(self) -> str:
        """The backends side by side: median (range) over the repeats."""
        head = (
            f"{'backend':<11} {'batch 1 img/s':>20} {'batch 256 img/s':>20} "
            f"{'p50 ms (batch 1)':>20} {'p99 ms (batch 1)':>20}"
        )
        lines = [head]
        for r in self.results:
            lines.append(
                f"{r.backend:<11} {r.batch1_img_s.text():>20} {r.batch256_img_s.text():>20} "
                f"{r.p50_ms.text(2):>20} {r.p99_ms.text(2):>20}"
            )
        for backend, why in self.skipped.items():
            lines.append(f"{backend:<11} skipped: {why}")
        return "\n".join(lines)


def _time_backend(
    predict: Callable[[np.ndarray], Any],
    one: np.ndarray,
    big: np.ndarray,
    calls: int,
    big_batches: int,
) -> dict[str, float]:
    """One repeat: ``calls`` single-image calls timed one by one, then ``big_batches`` big ones."""
    for _ in range(3):  # warm caches and any lazy tracing out of the timed part
        predict(one)
    predict(big)
    stamps = np.empty(calls)
    for i in range(calls):
        started = time.perf_counter()
        predict(one)
        stamps[i] = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(big_batches):
        predict(big)
    big_seconds = time.perf_counter() - started
    return {
        "batch1_img_s": calls / stamps.sum(),
        "batch256_img_s": big_batches * len(big) / big_seconds,
        "p50_ms": 1000 * float(np.percentile(stamps, 50)),
        "p99_ms": 1000 * float(np.percentile(stamps, 99)),
    }


def inference_benchmark(
    run: Run,
    *,
    repeats: int = 5,
    latency_calls: int = 200,
    big_batches: int = 4,
    backends: tuple[str, ...] = BACKENDS,
) -> InferenceBench:
    """Time the run's Keras model and its exports side by side.

    Parameters
    ----------
    run : Run
        A complete run; its test data must be available (the exports are parity-checked).
    repeats : int, default 5
        Rounds over all backends; each figure is the median and range over them.
    latency_calls : int, default 200
        Single-image calls per repeat and backend (the p99 needs at least 100).
    big_batches : int, default 4
        Calls at batch 256 per repeat and backend.
    backends : tuple of str, default all three
        Any of ``keras``, ``savedmodel``, ``onnx``.

    Returns
    -------
    InferenceBench
        Per backend the median and range of images/s at batch 1 and 256 and of the p50/p99
        latency at batch 1; ONNX is listed as skipped when its extra is missing.

    Raises
    ------
    CifarkitError
        For bad counts or backend names, an incomplete run, or an export failing its parity check.
    """
    from cifarkit.core.repro import environment_record
    from cifarkit.models import predict_logits
    from cifarkit.runs.export import export_run, load_export

    if repeats < 1 or latency_calls < 1 or big_batches < 1:
        raise CifarkitError("repeats, latency calls and big batches must each be at least 1")
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise CifarkitError(
            f"unknown backend(s) {', '.join(unknown)}; choose from {', '.join(BACKENDS)}"
        )
    model = run.load_model()
    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, (BIG_BATCH, 32, 32, 3), dtype=np.uint8)
    one = big[:1]
    predictors: dict[str, Callable[[np.ndarray], Any]] = {}
    parity: dict[str, float] = {}
    skipped: dict[str, str] = {}
    if "keras" in backends:
        predictors["keras"] = lambda x: predict_logits(model, x, batch_size=BIG_BATCH)
    with tempfile.TemporaryDirectory(prefix="cifarkit-bench-inference-") as scratch:
        for fmt in ("savedmodel", "onnx"):
            if fmt not in backends:
                continue
            try:
                exported = export_run(run, fmt, out=Path(scratch) / fmt)
            except CifarkitError as exc:
                if fmt == "onnx" and "needs" in str(exc) and "not installed" in str(exc):
                    skipped[fmt] = str(exc)
                    continue
                raise
            parity[fmt] = exported.parity["max_abs_logit_diff"]
            loaded = load_export(exported.path)
            predictors[fmt] = lambda x, m=loaded: m.predict(x, batch_size=BIG_BATCH)
        figures: dict[str, list[dict[str, float]]] = {name: [] for name in predictors}
        for r in range(repeats):
            for name, predict in predictors.items():
                log.info("repeat %d/%d: timing %s", r + 1, repeats, name)
                figures[name].append(_time_backend(predict, one, big, latency_calls, big_batches))
    results = [
        BackendResult(
            name,
            *(
                Spread.of([f[key] for f in rows])
                for key in ("batch1_img_s", "batch256_img_s", "p50_ms", "p99_ms")
            ),
            parity_max_abs_logit_diff=parity.get(name),
        )
        for name, rows in figures.items()
    ]
    record = run.status_record()
    return InferenceBench(
        run.path.name,
        record.get("experiment"),
        run.config().model.name,
        repeats,
        latency_calls,
        big_batches,
        results,
        skipped,
        environment_record(),
        time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
