"""``cifarkit doctor``: what TensorFlow sees on this machine, and what cifarkit makes of it.

One line per fact a GPU user (or anyone whose training is slower than expected) needs: the
TensorFlow build and its CUDA libraries, the devices it lists, the GPU (or why there is
none usable although a card is installed), the CPU's native bfloat16, TensorFlow's thread
pools, and the precision each profile resolves to here, or why it is refused.

The machine comes from :func:`cifarkit.core.precision.machine` (tests fake it through
:func:`~cifarkit.core.precision.use_machine`); TensorFlow's own facts from
:func:`tensorflow_facts`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from cifarkit.core import precision
from cifarkit.core.errors import CifarkitError


@dataclass(frozen=True)
class TensorFlowFacts:
    """What TensorFlow reports about itself and this machine."""

    version: str
    keras: str
    devices: tuple[str, ...]  # "CPU:0", "GPU:0", ...
    build: dict[str, Any] = field(default_factory=dict)  # tf.sysconfig.get_build_info()
    intra_op_threads: int = 0  # 0: TensorFlow's default
    inter_op_threads: int = 0


def tensorflow_facts() -> TensorFlowFacts:
    """Ask TensorFlow: its version, build, physical devices and thread pools."""
    import keras
    import tensorflow as tf

    devices = tuple(
        d.name.removeprefix("/physical_device:") for d in tf.config.list_physical_devices()
    )
    return TensorFlowFacts(
        tf.__version__,
        keras.__version__,
        devices,
        dict(tf.sysconfig.get_build_info()),
        tf.config.threading.get_intra_op_parallelism_threads(),
        tf.config.threading.get_inter_op_parallelism_threads(),
    )


def _build(tf: TensorFlowFacts) -> str:
    if not tf.build.get("is_cuda_build"):
        return f"{tf.version} (Keras {tf.keras}), built without CUDA"
    return (
        f"{tf.version} (Keras {tf.keras}), built for CUDA {tf.build.get('cuda_version', '?')} and "
        f"cuDNN {tf.build.get('cudnn_version', '?')}"
    )


def _cuda_libraries(installed: dict[str, str]) -> str:
    if not installed:
        return "none (the nvidia-*-cu12 wheels of the GPU extra are not installed: make venv GPU=1)"
    missing = [name for name in precision.CUDA_WHEELS if name not in installed]
    shown = ", ".join(
        f"{name} {installed[name]}" for name in precision.CUDA_WHEELS if name in installed
    )
    text = f"{len(installed)} nvidia-*-cu12 wheels: {shown}"
    return text + (f"; missing {', '.join(missing)} (make venv GPU=1)" if missing else "")


def _gpu(on: precision.Machine) -> str:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    limit = f" (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else ""
    if on.gpus:
        return f"{', '.join(on.gpus)}{limit}; memory grows as needed, so runs can share a card"
    if on.gpu_nodes or on.reason:
        where = ", ".join(on.gpu_nodes) if on.gpu_nodes else "nvidia-smi"
        return (
            f"none usable although {where} exists{limit}: {on.reason or 'TensorFlow lists no GPU'}"
        )
    return "none (no /dev/nvidia* device file): training runs on the CPU"


def _cpu(on: precision.Machine) -> str:
    from cifarkit.core.repro import BFLOAT16_FLAGS, cpu_bfloat16_flags, cpu_model, cpu_vector_isa

    flags = cpu_bfloat16_flags()
    if on.cpu_bfloat16:
        bf16 = "yes" + (f" ({', '.join(flags)})" if flags else "")
    else:
        bf16 = f"no (neither {' nor '.join(BFLOAT16_FLAGS)}: bfloat16 is emulated, slower than float32)"
    return f"{cpu_model()}, {os.cpu_count()} cores, {cpu_vector_isa()}; native bfloat16: {bf16}"


def _threads(tf: TensorFlowFacts) -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

    def pool(n: int) -> str:
        return str(n) if n else f"TensorFlow's default (one per core: {cores})"

    env = [
        f"{name}={os.environ[name]}"
        for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")
        if os.environ.get(name)
    ]
    return f"intra-op {pool(tf.intra_op_threads)}, inter-op {pool(tf.inter_op_threads)}" + (
        f"; {', '.join(env)}" if env else ""
    )


def profile_precision(profile: str, on: precision.Machine) -> str:
    """``auto -> float32``, ``float16 -> float16 (mixed, on a GPU)`` or ``float16: refused here (...)``:
    what ``profile`` asks for (``train.precision`` of its YAML) and what a run computes in here."""
    from cifarkit.core.config import configs_dir, read_yaml

    raw = read_yaml(configs_dir() / "profiles" / f"{profile}.yaml")
    requested = str((raw.get("train") or {}).get("precision", "auto"))
    resolved = precision.resolve(requested, on)
    try:
        precision.require_device(resolved, on)
    except CifarkitError:
        return f"{requested}: refused here (needs a GPU TensorFlow can use; --set train.precision=float32 runs here)"
    return f"{requested} -> {precision.describe(resolved, on)}"


def report(
    on: precision.Machine | None = None, tf: TensorFlowFacts | None = None
) -> list[tuple[str, str]]:
    """The doctor's lines as (label, text), in print order."""
    from cifarkit.core.config import available

    on = on or precision.machine()
    tf = tf or tensorflow_facts()
    lines = [
        ("tensorflow", _build(tf)),
        ("cuda libraries", _cuda_libraries(precision.cuda_wheels())),
        ("devices", ", ".join(tf.devices) or "none"),
        ("gpu", _gpu(on)),
        ("cpu", _cpu(on)),
        ("threads", _threads(tf)),
    ]
    budget = ("smoke", "cpu", "full")
    profiles = sorted(
        available("profiles"), key=lambda p: (budget.index(p) if p in budget else len(budget), p)
    )
    lines += [(f"precision {profile}", profile_precision(profile, on)) for profile in profiles]
    return lines


def render(lines: list[tuple[str, str]]) -> str:
    width = max(len(label) for label, _ in lines)
    return "\n".join(f"{label:<{width}}  {text}" for label, text in lines)
