"""Build the report: execute each chapter with papermill (content-keyed cache), then jupyter-book.

``python -m cifarkit.bookbuild --profile smoke|cpu|full [--chapter NAME] [--params "k=v ..."]``
(``make book``, ``make chapter``). Steps:

1. **Preflight**: the data is reachable, the ``cifarkit`` Jupyter kernel is installed and
   there is free disk space. Every missing item is one line; exit code 2.
2. **Execute** the chapters, i.e. the notebooks the ``_toc.yml`` names, in toc order
   (markdown pages are only copied). Each chapter has a cache key: SHA-256 over its
   *components* (:data:`COMPONENTS`): the notebook's cell sources and tags (outputs
   ignored), the source of every ``cifarkit/**/*.py``, the parameters (profile and
   ``--params``), the resolved configs of every experiment under the profile, the data's
   content hash and ``requirements.lock``. A chapter whose executed notebook under
   ``artifacts/book/executed/<profile>/`` carries the same key is not run again;
   otherwise papermill runs it in a temp file that is renamed into place only on success,
   and the key file (``<chapter>.key.json``, beside the notebook, holding the components
   so the summary can say *why* a chapter re-ran) is written last. The old key file is
   removed before the new notebook is moved in, so a kill at any point leaves either a
   consistent pair or a chapter that re-runs.
3. A chapter that raises stops the build: one line names the chapter, the cell and the
   exception, the executed notebook is kept under ``artifacts/book/failed/<profile>/``,
   exit code 1. No site is built with a broken page.
4. **Assemble** ``artifacts/book/site-src/<profile>/`` (``_config.yml``, ``_toc.yml``,
   markdown pages and other files beside them, executed notebooks at the toc's paths;
   unchanged files keep their mtime so Sphinx rebuilds only what changed) and run
   ``jupyter-book build -W --keep-going`` on it, with notebook execution off, writing
   ``<repo>/_build/html``.
5. Print a summary table: chapter, cached/executed/failed, wall time, reason.

``--chapter NAME`` executes that chapter only. Every other chapter is shown as it is
stored: cached when fresh; when stale, its last executed notebook with a note naming
why it is out of date; when never executed under the profile, a stand-in page that says
so and gives the command. No other chapter is executed (so no other chapter trains).

One build at a time per artifacts folder: a ``filelock`` on ``artifacts/book/.lock``
(released by the kernel if the holder dies); a second build waits and says so.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from cifarkit.atomic import atomic_path, fsync_dir, write_json
from cifarkit.errors import CifarkitError, ConfigError
from cifarkit.paths import PACKAGE_DIR, artifacts_dir, project_root

log = logging.getLogger("cifarkit.bookbuild")

KERNEL_NAME = "cifarkit"
MIN_FREE_BYTES = 2 * 1024**3
KEY_VERSION = 1
DOWNLOAD_HOST = ("www.cs.toronto.edu", 443)  # where Keras downloads CIFAR-10 from

#: Cache-key components, in the order reasons are reported, with the reason text.
COMPONENTS: dict[str, str] = {
    "notebook": "notebook source changed",
    "cifarkit": "cifarkit source changed",
    "parameters": "parameters changed",
    "configs": "configs changed",
    "data": "data changed",
    "lock": "lock file changed",
    "runs": "the run store changed",
    "benchmarks": "benchmark results changed",
}
NEVER_EXECUTED = "never executed"


class BuildError(CifarkitError):
    """A problem with the book's sources or environment that the user can fix."""


class ChapterFailed(Exception):
    """A chapter raised while executing; ``str()`` is the one-line report."""

    def __init__(self, message: str, failed_notebook: Path | None = None):
        super().__init__(message)
        self.failed_notebook = failed_notebook


# --------------------------------------------------------------------------- table of contents


@dataclasses.dataclass(frozen=True)
class Page:
    """One page the toc names: a chapter (notebook, executed) or a markdown page (copied)."""

    docname: str  # toc path without suffix, relative to the book root, e.g. "book/data"
    source: Path  # the file in the checkout
    kind: str  # "notebook" or "markdown"

    @property
    def name(self) -> str:
        """Short name used on the command line: the file stem, e.g. ``data``."""
        return Path(self.docname).name

    @property
    def relpath(self) -> str:
        """Path of the file relative to the book root, e.g. ``book/data.ipynb``."""
        return self.docname + self.source.suffix


_PAGE_SUFFIXES = {".ipynb": "notebook", ".md": "markdown"}
_TOC_CHILD_KEYS = ("parts", "chapters", "sections", "subtrees", "entries")


def toc_files(toc: Mapping[str, Any]) -> list[str]:
    """The ``file`` entries of a jupyter-book ``_toc.yml`` mapping, in reading order."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
            return
        if not isinstance(node, dict):
            return
        if "glob" in node:
            raise BuildError(f"_toc.yml: glob entry {node['glob']!r} is not supported by "
                             "cifarkit.bookbuild; list the files one by one")
        if "file" in node:
            found.append(str(node["file"]))
        for key in _TOC_CHILD_KEYS:
            if key in node:
                walk(node[key])

    if "root" not in toc:
        raise BuildError("_toc.yml: no 'root' entry; add 'root: book/intro'")
    found.append(str(toc["root"]))
    walk({k: v for k, v in toc.items() if k != "root"})
    return found


def _resolve_page(root: Path, entry: str) -> Page:
    entry = entry.strip().lstrip("./")
    stem, suffix = os.path.splitext(entry)
    if suffix in _PAGE_SUFFIXES:
        candidates = [root / entry]
        docname = stem
    else:
        candidates = [root / f"{entry}{s}" for s in _PAGE_SUFFIXES]
        docname = entry
    existing = [c for c in candidates if c.is_file()]
    if not existing:
        tried = " or ".join(str(c.relative_to(root)) for c in candidates)
        raise BuildError(f"_toc.yml names {entry!r} but {tried} does not exist; "
                         "create the page or fix the toc")
    if len(existing) > 1:
        raise BuildError(f"_toc.yml entry {entry!r} is ambiguous: both "
                         f"{' and '.join(str(c.relative_to(root)) for c in existing)} exist; "
                         "keep one or give the suffix")
    return Page(docname=docname, source=existing[0], kind=_PAGE_SUFFIXES[existing[0].suffix])


def read_toc(root: Path) -> list[Page]:
    """Every page the book's ``_toc.yml`` names, in order (no hard-coded chapter list)."""
    toc_path = root / "_toc.yml"
    if not toc_path.is_file():
        raise BuildError(f"{toc_path}: not found; the book needs a _toc.yml at its root")
    try:
        toc = yaml.safe_load(toc_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise BuildError(f"{toc_path}: malformed YAML ({str(exc).splitlines()[0]}); "
                         "fix the syntax") from None
    if not isinstance(toc, dict):
        raise BuildError(f"{toc_path}: top level must be a mapping with 'root' and 'chapters'")
    pages = [_resolve_page(root, entry) for entry in toc_files(toc)]
    seen: dict[str, Page] = {}
    for page in pages:
        if page.docname in seen:
            raise BuildError(f"_toc.yml names {page.docname!r} twice; list each page once")
        seen[page.docname] = page
    chapters = [p for p in pages if p.kind == "notebook"]
    names = [p.name for p in chapters]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise BuildError(f"chapters share the name(s) {', '.join(dupes)}; "
                         "give every notebook a distinct file name")
    return pages


def chapters_of(pages: Iterable[Page]) -> list[Page]:
    return [p for p in pages if p.kind == "notebook"]


def find_chapter(pages: Sequence[Page], name: str) -> Page:
    """The chapter called ``name`` (file stem, toc path or file path)."""
    chapters = chapters_of(pages)
    wanted = name.strip()
    for page in chapters:
        if wanted in (page.name, page.docname, page.relpath):
            return page
    listing = ", ".join(p.name for p in chapters) or "(none)"
    shown = repr(wanted) if wanted else "(empty; pass NAME=...)"
    raise BuildError(f"unknown chapter {shown}; chapters are: {listing}")


# --------------------------------------------------------------------------- parameters


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_params(text: str | None) -> dict[str, Any]:
    """``"seeds=5 epochs=30 name='a b'"`` -> ``{"seeds": 5, "epochs": 30, "name": "a b"}``.

    Tokens are split like a shell would; each value is read with ``yaml.safe_load`` (so
    ``5`` is an int, ``0.1`` a float, ``true`` a bool, ``[1, 2]`` a list).
    """
    if not text or not text.strip():
        return {}
    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        raise BuildError(f"--params {text!r}: {exc}; write k=v pairs separated by spaces") from None
    params: dict[str, Any] = {}
    for token in tokens:
        key, sep, raw = token.partition("=")
        if not sep or not _IDENT.match(key):
            raise BuildError(f"--params: {token!r} is not name=value; write e.g. "
                             "--params \"seeds=5 epochs=30\"")
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            raise BuildError(f"--params: cannot read the value of {key} ({raw!r}) as YAML; "
                             "quote it, e.g. name='a b'") from None
        if key in params:
            raise BuildError(f"--params: {key} is given twice; give it once")
        params[key] = value
    return params


def notebook_parameters(path: Path) -> dict[str, Any]:
    """The names and defaults of a notebook's ``parameters`` cell (``papermill.inspect_notebook``)."""
    import papermill

    try:
        inspected = papermill.inspect_notebook(str(path))
    except Exception as exc:  # papermill raises plain exceptions for unreadable notebooks
        raise BuildError(f"{path}: cannot read the notebook's parameters ({exc})") from None
    return {name: info.get("default") for name, info in inspected.items()}


def validate_params(page: Page, params: Mapping[str, Any], accepted: Iterable[str]) -> None:
    """Raise :class:`BuildError` naming the accepted parameters if ``params`` has others."""
    accepted = list(accepted)
    unknown = [k for k in params if k not in accepted]
    if unknown:
        listing = ", ".join(accepted) if accepted else "(none: the notebook has no parameters cell)"
        raise BuildError(f"chapter {page.name} has no parameter(s) {', '.join(unknown)}; "
                         f"it accepts: {listing}")


def resolved_parameters(profile: str, params: Mapping[str, Any],
                        accepted: Iterable[str]) -> dict[str, Any]:
    """What papermill injects: ``profile`` (when the notebook takes it) plus ``params``."""
    accepted = set(accepted)
    resolved: dict[str, Any] = {}
    if "profile" in accepted:
        resolved["profile"] = profile
    resolved.update(params)
    return resolved


# --------------------------------------------------------------------------- cache key


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def notebook_source_hash(path: Path) -> str:
    """SHA-256 of a notebook's cells: type, source and tags; outputs and counts ignored."""
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BuildError(f"{path}: not a readable notebook ({exc}); fix or restore it") from None
    cells = []
    for cell in nb.get("cells", []):
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(source)
        tags = sorted((cell.get("metadata") or {}).get("tags") or [])
        cells.append({"type": cell.get("cell_type"), "source": source, "tags": tags})
    return _sha256(canonical_json(cells).encode())


def package_source_hash(package_dir: Path = PACKAGE_DIR) -> str:
    """SHA-256 over the relative path and bytes of every ``*.py`` under the package."""
    digest = hashlib.sha256()
    files = sorted(p for p in package_dir.rglob("*.py") if "__pycache__" not in p.parts)
    for path in files:
        digest.update(path.relative_to(package_dir).as_posix().encode() + b"\0")
        digest.update(_sha256(path.read_bytes()).encode() + b"\0")
    return digest.hexdigest()


def file_hash(path: Path) -> str:
    """SHA-256 of a file, or ``"missing"``."""
    return _sha256(path.read_bytes()) if path.is_file() else "missing"


def configs_fingerprint(profile: str) -> dict[str, str]:
    """For every experiment under ``configs/``: a hash of its config resolved with ``profile``.

    The config's own :meth:`~cifarkit.config.ExperimentConfig.content_hash` leaves out
    ``seeds``, ``description`` and ``profile`` (they do not change one run), but chapters
    loop over seeds and print descriptions, so those are hashed too. ``data.source`` is
    left out: the data component covers the data by content.
    """
    from cifarkit.config import available, load_config

    result = {}
    for name in available("experiments"):
        cfg = load_config(name, profile)
        extra = {"seeds": cfg.seeds, "description": cfg.description}
        result[name] = _sha256(f"{cfg.content_hash()}:{canonical_json(extra)}".encode())
    return result


def data_hash(source: str | None) -> str:
    """Content hash of the data the chapters will load (fast when the decoded cache is warm)."""
    from cifarkit.data import load_cifar10

    return str(load_cifar10(source).source_hash)


def shared_components(profile: str, data_source: str | None) -> dict[str, Any]:
    """The components that are the same for every chapter (computed once per build)."""
    t0 = time.perf_counter()
    comps = {
        "cifarkit": package_source_hash(),
        "configs": configs_fingerprint(profile),
        "data": data_hash(data_source),
        "lock": file_hash(project_root() / "requirements.lock"),
    }
    log.debug("shared cache-key components in %.1f s", time.perf_counter() - t0)
    return comps


def _cifarkit_metadata(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text(encoding="utf-8")).get("metadata") or {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    found = meta.get("cifarkit") or {}
    return found if isinstance(found, dict) else {}


def lists_runs(path: Path) -> bool:
    """A chapter that lists the run store (the reproducibility appendix) says so in its
    notebook metadata, ``{"cifarkit": {"lists_runs": true}}``; its cache key then covers
    the run store, so a new run re-executes it."""
    return bool(_cifarkit_metadata(path).get("lists_runs"))


def reads_benchmarks(path: Path) -> bool:
    """A chapter that shows benchmark results (``{"cifarkit": {"reads_benchmarks": true}}``)
    gets the time-to-accuracy and throughput JSON files in its cache key, so a new measurement
    re-executes it."""
    return bool(_cifarkit_metadata(path).get("reads_benchmarks"))


def benchmarks_hash() -> str:
    """SHA-256 over the names and contents of the time-to-accuracy and throughput results."""
    from cifarkit.bench import THROUGHPUT_GLOB
    from cifarkit.bench_tta import RESULT_GLOB
    from cifarkit.paths import artifacts_dir

    bench_dir, entries = artifacts_dir() / "bench", []
    for path in sorted([*bench_dir.glob(RESULT_GLOB), *bench_dir.glob(THROUGHPUT_GLOB)]):
        try:
            entries.append([path.name, _sha256(path.read_bytes())])
        except OSError:
            continue
    return _sha256(canonical_json(entries).encode())


def execution_order(chapters: Sequence[Page]) -> list[Page]:
    """Toc order, except that chapters which read the other chapters' runs (notebook
    metadata ``{"cifarkit": {"execute_last": true}}``, e.g. the introduction's findings,
    or ``lists_runs``) execute after all the others."""
    def last(page: Page) -> bool:
        meta = _cifarkit_metadata(page.source)
        return bool(meta.get("execute_last") or meta.get("lists_runs"))

    return sorted(chapters, key=last)  # stable: toc order within each group


def runs_index_hash() -> str:
    """SHA-256 of the complete runs' folder names and status files: changes when any run
    is added, finished or removed."""
    from cifarkit.runs import runs_root

    entries = []
    root = runs_root()
    if root.is_dir():
        for status in sorted(root.glob("*/status.json")):
            try:
                entries.append([status.parent.name, _sha256(status.read_bytes())])
            except OSError:
                continue
    return _sha256(canonical_json(entries).encode())


def chapter_components(page: Page, parameters: Mapping[str, Any],
                       shared: Mapping[str, Any]) -> dict[str, Any]:
    components = {
        "notebook": notebook_source_hash(page.source),
        "cifarkit": shared["cifarkit"],
        "parameters": dict(parameters),
        "configs": shared["configs"],
        "data": shared["data"],
        "lock": shared["lock"],
    }
    if lists_runs(page.source):
        components["runs"] = runs_index_hash()
    if reads_benchmarks(page.source):
        components["benchmarks"] = benchmarks_hash()
    return components


def cache_key(components: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of the components (and the key-format version)."""
    return _sha256(canonical_json({"version": KEY_VERSION, "components": components}).encode())


def stale_reasons(previous: Mapping[str, Any] | None, components: Mapping[str, Any]) -> list[str]:
    """Why a chapter must run: the reason of every component that differs from ``previous``.

    ``previous`` is the stored key record (``{"key": ..., "components": {...}}``) or None.
    Returns ``[]`` when the cached execution is fresh.
    """
    if not previous or not isinstance(previous.get("components"), Mapping):
        return [NEVER_EXECUTED]
    old = previous["components"]
    reasons = [text for name, text in COMPONENTS.items() if old.get(name) != components.get(name)]
    if not reasons and previous.get("key") != cache_key(components):
        reasons.append("cache format changed")
    return reasons


# --------------------------------------------------------------------------- executed-notebook store


@dataclasses.dataclass(frozen=True)
class Store:
    """Where executed notebooks of one profile live."""

    base: Path  # artifacts/book
    profile: str

    @property
    def executed_dir(self) -> Path:
        return self.base / "executed" / self.profile

    @property
    def failed_dir(self) -> Path:
        return self.base / "failed" / self.profile

    @property
    def site_src(self) -> Path:
        return self.base / "site-src" / self.profile

    @property
    def lock_path(self) -> Path:
        return self.base / ".lock"

    @property
    def stand_in_dir(self) -> Path:
        return self.base / "stand-in" / self.profile

    def notebook(self, page: Page) -> Path:
        return self.executed_dir / f"{page.docname}.ipynb"

    def key_file(self, page: Page) -> Path:
        return self.executed_dir / f"{page.docname}.key.json"

    def failed(self, page: Page) -> Path:
        return self.failed_dir / f"{page.docname}.ipynb"

    def read_record(self, page: Page) -> tuple[dict[str, Any] | None, str | None]:
        """``(record, problem)``: the stored key record if it vouches for the stored notebook,
        else None and why (None when there simply is no key file)."""
        key_file, nb = self.key_file(page), self.notebook(page)
        if not key_file.is_file():
            return None, None
        try:
            record = json.loads(key_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None, "key file unreadable"
        if not isinstance(record, dict):
            return None, "key file unreadable"
        if not nb.is_file():
            return None, "executed notebook missing"
        if record.get("notebook_sha256") != file_hash(nb):
            return None, "executed notebook modified"
        return record, None


def status_of(store: Store, page: Page, components: Mapping[str, Any]) -> tuple[bool, list[str]]:
    """``(fresh, reasons)`` for a chapter given its current components."""
    record, problem = store.read_record(page)
    if problem:
        return False, [problem]
    reasons = stale_reasons(record, components)
    return (not reasons), reasons


# --------------------------------------------------------------------------- execution


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


def _one_line(text: Any, limit: int = 300) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def execute_chapter(page: Page, parameters: Mapping[str, Any], store: Store,
                    record_extra: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None,
                    progress: bool | dict[str, Any] | None = None) -> Path:
    """Run one chapter with papermill; on success move it into the store and write its key.

    ``record_extra`` (the key record) may be a function, called after the execution: a
    chapter whose key covers the run store and that trains runs itself is keyed by the
    store as it left it, so the next build finds it cached.

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
            str(page.source), str(tmp),
            parameters=dict(parameters),
            kernel_name=KERNEL_NAME,
            cwd=str(page.source.parent),
            log_output=False,
            progress_bar=_progress_option() if progress is None else progress,
            # nbclient option: quiet the kernel's own log lines (TCP notice, shutdown
            # interrupt) on our stderr; cell errors still come back through papermill.
            extra_arguments=["--IPKernelApp.log_level=ERROR"],
        )
    except PapermillExecutionError as exc:
        failed = _keep_failed(tmp, store.failed(page))
        index = _source_cell_index(failed, exc.cell_index) if failed else exc.cell_index
        raise ChapterFailed(
            f"chapter {page.name} ({page.relpath}) failed in cell {index}: "
            f"{exc.ename}: {_one_line(exc.evalue)} (executed notebook kept at {failed})",
            failed,
        ) from None
    except BaseException as exc:
        failed = _keep_failed(tmp, store.failed(page))
        if isinstance(exc, Exception) and not isinstance(exc, CifarkitError):
            raise ChapterFailed(
                f"chapter {page.name} ({page.relpath}) could not run: "
                f"{type(exc).__name__}: {_one_line(exc)}"
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
    write_json(store.key_file(page), {
        **((record_extra() if callable(record_extra) else record_extra) or {}),
        "notebook_sha256": file_hash(final),
        "executed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "seconds": round(seconds, 2),
    })
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


# --------------------------------------------------------------------------- preflight


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
            problems.append("data: CIFARKIT_DATA is unset and the CIFAR-10 download host is "
                            "unreachable; set CIFARKIT_DATA=/path/to/cifar10-jpeg.tgz")
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        kernels = KernelSpecManager().find_kernel_specs()
    except Exception as exc:  # a broken Jupyter install is reported, not raised
        problems.append(f"kernel: cannot list Jupyter kernels ({_one_line(exc)}); run `make venv`")
    else:
        if KERNEL_NAME not in kernels:
            problems.append(f"kernel: the Jupyter kernel {KERNEL_NAME!r} is not installed "
                            f"(found: {', '.join(sorted(kernels)) or 'none'}); run `make venv`")
    if _jupyter_book_command() is None:
        problems.append("jupyter-book: not installed in this environment; run `make venv`")
    where = _existing_ancestor(artifacts_dir())
    free = shutil.disk_usage(where).free
    if free < min_free_bytes:
        problems.append(f"disk: only {free / 1024**3:.1f} GB free under {where}, need "
                        f"{min_free_bytes / 1024**3:.0f} GB; free some space or set "
                        "CIFARKIT_ARTIFACTS to a larger disk")
    return source, problems


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def _jupyter_book_command() -> list[str] | None:
    exe = Path(sys.executable).parent / "jupyter-book"
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("jupyter-book")
    return [found] if found else None


# --------------------------------------------------------------------------- site


def _notebook_text(nb: Mapping[str, Any]) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def presentable_notebook(data: bytes) -> bytes:
    """An executed notebook as the site shows it: the ``parameters`` cell (the defaults,
    not what ran) is removed and papermill's ``injected-parameters`` cell (what ran) is
    collapsed; nothing else changes."""
    nb = json.loads(data)
    for cell in nb.get("cells", []):
        tags = (cell.setdefault("metadata", {})).setdefault("tags", [])
        extra = ("remove-cell" if "parameters" in tags
                 else "hide-input" if "injected-parameters" in tags else None)
        if extra and extra not in tags:
            tags.append(extra)
    return _notebook_text(nb).encode()


def _sync_file(src: Path, dst: Path) -> bool:
    """Copy ``src`` to ``dst`` unless the bytes are equal (keeps the mtime Sphinx looks at);
    notebooks pass through :func:`presentable_notebook`."""
    data = src.read_bytes()
    if src.suffix == ".ipynb":
        data = presentable_notebook(data)
    if dst.is_file() and dst.read_bytes() == data:
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, dst)
    return True


_SKIP_DIRS = {"_build", ".ipynb_checkpoints", "__pycache__", ".jupyter_cache"}


def _title_cell_index(cells: Sequence[Mapping[str, Any]]) -> int | None:
    for i, cell in enumerate(cells):
        if cell.get("cell_type") == "markdown":
            text = "".join(cell.get("source", ""))
            return i if text.lstrip().startswith("# ") else None
    return None


def _note_cell(text: str) -> dict[str, Any]:
    return {"cell_type": "markdown", "metadata": {"tags": ["cifarkit-stand-in-note"]},
            "source": f"```{{note}}\n{text}\n```"}


def notebook_with_note(data: bytes, text: str) -> str:
    """The notebook with a MyST note right under its title (or first, if it has none)."""
    nb = json.loads(data)
    cells = nb.setdefault("cells", [])
    title = _title_cell_index(cells)
    cells.insert(0 if title is None else title + 1, _note_cell(text))
    return _notebook_text(nb)


def stand_in_notebook(source: Path, text: str) -> str:
    """A page for a chapter never executed under the profile: its title and a note, no code
    (the site shows executed chapters only; a source notebook would look like results)."""
    nb = json.loads(source.read_text(encoding="utf-8"))
    cells = nb.get("cells", [])
    title = _title_cell_index(cells)
    heading = ("".join(cells[title]["source"]).lstrip().splitlines()[0] if title is not None
               else f"# {source.stem}")
    stand_in = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": heading},
                          _note_cell(text)],
                "metadata": nb.get("metadata", {}), "nbformat": nb.get("nbformat", 4),
                "nbformat_minor": nb.get("nbformat_minor", 5)}
    return _notebook_text(stand_in)


def write_stand_in(store: Store, page: Page, text: str) -> Path:
    """Write a shown-instead notebook for ``page`` (atomically) and return its path."""
    path = store.stand_in_dir / f"{page.docname}.ipynb"
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")  # notebooks are UTF-8 whatever the locale
    return path


def staging_plan(root: Path, pages: Sequence[Page], store: Store,
                 substitutes: Mapping[str, Path] | None = None) -> dict[str, Path]:
    """``{relative path in the staging tree: file to copy}`` for the site build.

    ``_config.yml``, ``_toc.yml``, ``_static/`` (custom CSS), every markdown page, the
    executed notebook of every chapter, and the other files (images, ``.bib``...) in the
    folders holding pages.
    Source notebooks are never copied: only their executed versions, or the stand-in
    ``substitutes`` gives for a chapter (by toc path) that ``--chapter`` did not execute.
    """
    plan: dict[str, Path] = {"_config.yml": root / "_config.yml", "_toc.yml": root / "_toc.yml"}
    folders = {page.source.parent for page in pages}
    for folder in sorted(folders):
        for path in sorted(folder.rglob("*")):
            rel_parts = path.relative_to(root).parts
            if (not path.is_file() or any(p in _SKIP_DIRS or p.startswith(".") for p in rel_parts)
                    or path.suffix == ".ipynb"):
                continue
            plan[path.relative_to(root).as_posix()] = path
    for page in pages:
        if page.kind == "notebook":
            plan[page.relpath] = (substitutes or {}).get(page.relpath, store.notebook(page))
    for bib in root.glob("*.bib"):
        plan.setdefault(bib.name, bib)
    static = root / "_static"  # custom CSS, which jupyter-book includes from the book root
    if static.is_dir():
        for path in sorted(static.rglob("*")):
            if path.is_file():
                plan.setdefault(path.relative_to(root).as_posix(), path)
    return plan


def assemble_site_source(root: Path, pages: Sequence[Page], store: Store,
                         substitutes: Mapping[str, Path] | None = None) -> Path:
    """Mirror :func:`staging_plan` into ``store.site_src``; remove files no longer planned."""
    staging = store.site_src
    plan = staging_plan(root, pages, store, substitutes)
    staging.mkdir(parents=True, exist_ok=True)
    changed = sum(_sync_file(src, staging / rel) for rel, src in plan.items())
    for path in sorted(staging.rglob("*"), reverse=True):
        rel = path.relative_to(staging).as_posix()
        if path.is_file() and rel not in plan:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    log.info("site source: %d files in %s (%d updated)", len(plan), staging, changed)
    return staging


def build_site(staging: Path, output: Path, *, strict: bool = True, full: bool = False) -> Path:
    """``jupyter-book build`` the staging tree into ``output/_build/html``; raise on failure."""
    command = _jupyter_book_command()
    if command is None:
        raise BuildError("jupyter-book is not installed in this environment; run `make venv`")
    args = [*command, "build", str(staging), "--path-output", str(output), "--builder", "html"]
    if strict:
        args += ["-W", "--keep-going"]
    if full:
        args.append("--all")
    output.mkdir(parents=True, exist_ok=True)
    log_file = staging.parent / f"jupyter-book-{staging.name}.log"
    log.info("building the site: %s", " ".join(shlex.quote(a) for a in args))
    started = time.perf_counter()
    with open(log_file, "w", encoding="utf-8") as fh:
        result = subprocess.run(args, stdout=fh, stderr=subprocess.STDOUT, cwd=output,
                                env={**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"})
    text = _ANSI.sub("", log_file.read_text(encoding="utf-8", errors="replace"))
    problems = [line for line in text.splitlines() if re.search(r"WARNING|ERROR|Error|Traceback", line)]
    if result.returncode != 0:
        for line in problems[:20]:
            log.error("jupyter-book: %s", line.strip())
        raise SiteBuildFailed(f"jupyter-book build failed (exit {result.returncode}); "
                              f"{len(problems)} warning/error line(s) above, full log: {log_file}")
    for line in problems[:20]:
        log.warning("jupyter-book: %s", line.strip())
    index = output / "_build" / "html" / "index.html"
    log.info("site built in %.1f s: %s", time.perf_counter() - started, index)
    return index


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class SiteBuildFailed(Exception):
    """jupyter-book exited non-zero (a warning with -W, a broken page ...)."""


def _site_stamp(output: Path) -> Path:
    return output / "_build" / ".cifarkit-site.json"


# --------------------------------------------------------------------------- summary


@dataclasses.dataclass
class ChapterResult:
    name: str
    status: str  # cached | executed | failed | not run | kept (stale) | not executed
    seconds: float = 0.0
    reason: str = ""


def format_summary(results: Sequence[ChapterResult]) -> str:
    """A plain-text table: chapter, status, wall time, reason."""
    header = ("chapter", "status", "time", "reason")
    rows = [(r.name, r.status, f"{r.seconds:.1f} s", r.reason) for r in results]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(4)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(f"{cell:<{w}}" for cell, w in zip(cells, widths, strict=True))

    out = [line(header), line(["-" * w for w in widths])]
    out += [line(row) for row in rows]
    return "\n".join(s.rstrip() for s in out)


# --------------------------------------------------------------------------- the build


@dataclasses.dataclass
class Options:
    profile: str
    chapter: str | None = None
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    root: Path = dataclasses.field(default_factory=project_root)
    output: Path = dataclasses.field(default_factory=project_root)
    strict: bool = True
    expect_cached: bool = False


@contextlib.contextmanager
def build_lock(path: Path) -> Iterator[None]:
    """Hold an flock on ``path`` for the build; wait (and say so) while another build has it."""
    from filelock import FileLock, Timeout

    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("another book build holds %s; waiting for it to finish", path)
        started = time.perf_counter()
        lock.acquire()
        log.info("got the book lock after %.0f s", time.perf_counter() - started)
    try:
        yield
    finally:
        lock.release()


def run(opts: Options) -> list[ChapterResult]:
    """The whole build (see the module docstring). Raises :class:`ChapterFailed`,
    :class:`SiteBuildFailed` or :class:`CifarkitError`; returns the per-chapter results."""
    from cifarkit.config import available

    if opts.profile not in available("profiles"):
        raise ConfigError(f"unknown profile {opts.profile!r}; choose one of: "
                          f"{', '.join(available('profiles'))}")
    root = opts.root.resolve()
    pages = read_toc(root)
    chapters = chapters_of(pages)
    target = find_chapter(pages, opts.chapter) if opts.chapter is not None else None
    if opts.params and target is None:
        raise BuildError("--params needs --chapter NAME: parameters go to one chapter")
    if "profile" in opts.params:
        raise BuildError("--params: set the profile with --profile (make PROFILE=...), not --params")

    # Parameters first: a typo should fail before any slow step.
    accepted = {page.docname: list(notebook_parameters(page.source)) for page in chapters}
    if target is not None:
        validate_params(target, opts.params, accepted[target.docname])
    for page in chapters:
        if "profile" not in accepted[page.docname]:
            log.warning("chapter %s has no 'profile' parameter; it cannot follow --profile",
                        page.name)

    source, problems = preflight()
    if problems:
        raise BuildError("preflight failed:\n  " + "\n  ".join(problems))
    # The kernel gets absolute locations, whatever its working directory.
    if source is not None:
        os.environ["CIFARKIT_DATA"] = str(Path(source).resolve())
    os.environ["CIFARKIT_ARTIFACTS"] = str(artifacts_dir())

    store = Store(artifacts_dir() / "book", opts.profile)
    results: list[ChapterResult] = []
    with build_lock(store.lock_path):
        remove_stale_temps(store)
        log.info("profile %s: %d chapter(s): %s", opts.profile, len(chapters),
                 ", ".join(p.name for p in chapters) or "(none)")
        log.info("hashing sources, configs and data for the cache keys ...")
        shared = shared_components(opts.profile, source)
        ordered = execution_order(chapters)
        substitutes: dict[str, Path] = {}
        for i, page in enumerate(ordered):
            params = opts.params if page is target else {}
            parameters = resolved_parameters(opts.profile, params, accepted[page.docname])
            components = chapter_components(page, parameters, shared)
            fresh, reasons = status_of(store, page, components)
            if page is target:
                reasons = ["requested with --chapter"] + ([] if fresh else reasons)
                fresh = False
            if not fresh and opts.expect_cached:
                raise BuildError(f"chapter {page.name} is not cached ({'; '.join(reasons)}); "
                                 "run the build without --expect-cached to execute it")
            if fresh:
                log.info("[%d/%d] %s: cached", i + 1, len(chapters), page.name)
                results.append(ChapterResult(page.name, "cached", 0.0, "up to date"))
                continue
            if target is not None and page is not target:
                result, substitutes[page.relpath] = _shown_without_executing(
                    page, store, opts.profile, reasons)
                log.info("[%d/%d] %s: %s (--chapter %s executes only that one): %s", i + 1,
                         len(chapters), page.name, result.status, target.name, result.reason)
                results.append(result)
                continue
            reason = "; ".join(reasons)
            log.info("[%d/%d] %s: executing (%s) with %s", i + 1, len(chapters), page.name,
                     reason, canonical_json(parameters))
            started = time.perf_counter()
            def record(page: Page = page, parameters: Mapping[str, Any] = parameters) -> dict[str, Any]:
                # recomputed after execution: the chapter may itself have added runs
                after = chapter_components(page, parameters, shared)
                return {"key": cache_key(after), "components": after,
                        "chapter": page.name, "source": page.relpath}

            try:
                execute_chapter(page, parameters, store, record_extra=record)
            except ChapterFailed:
                results.append(ChapterResult(page.name, "failed", time.perf_counter() - started,
                                             reason))
                results += [ChapterResult(p.name, "not run") for p in ordered[i + 1:]]
                _emit_summary(results)
                raise
            seconds = time.perf_counter() - started
            log.info("[%d/%d] %s: executed in %.1f s", i + 1, len(chapters), page.name, seconds)
            results.append(ChapterResult(page.name, "executed", seconds, reason))

        staging = assemble_site_source(root, pages, store, substitutes)
        stamp = _site_stamp(opts.output)
        # Sphinx re-reads only changed pages; autodoc pages change with cifarkit's source
        # (not their own file), so rebuild everything when the code, the profile or the
        # page list changed.
        stamp_data = {"cifarkit": shared["cifarkit"], "staging": str(staging),
                      "pages": [p.relpath for p in pages]}
        try:
            full = json.loads(stamp.read_text()) != stamp_data
        except (OSError, ValueError):
            full = True
        stamp.unlink(missing_ok=True)
        try:
            build_site(staging, opts.output, strict=opts.strict, full=full)
        except SiteBuildFailed:
            _emit_summary(results)
            raise
        write_json(stamp, stamp_data)
    _emit_summary(results)
    return results


def _shown_without_executing(page: Page, store: Store, profile: str,
                             reasons: Sequence[str]) -> tuple[ChapterResult, Path]:
    """For ``--chapter``: the page to show for another chapter that is not fresh, without
    executing it (re-executing one chapter must not run, and train, all the others)."""
    why = "; ".join(reasons)
    whole_book = f"`make book PROFILE={profile}` brings every chapter up to date"
    record, problem = store.read_record(page)
    if record is not None and problem is None:
        note = (f"This page is from an earlier build ({why}). Only another chapter was "
                f"re-executed; {whole_book}.")
        data = notebook_with_note(store.notebook(page).read_bytes(), note)
        return ChapterResult(page.name, "kept (stale)", 0.0, why), write_stand_in(store, page, data)
    note = (f"This chapter has not been executed under the `{profile}` profile yet. "
            f"`make chapter NAME={page.name} PROFILE={profile}` runs it alone; {whole_book}.")
    data = stand_in_notebook(page.source, note)
    return ChapterResult(page.name, "not executed", 0.0, why), write_stand_in(store, page, data)


def _emit_summary(results: Sequence[ChapterResult]) -> None:
    if results:
        sys.stdout.write("\n" + format_summary(results) + "\n")
        sys.stdout.flush()


# --------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m cifarkit.bookbuild",
        description="Execute the report's chapters (cached by content) and build the site.",
    )
    p.add_argument("--profile", default="cpu", help="config profile: smoke, cpu or full")
    p.add_argument("--chapter", help="re-execute only this chapter (name of its notebook)")
    p.add_argument("--params", default="",
                   help='parameters for --chapter, e.g. "seeds=5 epochs=30" (YAML values)')
    p.add_argument("--root", type=Path, default=None,
                   help="book root holding _config.yml and _toc.yml (default: the checkout)")
    p.add_argument("--output", type=Path, default=None,
                   help="folder that receives _build/html (default: the checkout)")
    p.add_argument("--no-strict", dest="strict", action="store_false",
                   help="do not turn Sphinx warnings into errors")
    p.add_argument("--expect-cached", action="store_true",
                   help="fail (exit 2) instead of executing when a chapter is not cached (checks a warm cache)")
    p.add_argument("--debug", action="store_true", help="debug logging and full tracebacks")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(message)s", datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    if not args.debug:
        for noisy in ("papermill", "traitlets", "blib2to3", "matplotlib"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        params = parse_params(args.params)
        opts = Options(profile=args.profile, chapter=args.chapter, params=params,
                       root=(args.root or project_root()).resolve(),
                       output=(args.output or project_root()).resolve(), strict=args.strict,
                       expect_cached=args.expect_cached)
        run(opts)
    except CifarkitError as exc:
        if args.debug:
            log.exception("failed")
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except ChapterFailed as exc:
        if args.debug and exc.__cause__ is not None:
            log.exception("failed")
        sys.stderr.write(f"error: {exc}\n")
        return 1
    except SiteBuildFailed as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("interrupted; executed chapters so far are kept, the rest re-run next time\n")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
