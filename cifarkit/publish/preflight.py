"""Before a build: the data is reachable, the kernel installed, the disk has room."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sys
from pathlib import Path

from cifarkit.core.errors import CifarkitError
from cifarkit.core.paths import artifacts_dir
from cifarkit.publish.execute import KERNEL_NAME, one_line

log = logging.getLogger(__name__)

MIN_FREE_BYTES = 2 * 1024**3
DOWNLOAD_HOST = ("www.cs.toronto.edu", 443)  # where Keras downloads CIFAR-10 from


def _network_reachable(host: tuple[str, int] = DOWNLOAD_HOST, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection(host, timeout=timeout):
            return True
    except OSError:
        return False


def _keras_cifar_cached() -> bool:
    keras_home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    return (keras_home / "datasets" / "cifar-10-batches-py").is_dir()


def preflight(min_free_bytes: int = MIN_FREE_BYTES) -> tuple[str | None, list[str]]:
    """Check what a build needs. Returns ``(data source or None, problems)``; one line each."""
    problems: list[str] = []
    source: str | None = None
    try:
        from cifarkit.data import resolve_source

        source = resolve_source(None)
    except CifarkitError as exc:
        problems.append(f"data: {exc}")
    else:
        if source is None and not _keras_cifar_cached() and not _network_reachable():
            problems.append(
                "data: CIFARKIT_DATA is unset and the CIFAR-10 download host is "
                "unreachable; set CIFARKIT_DATA=/path/to/cifar10-jpeg.tgz"
            )
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        kernels = KernelSpecManager().find_kernel_specs()
    except Exception as exc:  # a broken Jupyter install is reported, not raised
        problems.append(f"kernel: cannot list Jupyter kernels ({one_line(exc)}); run `make venv`")
    else:
        if KERNEL_NAME not in kernels:
            problems.append(
                f"kernel: the Jupyter kernel {KERNEL_NAME!r} is not installed "
                f"(found: {', '.join(sorted(kernels)) or 'none'}); run `make venv`"
            )
    if jupyter_book_command() is None:
        problems.append("jupyter-book: not installed in this environment; run `make venv`")
    where = _existing_ancestor(artifacts_dir())
    free = shutil.disk_usage(where).free
    if free < min_free_bytes:
        problems.append(
            f"disk: only {free / 1024**3:.1f} GB free under {where}, need "
            f"{min_free_bytes / 1024**3:.0f} GB; free some space or set "
            "CIFARKIT_ARTIFACTS to a larger disk"
        )
    return source, problems


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def jupyter_book_command() -> list[str] | None:
    exe = Path(sys.executable).parent / "jupyter-book"
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("jupyter-book")
    return [found] if found else None
