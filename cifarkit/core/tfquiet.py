"""Keep TensorFlow's start-up chatter off the terminal without hiding real errors.

On a machine without a GPU, importing TensorFlow and creating its first device print lines
such as ``I0000 ... cudart_stub.cc ... Could not find cuda drivers`` and
``E0000 ... cuda_platform.cc ... failed call to cuInit``. They are written by C++ code
before absl's logging is initialised, so ``TF_CPP_MIN_LOG_LEVEL`` does not reach them, and
TensorFlow has no switch for them. So the first ``import tensorflow`` in a cifarkit
process runs with file descriptor 2 redirected into a temporary file; afterwards every
captured line that is not one of the known start-up notices below is written back to
stderr, in order. ``CIFARKIT_TF_LOGS=1`` turns the filter off.

The GPU and driver lines among them (no CUDA driver, cuInit failed, GPU libraries not
loaded) are removed only on a machine without an NVIDIA device file: where a card is
installed and TensorFlow still trains on the CPU, they are the only clue why, so there
they stay. Right after that first import, before anything can initialise a GPU, every GPU
TensorFlow lists is set to grow its memory as needed (:func:`cifarkit.core.precision.share_gpus`),
with or without the filter.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

# TensorFlow's GPU and driver lines, matched on the whole line: noise where no NVIDIA card is
# installed, the only clue to a silent CPU fallback where one is (kept there).
GPU_NOTICES: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p)
    for p in (
        r"[IW]\d{4} .*cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine.*",
        r"E\d{4} .*cuda_platform\.cc:\d+\] failed call to cuInit: .*",
        r"E\d{4} .*cuda_executor\.cc:\d+\] .*(no CUDA-capable device|CUDA_ERROR_NO_DEVICE).*",
        r"W\d{4} .*gpu_device\.cc:\d+\] Cannot dlopen some GPU libraries\..*",
        r"Skipping registering GPU devices\.\.\.",
    )
)
# The other start-up notices of TensorFlow on a CPU, removed everywhere.
STARTUP_NOTICES: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p)
    for p in (
        r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
        r"I\d{4} .*cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized to use available CPU.*",
        r"To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\.",
        r"I\d{4} .*port\.cc:\d+\] oneDNN custom operations are on\..*",
    )
)


def gpu_installed() -> bool:
    """Whether an NVIDIA device file exists (``/dev/nvidia0``, ...): a card is installed."""
    from cifarkit.core.precision import gpu_device_nodes

    return bool(gpu_device_nodes())


def is_startup_notice(line: str, gpu: bool = False) -> bool:
    """True for one of TensorFlow's start-up notices (never for anything else); with ``gpu``
    (a card is installed) the GPU and driver lines are not notices but kept."""
    patterns = STARTUP_NOTICES if gpu else STARTUP_NOTICES + GPU_NOTICES
    return any(p.fullmatch(line.rstrip("\r\n")) for p in patterns)


def without_startup_notices(text: str, gpu: bool | None = None) -> str:
    """``text`` with every start-up notice line removed; all other lines kept, in order.
    ``gpu``: whether a card is installed (default: :func:`gpu_installed`)."""
    gpu = gpu_installed() if gpu is None else gpu
    return "".join(
        line for line in text.splitlines(keepends=True) if not is_startup_notice(line, gpu)
    )


@contextmanager
def filtered_stderr() -> Iterator[None]:
    """Capture file descriptor 2 for the block, then write back what is not a start-up notice."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = without_startup_notices(capture.read().decode("utf-8", "replace"))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


class _AlreadyLoaded(importlib.abc.Loader):
    """Hands the import system the module :class:`QuietTensorFlowImport` imported itself,
    and gives it back its real spec and loader (the import system sets ours on it)."""

    def __init__(self, real_spec: importlib.machinery.ModuleSpec | None) -> None:
        self.real_spec = real_spec

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return sys.modules[spec.name]

    def exec_module(self, module: ModuleType) -> None:
        if self.real_spec is not None:
            module.__spec__ = self.real_spec
            module.__loader__ = self.real_spec.loader


class QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """A meta-path hook: the first ``import tensorflow`` (direct, or through Keras) runs inside
    :func:`filtered_stderr` (unless ``quiet`` is false), together with the device set-up that
    prints the cuInit line, and is followed by :func:`cifarkit.core.precision.share_gpus`.
    It removes itself after that one import."""

    def __init__(self, quiet: bool = True) -> None:
        self._busy = False
        self.quiet = quiet

    def find_spec(self, name: str, path: object = None, target: object = None):
        if name != "tensorflow" or self._busy:
            return None
        self._busy = True
        try:
            with filtered_stderr() if self.quiet else contextlib.nullcontext():
                tf = importlib.import_module("tensorflow")
                tf.config.list_physical_devices()  # creates the platforms: the cuInit call
                _share_gpus()
        except ModuleNotFoundError:  # no TensorFlow here (e.g. a PyTorch-only tool): "not found"
            return None
        finally:
            if self in sys.meta_path:
                sys.meta_path.remove(self)
        real = getattr(sys.modules.get(name), "__spec__", None)
        return importlib.machinery.ModuleSpec(name, _AlreadyLoaded(real), is_package=True)


def _share_gpus() -> None:
    from cifarkit.core.precision import share_gpus

    share_gpus()


def install() -> None:
    """Install the hook once per process (``CIFARKIT_TF_LOGS=1``: without the filter). If
    TensorFlow is loaded already, its GPUs are shared at once (if not initialised yet)."""
    if "tensorflow" in sys.modules:
        _share_gpus()
        return
    if importlib.util.find_spec("tensorflow") is None:  # locates, does not import
        return
    if not any(isinstance(finder, QuietTensorFlowImport) for finder in sys.meta_path):
        sys.meta_path.insert(
            0, QuietTensorFlowImport(quiet=os.environ.get("CIFARKIT_TF_LOGS") != "1")
        )


def setup_logging(level: int) -> None:
    """Configure stdlib logging once for a cifarkit process (the CLI, or a worker it spawns):
    timestamped lines on stderr; above DEBUG, the libraries' chatter is kept to warnings."""
    import logging

    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,
    )
    if level > logging.DEBUG:
        # TensorFlow's C++ and absl chatter would drown the progress lines.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        os.environ.setdefault(
            "MLFLOW_LOGGING_LEVEL", "WARNING"
        )  # mlflow resets its logger on import
        for noisy in ("absl", "tensorflow", "mlflow", "alembic", "matplotlib", "PIL", "h5py"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
