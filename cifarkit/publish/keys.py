"""Chapter cache keys (what an executed chapter depends on) and the executed-notebook store.

A chapter's key is SHA-256 over its *components* (:data:`COMPONENTS`); the store keeps each
executed notebook under ``artifacts/book/executed/<profile>/`` with a key file written last.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cifarkit.core.paths import PACKAGE_DIR, artifacts_dir, project_root
from cifarkit.publish.toc import BuildError, Page

log = logging.getLogger(__name__)

KEY_VERSION = 1

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

    The config's own :meth:`~cifarkit.core.config.ExperimentConfig.content_hash` leaves out
    ``seeds``, ``description`` and ``profile`` (they do not change one run), but chapters
    loop over seeds and print descriptions, so those are hashed too. ``data.source`` is
    left out: the data component covers the data by content.
    """
    from cifarkit.core.config import available, load_config

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
    """SHA-256 over the names and contents of the kept benchmark results: time to accuracy,
    throughput, the engine comparison and the precision comparison."""
    from cifarkit.bench.engine import ENGINE_GLOB
    from cifarkit.bench.precision import PRECISION_GLOB
    from cifarkit.bench.throughput import THROUGHPUT_GLOB
    from cifarkit.bench.time_to_accuracy import RESULT_GLOB

    bench_dir, entries = artifacts_dir() / "bench", []
    globs = (RESULT_GLOB, THROUGHPUT_GLOB, ENGINE_GLOB, PRECISION_GLOB)
    for path in sorted(path for glob in globs for path in bench_dir.glob(glob)):
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


def chapter_components(
    page: Page, parameters: Mapping[str, Any], shared: Mapping[str, Any]
) -> dict[str, Any]:
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
