"""Which precision a run computes in, decided per machine before anything trains.

``train.precision`` is one of ``auto``, ``float32``, ``bfloat16`` or ``float16``. ``auto`` is
resolved when the config is validated, from what this machine has:

- a GPU that TensorFlow can use: ``float16`` (Keras' ``mixed_float16``, with loss scaling);
- a CPU with native bfloat16 (``avx512_bf16`` or ``amx_bf16``): ``bfloat16`` (``mixed_bfloat16``);
- otherwise ``float32`` (a CPU without native bfloat16 emulates it, several times slower).

The resolved name is what the config holds, so it is part of the content hash: runs of
different precision never share a key. ``float16`` asked for on a machine without a usable
GPU is refused before training (:func:`require_device`): TensorFlow would quietly train in
float32 on the CPU instead.

The machine is described by :class:`Machine`. :func:`machine` detects it once per process;
tests replace it through :func:`use_machine` (the seam for "GPU present", "GPU absent" and
"driver missing", which this CPU-only code base cannot otherwise reach).
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

from cifarkit.core.errors import CifarkitError

log = logging.getLogger(__name__)

Precision = Literal["float32", "bfloat16", "float16"]
PRECISIONS: tuple[str, ...] = ("auto", "float32", "bfloat16", "float16")
# Keras' dtype policy for each resolved precision.
POLICIES: dict[str, str] = {
    "float32": "float32",
    "bfloat16": "mixed_bfloat16",
    "float16": "mixed_float16",
}


@dataclass(frozen=True)
class Machine:
    """What decides precision on this machine.

    Attributes
    ----------
    gpus : tuple of str
        The GPUs TensorFlow lists (device names or models); empty without one.
    cpu_bfloat16 : bool
        The CPU computes bfloat16 natively.
    gpu_nodes : tuple of str
        NVIDIA device files (``/dev/nvidia0``, ...): a card is installed, whether or not
        TensorFlow can use it.
    reason : str
        Why TensorFlow lists no GPU although ``gpu_nodes`` exist ("" when not asked).
    """

    gpus: tuple[str, ...] = ()
    cpu_bfloat16: bool = False
    gpu_nodes: tuple[str, ...] = field(default=())
    reason: str = ""

    @property
    def device(self) -> str:
        """``gpu:<name>`` of the first GPU, else ``cpu``."""
        return f"gpu:{self.gpus[0]}" if self.gpus else "cpu"


def gpu_device_nodes() -> tuple[str, ...]:
    """NVIDIA device files present on this machine (``/dev/nvidia0``, ``/dev/nvidia1``, ...)."""
    return tuple(sorted(glob.glob("/dev/nvidia[0-9]*")))


def _tensorflow_gpus() -> tuple[tuple[str, ...], str]:
    """TensorFlow's GPU list, and why it is empty (its CUDA build, or the driver)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    names = []
    for gpu in gpus:
        try:
            names.append(
                tf.config.experimental.get_device_details(gpu).get("device_name") or gpu.name
            )
        except (RuntimeError, ValueError):
            names.append(gpu.name)
    if names:
        return tuple(names), ""
    if not tf.test.is_built_with_cuda():
        return (
            (),
            "this TensorFlow is built without CUDA; install tensorflow==2.21.0 from PyPI: make venv GPU=1",
        )
    missing = [name for name in CUDA_WHEELS if name not in cuda_wheels()]
    if missing:  # the Linux wheel is built for CUDA but ships none of its libraries
        return (), (
            f"TensorFlow's CUDA libraries are not installed ({', '.join(missing)}); "
            "install the GPU extra: make venv GPU=1"
        )
    if os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
        return (), (
            f"TensorFlow has its CUDA libraries but found no usable device with CUDA_VISIBLE_DEVICES="
            f"{os.environ['CUDA_VISIBLE_DEVICES']!r}; unset it or name a card nvidia-smi lists"
        )
    return (), (
        "TensorFlow has its CUDA libraries but found no usable device: check the driver (nvidia-smi "
        "must list the card, with a driver for CUDA 12)"
    )


# The libraries the GPU extra installs that TensorFlow cannot start a GPU without.
CUDA_WHEELS = ("nvidia-cuda-runtime-cu12", "nvidia-cublas-cu12", "nvidia-cudnn-cu12")


def cuda_wheels() -> dict[str, str]:
    """The NVIDIA CUDA wheels installed here (``nvidia-*-cu12``, the GPU extra), name -> version."""
    import importlib.metadata

    found = {}
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").lower()
        if name.startswith("nvidia-") and name.endswith("-cu12"):
            found[name] = dist.version
    return dict(sorted(found.items()))


def detect_machine() -> Machine:
    """Describe this machine. TensorFlow is asked about GPUs only where an NVIDIA device file
    exists (without one no GPU can be used, and the question costs TensorFlow's import)."""
    from cifarkit.core.repro import cpu_has_bfloat16

    nodes = gpu_device_nodes()
    gpus, reason = _tensorflow_gpus() if nodes else ((), "")
    if not nodes and shutil.which("nvidia-smi"):
        reason = (
            "nvidia-smi is installed but there is no /dev/nvidia* device file: the card is not "
            "passed into this machine or container (docker run --gpus all) or its driver is not loaded"
        )
    return Machine(gpus=gpus, cpu_bfloat16=cpu_has_bfloat16(), gpu_nodes=nodes, reason=reason)


_MACHINE: Machine | None = None


def machine() -> Machine:
    """This process's :class:`Machine`, detected on first use."""
    global _MACHINE
    if _MACHINE is None:
        _MACHINE = detect_machine()
    return _MACHINE


@contextmanager
def use_machine(fake: Machine) -> Iterator[Machine]:
    """Within the block, :func:`machine` returns ``fake`` (tests: a GPU present, absent, or a
    card whose driver TensorFlow cannot use)."""
    global _MACHINE
    saved = _MACHINE
    _MACHINE = fake
    try:
        yield fake
    finally:
        _MACHINE = saved


def share_gpus() -> int:
    """Let every GPU's memory grow as needed instead of TensorFlow taking a whole card at start,
    so that two runs share one card (the local runner's jobs, Ray tasks asking for part of a
    GPU). Returns how many GPUs were set.

    It must run before TensorFlow initialises the GPUs, so it runs once, right after
    TensorFlow's first import in a process that cifarkit's entry points started
    (:func:`cifarkit.core.startup.start` installs the hook of :mod:`cifarkit.core.tfquiet`):
    the command, the chapters' kernels, the runners' workers and the benchmarks. Without a GPU
    TensorFlow is not asked.
    """
    if not machine().gpus:
        return 0
    import tensorflow as tf

    shared = 0
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
            shared += 1
        except (
            RuntimeError
        ) as exc:  # initialised already: TensorFlow was used before cifarkit was imported
            log.warning(
                "%s keeps TensorFlow's default of taking all its memory (%s); import cifarkit before "
                "using TensorFlow to let runs share the card",
                gpu.name,
                exc,
            )
    return shared


def resolve(requested: str, on: Machine | None = None) -> Precision:
    """The precision ``requested`` means on ``on`` (default: this machine): ``auto`` resolved,
    the others unchanged."""
    if requested not in PRECISIONS:
        raise CifarkitError(f"train.precision={requested!r} is not one of {', '.join(PRECISIONS)}")
    if requested != "auto":
        return requested  # type: ignore[return-value]
    on = on or machine()
    if on.gpus:
        return "float16"
    return "bfloat16" if on.cpu_bfloat16 else "float32"


def require_device(precision: str, on: Machine | None = None) -> None:
    """Refuse a precision this machine cannot run as asked: float16 needs a GPU TensorFlow uses."""
    on = on or machine()
    if precision == "float16" and not on.gpus:
        why = f" ({on.reason})" if on.reason else ""
        raise CifarkitError(
            f"train.precision='float16' needs a GPU, and TensorFlow sees none on this machine{why}; "
            "install the GPU extra (make venv GPU=1) on a machine with an NVIDIA GPU, or train in "
            "float32 here: --set train.precision=float32"
        )


def native_on_cpu(precision: str, on: Machine | None = None) -> bool:
    """Whether ``precision`` runs at full speed on this machine's CPU (bfloat16 needs avx512_bf16)."""
    on = on or machine()
    return precision != "bfloat16" or on.cpu_bfloat16 or bool(on.gpus)


def describe(precision: str, on: Machine | None = None) -> str:
    """Words for a reader: ``bfloat16 (mixed, native on this CPU)``, ``float32``, ..."""
    on = on or machine()
    if precision == "bfloat16":
        return "bfloat16 (mixed; " + (
            "native on this CPU)" if on.cpu_bfloat16 else "emulated on this CPU)"
        )
    if precision == "float16":
        return "float16 (mixed, on a GPU)"
    return "float32"


def environment() -> dict[str, object]:
    """The machine facts a run records in ``env.json`` and MLflow."""
    on = machine()
    return {
        "device": on.device,
        "gpus": list(on.gpus),
        "cpu_bfloat16": on.cpu_bfloat16,
        "gpu_device_nodes": list(on.gpu_nodes),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
