"""Seeds, determinism and the environment record every run stores."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import logging
import os
import platform
import random
import subprocess
from typing import Any

import numpy as np

from cifarkit.core.paths import project_root

log = logging.getLogger(__name__)

RECORDED_PACKAGES = (
    "cifarkit",
    "tensorflow",
    "keras",
    "numpy",
    "pillow",
    "pydantic",
    "scikit-learn",
    "scipy",
    "mlflow",
    "matplotlib",
    "seaborn",
    "tf-keras-vis",
    "jupyter-book",
    "papermill",
)


def set_seeds(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy, TF and Keras from one number; optionally make TF ops deterministic.

    With ``deterministic`` TF raises on ops that have no deterministic kernel instead of
    silently varying between runs.
    """
    import keras
    import tensorflow as tf

    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)  # seeds python, numpy and the TF/Keras global generators
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args],
            cwd=project_root(),
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def _cpuinfo_field(name: str, cpuinfo: str = "/proc/cpuinfo") -> str | None:
    """The first ``name : value`` of /proc/cpuinfo (None when absent or unreadable)."""
    try:
        with open(cpuinfo, encoding="utf-8") as fh:
            for line in fh:
                if line.startswith(name):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), or ``unknown``."""
    return _cpuinfo_field("model name") or platform.processor() or "unknown"


# Widest first: the first of these in /proc/cpuinfo's flags names the vector unit TensorFlow's
# kernels use, which the CPU's model name does not ("AMD EPYC" comes with AVX2 or AVX-512,
# and the two train at very different speeds: the throughput tables name the ISA per row).
_VECTOR_EXTENSIONS = ("avx512f", "avx2", "avx", "sse4_2")


def _cpu_flags(cpuinfo: str) -> set[str]:
    return set((_cpuinfo_field("flags", cpuinfo) or "").split())


def cpu_vector_isa(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The widest SIMD extension the CPU reports (e.g. ``avx512f``), or ``unknown``."""
    flags = _cpu_flags(cpuinfo)
    return next((isa for isa in _VECTOR_EXTENSIONS if isa in flags), "unknown")


BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_bfloat16_flags(cpuinfo: str = "/proc/cpuinfo") -> list[str]:
    """The flags of :data:`BFLOAT16_FLAGS` the CPU reports (its native bfloat16 units)."""
    flags = _cpu_flags(cpuinfo)
    return [flag for flag in BFLOAT16_FLAGS if flag in flags]


def cpu_has_bfloat16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether the CPU computes bfloat16 natively (AVX-512 BF16 or AMX); without it TensorFlow
    emulates bfloat16, and mixed_bfloat16 can train slower than float32."""
    return bool(cpu_bfloat16_flags(cpuinfo))


def environment_record() -> dict[str, Any]:
    """Package versions, git commit and dirty flag, Python, platform, CPU and its vector ISA, as plain JSON."""
    versions: dict[str, str | None] = {}
    for name in RECORDED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain")
    return {
        "recorded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cpu_isa": cpu_vector_isa(),
        "cpu_count": os.cpu_count(),
        "packages": versions,
        "git_commit": commit,
        "git_dirty": bool(status) if status is not None else None,
    }
