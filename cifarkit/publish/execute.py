"""Execute one chapter with papermill into a temp file that is renamed into place on success."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cifarkit.core.atomic import fsync_dir, write_json
from cifarkit.core.errors import CifarkitError
from cifarkit.core.startup import KERNEL_START
from cifarkit.publish.keys import Store, file_hash
from cifarkit.publish.toc import Page

log = logging.getLogger(__name__)

KERNEL_NAME = "cifarkit"


class ChapterFailed(Exception):
    """A chapter raised while executing; ``str()`` is the one-line report."""

    def __init__(self, message: str, failed_notebook: Path | None = None):
        super().__init__(message)
        self.failed_notebook = failed_notebook
        self.result: Any = None  # the build's summary row for this chapter, set by the build


def _progress_option() -> bool | dict[str, Any]:
    if sys.stderr.isatty():
        return {"file": sys.stderr, "leave": False}
    # Not a terminal (CI, make | tee): fewer, plainer updates.
    return {"file": sys.stderr, "ascii": True, "mininterval": 10.0, "ncols": 80}


def _source_cell_index(executed_nb: Path, cell_index: int) -> int:
    """Map papermill's cell index (in the executed notebook, which has an extra
    ``injected-parameters`` cell) to the index of the cell in the source notebook.

    The failed notebook on disk also holds papermill's error-marker cells, added after the
    index was taken; they are left out before counting.
    """
    try:
        cells = json.loads(executed_nb.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError):
        return cell_index
    tags = [((c.get("metadata") or {}).get("tags") or []) for c in cells]
    executed = [t for t in tags if "papermill-error-cell-tag" not in t]
    injected = sum(1 for t in executed[:cell_index] if "injected-parameters" in t)
    return cell_index - injected


def one_line(text: Any, limit: int = 300) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _kernel_manager(env: Mapping[str, str]) -> type:
    """A kernel manager class whose kernels start with ``env`` as their whole environment
    (papermill has no option for it; nbclient creates the manager from this class)."""
    from jupyter_client.manager import AsyncKernelManager

    class ChapterKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw: Any) -> None:
            kw.setdefault("env", dict(env))
            await super().start_kernel(**kw)

    return ChapterKernelManager


def execute_chapter(
    page: Page,
    parameters: Mapping[str, Any],
    store: Store,
    record_extra: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None,
    progress: bool | dict[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Path:
    """Run one chapter with papermill; on success move it into the store and write its key.

    ``record_extra`` (the key record) may be a function, called after the execution: a
    chapter whose key covers the run store and that trains runs itself is keyed by the
    store as it left it, so the next build finds it cached. ``env`` is the kernel's
    environment (default: this process's).

    On failure raises :class:`ChapterFailed` (the failed notebook is kept under
    ``store.failed_dir``); the store keeps its previous content except the key file, so a
    failed or killed execution is never taken as fresh.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    final = store.notebook(page)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=final.parent, prefix=f".{page.name}.", suffix=".tmp.ipynb")
    os.close(fd)
    tmp = Path(tmp_name)
    started = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(page.source),
            str(tmp),
            parameters=dict(parameters),
            kernel_name=KERNEL_NAME,
            cwd=str(page.source.parent),
            log_output=False,
            progress_bar=_progress_option() if progress is None else progress,
            # nbclient option: quiet the kernel's own log lines (TCP notice, shutdown
            # interrupt) on our stderr; cell errors still come back through papermill.
            # The kernel starts as the cifarkit command does (cifarkit.core.startup) before
            # the first cell imports anything.
            extra_arguments=[
                "--IPKernelApp.log_level=ERROR",
                f"--IPKernelApp.exec_lines={[KERNEL_START]!r}",
            ],
            **({} if env is None else {"kernel_manager_class": _kernel_manager(env)}),
        )
    except PapermillExecutionError as exc:
        failed = _keep_failed(tmp, store.failed(page))
        index = _source_cell_index(failed, exc.cell_index) if failed else exc.cell_index
        raise ChapterFailed(
            f"chapter {page.name} ({page.relpath}) failed in cell {index}: "
            f"{exc.ename}: {one_line(exc.evalue)} (executed notebook kept at {failed})",
            failed,
        ) from None
    except BaseException as exc:
        failed = _keep_failed(tmp, store.failed(page))
        if isinstance(exc, Exception) and not isinstance(exc, CifarkitError):
            raise ChapterFailed(
                f"chapter {page.name} ({page.relpath}) could not run: "
                f"{type(exc).__name__}: {one_line(exc)}"
                + (f" (partial notebook kept at {failed})" if failed else ""),
                failed,
            ) from exc
        raise
    seconds = time.perf_counter() - started
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give it the usual permissions
    # Remove the old key before the new notebook replaces the old one: a kill in between
    # leaves a notebook without a key (re-run), never a key vouching for the wrong notebook.
    store.key_file(page).unlink(missing_ok=True)
    os.replace(tmp, final)
    fsync_dir(final.parent)
    write_json(
        store.key_file(page),
        {
            **((record_extra() if callable(record_extra) else record_extra) or {}),
            "notebook_sha256": file_hash(final),
            "executed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "seconds": round(seconds, 2),
        },
    )
    return final


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove_stale_temps(store: Store) -> int:
    """Delete temp notebooks left by killed builds (call with the build lock held)."""
    stale = list(store.executed_dir.rglob(".*.tmp.ipynb")) if store.executed_dir.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    if stale:
        log.info("removed %d temp notebook(s) left by an interrupted build", len(stale))
    return len(stale)


def _keep_failed(tmp: Path, target: Path) -> Path | None:
    if not tmp.is_file() or tmp.stat().st_size == 0:
        tmp.unlink(missing_ok=True)
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, target)
    return target
