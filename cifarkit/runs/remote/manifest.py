"""The run-folder contract as the remote sees it: manifests, their validation and limits.

A manifest (``runs/<run-folder-name>.json`` on the remote) lists each relative path of a
run with its sha256 and size, and the run's status record. :meth:`Manifest.parse` never
trusts it: a run name that is not ``<experiment>-<12 hex>``, a path outside the
run-folder contract (:data:`RUN_FILES`, ``snapshots/epoch-NNN.keras``) or a size over the
limits (:data:`MAX_FILE_BYTES`, :data:`MAX_RUN_BYTES`, :data:`MAX_MANIFEST_BYTES`) refuses
the run with one line. :func:`local_runs` and :func:`local_manifest` describe the local
side: which runs a push sends, and what each of them holds.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from cifarkit.core.errors import CifarkitError
from cifarkit.core.hashing import hash_file
from cifarkit.runs.run import COMPLETE, Run, runs_root

log = logging.getLogger(__name__)

FORMAT = "cifarkit-run/1"

#: The files of the run-folder contract (:mod:`cifarkit.runs.run`); snapshots match
#: ``snapshots/epoch-NNN.keras``. Nothing else is pushed, and a manifest naming anything
#: else is refused.
RUN_FILES = frozenset(
    {
        "config.yaml",
        "env.json",
        "history.csv",
        "history.json",
        "model.keras",
        "predictions.npz",
        "metrics.json",
        "status.json",
    }
)
_SNAPSHOT = re.compile(r"snapshots/epoch-[0-9]{3}\.keras")
_RUN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,150}-[0-9a-f]{12}")
_SHA256 = re.compile(r"[0-9a-f]{64}")

#: Limits a manifest must keep: far above any run cifarkit writes (a transfer model is
#: about 100 MB), low enough that a hostile manifest cannot fill the disk or memory.
MAX_FILE_BYTES = 4 << 30
MAX_RUN_BYTES = 16 << 30
MAX_MANIFEST_BYTES = 1 << 20
MAX_FILES = 1010  # the contract's 8 files and up to 999 snapshots


@dataclass(frozen=True)
class FileEntry:
    """One file of a run: its content hash and size in bytes."""

    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """A run as the remote describes it: relative path -> (sha256, size), and its status record."""

    run: str
    files: Mapping[str, FileEntry]
    status: Mapping[str, Any]

    @property
    def total_bytes(self) -> int:
        return sum(entry.size for entry in self.files.values())

    def to_bytes(self) -> bytes:
        """Canonical JSON: the same run always gives the same bytes, so two pushes agree."""
        record = {
            "format": FORMAT,
            "run": self.run,
            "status": dict(self.status),
            "files": {
                rel: {"sha256": e.sha256, "size": e.size} for rel, e in sorted(self.files.items())
            },
        }
        return (json.dumps(record, indent=1, sort_keys=True, default=str) + "\n").encode()

    @classmethod
    def parse(cls, data: bytes, name: str) -> Manifest:
        """Validate a manifest read from the remote; a one-line :class:`CifarkitError` names the problem.

        Parameters
        ----------
        data : bytes
            The manifest's bytes.
        name : str
            The run folder name the manifest's key gives (``runs/<name>.json``).

        Returns
        -------
        Manifest
            Only when every path is in the run-folder contract and every limit holds.
        """

        def refuse(problem: str) -> CifarkitError:
            return CifarkitError(
                f"remote run {name!r} refused: {problem}; remove runs/{name}.json from "
                "the remote or push the run again from a machine that has it"
            )

        check_run_name(name)
        if len(data) > MAX_MANIFEST_BYTES:
            raise refuse(
                f"its manifest is {len(data)} bytes, over the {MAX_MANIFEST_BYTES}-byte limit"
            )
        try:
            record = json.loads(data.decode())
        except (UnicodeDecodeError, ValueError) as exc:
            raise refuse(f"its manifest is not JSON ({exc})") from None
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            raise refuse(f"its manifest is not a {FORMAT} manifest")
        if record.get("run") != name:
            raise refuse(f"its manifest names the run {record.get('run')!r}")
        status, files = record.get("status"), record.get("files")
        if not isinstance(status, dict) or status.get("status") != COMPLETE:
            raise refuse("its status record does not say complete")
        if not isinstance(files, dict) or not files:
            raise refuse("its manifest lists no files")
        if len(files) > MAX_FILES:
            raise refuse(f"its manifest lists {len(files)} files, over the limit of {MAX_FILES}")
        entries: dict[str, FileEntry] = {}
        for rel, entry in files.items():
            problem = path_problem(rel)
            if problem:
                raise refuse(f"path {rel!r} {problem}")
            if (
                not isinstance(entry, dict)
                or not isinstance(entry.get("sha256"), str)
                or not _SHA256.fullmatch(entry["sha256"])
            ):
                raise refuse(f"{rel} has no valid sha256")
            size = entry.get("size")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise refuse(f"{rel} has no valid size")
            if size > MAX_FILE_BYTES:
                raise refuse(f"{rel} is {size} bytes, over the per-file limit of {MAX_FILE_BYTES}")
            entries[rel] = FileEntry(entry["sha256"], size)
        if "status.json" not in entries:
            raise refuse("its manifest has no status.json")
        manifest = cls(name, entries, status)
        if manifest.total_bytes > MAX_RUN_BYTES:
            raise refuse(
                f"its files add up to {manifest.total_bytes} bytes, over the per-run limit of "
                f"{MAX_RUN_BYTES}"
            )
        return manifest


def check_run_name(name: str) -> None:
    """Raise a one-line :class:`CifarkitError` unless ``name`` looks like ``<experiment>-<12 hex>``."""
    if not isinstance(name, str) or not _RUN_NAME.fullmatch(name):
        raise CifarkitError(
            f"run {name!r} refused: a run folder name is <experiment>-<12 hex digits> "
            "(e.g. resnet20-0123456789ab); `cifarkit runs ls` and `cifarkit remote ls` "
            "list the runs"
        )


def path_problem(rel: Any) -> str | None:
    """Why ``rel`` may not be a file of a run folder, or None when it is in the contract."""
    if not isinstance(rel, str) or not rel:
        return "is not a path"
    pure = PurePosixPath(rel)
    if rel.startswith("/") or pure.is_absolute() or re.match(r"[A-Za-z]:", rel):
        return "is absolute"
    if ".." in pure.parts or ".." in rel.replace("\\", "/").split("/"):
        return "contains '..'"
    if rel in RUN_FILES or _SNAPSHOT.fullmatch(rel):
        return None
    return (
        "is not a file of the run-folder contract ("
        + ", ".join(sorted(RUN_FILES))
        + ", snapshots/epoch-NNN.keras)"
    )


def local_manifest(run: Run) -> tuple[Manifest, dict[str, Path]]:
    """The manifest of a complete local run and the path of each of its files.

    Files outside the run-folder contract (a checkpoint a kill left behind, temp files)
    are not part of the run and are left out.
    """
    if not run.complete:
        raise CifarkitError(
            f"run {run.path.name} is {run.status} in {run.path.parent}, not complete; "
            "only complete runs are pushed (train it first)"
        )
    paths: dict[str, Path] = {}
    for path in sorted(run.path.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        rel = path.relative_to(run.path).as_posix()
        if path_problem(rel) is None:
            paths[rel] = path
        elif not rel.startswith("checkpoint/"):
            log.debug("not pushed: %s/%s (outside the run-folder contract)", run.path.name, rel)
    files = {rel: FileEntry(hash_file(path), path.stat().st_size) for rel, path in paths.items()}
    return Manifest(run.path.name, files, run.status_record()), paths


def pack_run(run: Run) -> tuple[bytes, dict[str, bytes]]:
    """A complete local run in memory as a store holds it: its manifest's bytes and its
    objects by sha256 (each distinct object once), for a transport that is not a store
    (a Ray task's return value). :meth:`RemoteStore.receive` is the other end."""
    manifest, paths = local_manifest(run)
    objects: dict[str, bytes] = {}
    for rel, entry in manifest.files.items():
        if entry.sha256 not in objects:
            objects[entry.sha256] = paths[rel].read_bytes()
    return manifest.to_bytes(), objects


def local_runs(names: Iterable[str] | None, refused: list[tuple[str, str]]) -> list[Run]:
    """The complete local runs to push: ``names`` (run folder names or paths), default every one.

    A named run that is not complete locally, or whose name is no run folder name, is
    appended to ``refused`` as (name, one line saying why) and left out.
    """
    root = runs_root()
    if names is None:
        folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        runs = []
        for folder in folders:
            if not _RUN_NAME.fullmatch(folder.name):
                continue  # staging and other folders that are no run
            run = Run(folder)
            if run.complete:
                runs.append(run)
            else:
                log.debug("not pushed: %s is %s", folder.name, run.status)
        return runs
    runs = []
    for given in names:
        name = Path(given).name
        try:
            check_run_name(name)
        except CifarkitError as exc:
            refused.append((name, str(exc)))
            continue
        run = Run(root / name)
        if not run.complete:
            refused.append(
                (
                    name,
                    f"run {name} is {run.status} in {root}, not complete; only "
                    "complete runs are pushed (train it first)",
                )
            )
            continue
        runs.append(run)
    return runs
