"""The training engine side by side: batch-norm kernel x precision x model, beside PyTorch.

One command answers "how fast does cifarkit train here, and against what": every arm (a model,
a precision, Keras' batch norm or the fused one, or the PyTorch ResNet20 reference of
``tools/resnet20_torch_throughput.py``) is timed in a **fresh process**, the arms are
**interleaved** (arm 1, arm 2, ..., arm 1, arm 2, ...) so drift on a shared host hits them
alike, each ``repeats`` times; the table gives each arm's median and range, its speed-up over
Keras' batch norm in float32, and for ResNet20 its ratio to PyTorch's channels-last step in
the same precision (model alone on one synthetic batch, as the PyTorch script measures).

bfloat16 arms run only where the CPU computes bfloat16 natively (``avx512_bf16``,
``amx_bf16``); elsewhere it is emulated and several times slower, which is not worth timing.
The PyTorch arms need a Python with torch (``--torch-python``); cifarkit does not depend on it.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from cifarkit.core.errors import CifarkitError

TORCH_SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "resnet20_torch_throughput.py"
ENGINE_GLOB = "engine-*.json"


@dataclass(frozen=True)
class Arm:
    """One thing to time: a cifarkit model (``framework`` keras) or the PyTorch reference."""

    model: str
    precision: str  # float32 or bfloat16
    batch_norm: str = "fused"  # fused or keras; "-" for PyTorch
    framework: str = "keras"
    variant: str = (
        ""  # a measured negative: "xla" (jit_compile, determinism off) or "1 inter-op thread"
    )

    @property
    def label(self) -> str:
        if self.framework == "torch":
            return f"PyTorch {self.model}, channels_last, {self.precision}"
        kernel = "fused batch norm" if self.batch_norm == "fused" else "Keras batch norm"
        return f"cifarkit {self.model}, {kernel}, {self.precision}" + (
            f", {self.variant}" if self.variant else ""
        )


#: Settings measured and kept off: each is timed against the fused float32 arm when asked
#: (``cifarkit bench engine --negatives``), so the benchmark page shows why.
NEGATIVES = ("xla", "1 inter-op thread")


def arms(
    models: list[str], precisions: list[str], torch: bool, negatives: bool = False
) -> list[Arm]:
    """Every arm of the comparison, in the order they are run within a repeat."""
    out = [Arm(m, p, bn) for m in models for p in precisions for bn in ("keras", "fused")]
    if negatives:
        out += [Arm(m, "float32", "fused", variant=v) for m in models for v in NEGATIVES]
    if torch and "resnet20" in models:
        out += [Arm("resnet20", p, "-", "torch") for p in precisions]
    return out


def _arm_command(
    arm: Arm, out: Path, steps: int, batch_size: int, torch_python: str | None
) -> list[str]:
    if arm.framework == "torch":
        assert torch_python is not None
        cmd = [
            torch_python,
            str(TORCH_SCRIPT),
            "--channels-last",
            "--repeats",
            "1",
            "--steps",
            str(steps),
            "--batch-size",
            str(batch_size),
            "--json",
            str(out),
        ]
        return cmd + (["--bf16"] if arm.precision == "bfloat16" else [])
    spec = json.dumps({**asdict(arm), "steps": steps, "batch_size": batch_size, "out": str(out)})
    return [sys.executable, "-m", "cifarkit.bench.engine", spec]


def _time_arm_here(spec: dict[str, Any]) -> None:
    """Run in the arm's own process: time the model alone and the real pipeline once each."""
    from cifarkit.bench.throughput import throughput
    from cifarkit.core.atomic import write_json

    overrides = {"train.precision": spec["precision"], "model.batch_norm": spec["batch_norm"]}
    if spec.get("variant") == "1 inter-op thread":  # before TensorFlow starts its thread pools
        import tensorflow as tf

        tf.config.threading.set_inter_op_parallelism_threads(1)
    if spec.get("variant") == "xla":
        overrides["train.deterministic"] = (
            False  # XLA's CPU kernels are not covered by op determinism
        )
    result = throughput(
        spec["model"],
        "cpu",
        batch_size=spec["batch_size"],
        steps=spec["steps"],
        repeats=1,
        overrides=overrides,
        jit_compile=spec.get("variant") == "xla",
        lean=True,
    )
    write_json(Path(spec["out"]), result.as_dict())


def compare(
    models: list[str],
    *,
    repeats: int = 3,
    steps: int = 40,
    batch_size: int = 128,
    precisions: list[str] | None = None,
    torch_python: str | None = None,
    negatives: bool = False,
    progress: Any = print,
) -> dict[str, Any]:
    """Time every arm ``repeats`` times, interleaved, each in a fresh process.

    Parameters
    ----------
    models : list of str
        Experiments whose models are timed (``resnet20``, ``baseline_cnn``, ``airbench``).
    repeats, steps, batch_size : int
        Rounds over all arms; timed steps per measurement; batch size of every arm.
    precisions : list of str, optional
        Default: float32, and bfloat16 where the CPU has it natively.
    torch_python : str, optional
        A Python with PyTorch for the ResNet20 reference arms; None leaves them out.
    negatives : bool, default False
        Also time the settings kept off (:data:`NEGATIVES`) against the fused float32 arm.

    Returns
    -------
    dict
        ``machine`` (CPU, flags), ``arms`` (each arm's label and per-repeat figures).
    """
    from cifarkit.core.repro import cpu_has_bfloat16, environment_record

    if repeats < 1 or steps < 8:
        raise CifarkitError(f"repeats={repeats}, steps={steps}: need repeats >= 1 and steps >= 8")
    precisions = precisions or (["float32", "bfloat16"] if cpu_has_bfloat16() else ["float32"])
    plan = arms(models, precisions, torch_python is not None, negatives)
    figures: dict[Arm, dict[str, list[float]]] = {
        a: {"model_alone": [], "pipeline": []} for a in plan
    }
    with tempfile.TemporaryDirectory(prefix="cifarkit-engine-") as scratch:
        for r in range(repeats):
            for i, arm in enumerate(plan):
                out = Path(scratch) / f"{r}-{i}.json"
                progress(f"[repeat {r + 1}/{repeats}, arm {i + 1}/{len(plan)}] {arm.label}")
                done = subprocess.run(
                    _arm_command(arm, out, steps, batch_size, torch_python),
                    capture_output=True,
                    text=True,
                )
                if done.returncode != 0 or not out.is_file():
                    raise CifarkitError(
                        f"arm '{arm.label}' failed (exit {done.returncode}): "
                        f"{(done.stderr.strip().splitlines() or ['no output'])[-1]}"
                    )
                data = json.loads(out.read_text())
                figures[arm]["model_alone"].append(float(data["synthetic_img_s"]))
                if data.get("pipeline_img_s"):
                    figures[arm]["pipeline"].append(float(data["pipeline_img_s"]))
    env = environment_record()
    return {
        "machine": machine_record(env),
        "recorded_at": env["recorded_at"],
        "repeats": repeats,
        "steps": steps,
        "batch_size": batch_size,
        "arms": [{**asdict(a), "label": a.label, **figures[a]} for a in plan],
    }


def _median_range(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f})"


def _ratio(values: list[float], reference: list[float]) -> str:
    """Median of the per-repeat ratios with their range (each repeat's pair ran in one round)."""
    if not values or not reference:
        return "-"
    ratios = [a / b for a, b in zip(values, reference, strict=False)]
    return f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"


def engine_table(result: dict[str, Any]) -> pd.DataFrame:
    """One row per arm: img/s of the model alone and of the real pipeline (median, range), the
    speed-up over Keras' batch norm in float32, and for ResNet20 the ratio to PyTorch's
    channels-last step in the same precision (model alone)."""
    rows = []
    by_key = {
        (a["model"], a["precision"], a["batch_norm"], a["framework"], a.get("variant", "")): a
        for a in result["arms"]
    }
    for a in result["arms"]:
        plain = by_key.get((a["model"], "float32", "keras", "keras", ""))
        torch = by_key.get((a["model"], a["precision"], "-", "torch", ""))
        rows.append(
            {
                "arm": a["label"],
                "model alone img/s": _median_range(a["model_alone"]),
                "real pipeline img/s": _median_range(a["pipeline"]),
                "× Keras BN float32 (pipeline)": (
                    _ratio(a["pipeline"], plain["pipeline"])
                    if plain and a["framework"] == "keras"
                    else "-"
                ),
                "× PyTorch same precision (model alone)": (
                    _ratio(a["model_alone"], torch["model_alone"])
                    if torch and a["framework"] == "keras"
                    else "-"
                ),
            }
        )
    return pd.DataFrame(rows)


def machine_record(env: dict[str, Any]) -> dict[str, Any]:
    """The machine a kept benchmark ran on, from :func:`~cifarkit.core.repro.environment_record`:
    CPU, cores, widest vector unit, native bfloat16 and the package versions."""
    from cifarkit.core.repro import cpu_has_bfloat16

    return {
        "cpu": env["cpu"],
        "cpu_isa": env["cpu_isa"],
        "cpu_bfloat16": cpu_has_bfloat16(),
        "cpu_count": env["cpu_count"],
        "packages": env["packages"],
    }


def cpu_text(machine: dict[str, Any]) -> str:
    """``AMD EPYC, 2 cores, widest vector unit avx512f, native bfloat16 (...)``: a
    :func:`machine_record` in words."""
    bf16 = (
        "native bfloat16 (avx512_bf16/amx_bf16)"
        if machine["cpu_bfloat16"]
        else "no native bfloat16"
    )
    return (
        f"{machine['cpu']}, {machine['cpu_count']} cores, widest vector unit "
        f"{machine['cpu_isa']}, {bf16}"
    )


def machine_text(result: dict[str, Any]) -> str:
    repeats = sorted({a.get("repeats", result["repeats"]) for a in result["arms"]}) or [
        result["repeats"]
    ]
    shown = " or ".join(str(r) for r in repeats)
    return (
        f"{cpu_text(result['machine'])}; {shown} interleaved repeats of {result['steps']} steps at batch {result['batch_size']}, "
        f"each arm in a fresh process, recorded {result['recorded_at']}"
    )


def result_path(models: list[str]) -> Path:
    """``artifacts/bench/engine-<isa>[-bf16]-<models>.json``: one file per kind of host and set of models."""
    from cifarkit.core.paths import artifacts_dir
    from cifarkit.core.repro import cpu_has_bfloat16, cpu_vector_isa

    host = f"{cpu_vector_isa()}{'-bf16' if cpu_has_bfloat16() else ''}"
    return artifacts_dir() / "bench" / f"engine-{host}-{'-'.join(models)}.json"


def latest_result(folder: Path | None = None) -> dict[str, Any] | None:
    """The kept engine comparisons of the newest one's host, merged into one (each model's arms
    from its newest file), or None when nothing is kept."""
    from cifarkit.core.paths import artifacts_dir

    folder = folder or artifacts_dir() / "bench"
    results = sorted(
        (json.loads(p.read_text()) for p in folder.glob(ENGINE_GLOB)),
        key=lambda r: r["recorded_at"],
        reverse=True,
    )
    if not results:
        return None
    newest = results[0]
    arms, seen = [], set()
    for result in results:
        if (
            result["machine"]["cpu_isa"] != newest["machine"]["cpu_isa"]
            or result["machine"]["cpu_bfloat16"] != newest["machine"]["cpu_bfloat16"]
        ):
            continue  # another kind of host: never mixed into one table
        models = {a["model"] for a in result["arms"]} - seen
        arms += [
            {**a, "repeats": result["repeats"]} for a in result["arms"] if a["model"] in models
        ]
        seen |= models
    return {**newest, "arms": arms}


def chapter_view(folder: Path | None = None) -> tuple[pd.DataFrame | None, str]:
    """What the fast-training chapter shows of the engine: the table of the newest comparison
    and the sentence naming its machine, or no table and the command that makes one."""
    result = latest_result(folder)
    if result is None:
        return None, (
            "No engine comparison has been kept on this machine yet. Make one with "
            "`cifarkit bench engine --torch-python /path/to/python-with-torch` (the PyTorch arms "
            "are left out without it)."
        )
    return engine_table(result), f"Measured on {machine_text(result)}."


if __name__ == "__main__":  # one arm, in its own process (see _arm_command)
    from cifarkit.core.startup import start

    start()  # as the cifarkit command does: the arm times what a run gets
    _time_arm_here(json.loads(sys.argv[1]))
