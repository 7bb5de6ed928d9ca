"""Push complete runs to the remote, pull them back verified; :class:`RemoteStore`.

Push sends only the objects the remote lacks (one listing, then uploads with a tqdm bar
in bytes with ETA) and writes each run's manifest **last**: a run without its manifest
does not exist remotely, so a push killed at any point leaves either no run or a whole one.

Pull never trusts the remote (:meth:`~cifarkit.runs.remote.manifest.Manifest.parse`). The
files are downloaded into a staging folder under the runs root, each checked against its
size and sha256 while it is read, and only then renamed into the store under the run's
training lock. A run that is complete locally is never overwritten; a missing, truncated or
corrupt object refuses the run, names the object and leaves the local store as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cifarkit.core.atomic import fsync_dir
from cifarkit.core.errors import CifarkitError
from cifarkit.runs.remote.access import (
    CHUNK,
    ENV_URL,
    RemoteUnavailable,
    StoreAccess,
    configured_url,
)
from cifarkit.runs.remote.manifest import (
    FileEntry,
    Manifest,
    check_run_name,
    local_manifest,
    local_runs,
)
from cifarkit.runs.run import Run, runs_root

log = logging.getLogger(__name__)

_STAGING = ".staging"
#: The keys the checkpoint mirror writes besides objects and manifests.
_CHECKPOINT_KEY = re.compile(
    r"checkpoints/[A-Za-z0-9_][A-Za-z0-9_.-]{0,150}-[0-9a-f]{12}/"
    r"(latest\.json|epoch-\d{3}/(model\.keras|state\.json))"
)


# ---------------------------------------------------------------------------- reports
@dataclass
class TransferReport:
    """What a push or pull did: runs moved, skipped (and why), refused (one line each), bytes, time."""

    action: str
    url: str
    done: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    files: int = 0  # push: objects uploaded (each content once); pull: files received
    bytes: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        mb_s = self.bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0
        verb, where, what = {
            "push": ("pushed", "to", "new object(s)"),
            "pull": ("pulled", "from", "file(s)"),
        }[self.action]
        return (
            f"{verb} {len(self.done)} run(s) {where} {self.url}: {self.files} {what}, "
            f"{self.bytes / 1e6:.1f} MB in {self.seconds:.1f} s ({mb_s:.1f} MB/s); "
            f"{len(self.skipped)} skipped, {len(self.refused)} refused"
        )


class _Progress:
    """A tqdm bar in bytes with ETA on stderr; hidden when stderr is not a terminal."""

    def __init__(self, total: int, desc: str) -> None:
        from tqdm import tqdm

        self.bar = tqdm(
            total=total,
            desc=desc,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            leave=False,
            disable=None,
            dynamic_ncols=True,
        )

    def update(self, n: int) -> None:
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()


# ---------------------------------------------------------------------------- the store
class RemoteStore(StoreAccess):
    """A content-addressed run store at one fsspec URL: push and pull (see the package docstring).

    Parameters
    ----------
    url : str
        ``s3://bucket/prefix``, ``gs://bucket/prefix``, ``file:///path`` or any fsspec URL.

    Examples
    --------
    >>> store = RemoteStore("file:///tmp/cifarkit-remote")  # doctest: +SKIP
    >>> store.push().summary()  # doctest: +SKIP
    >>> store.pull(["resnet20-0123456789ab"]).done  # doctest: +SKIP
    """

    # ------------------------------------------------------------------ push
    def push(self, names: Iterable[str] | None = None) -> TransferReport:
        """Push complete local runs: missing objects first, each run's manifest last.

        Parameters
        ----------
        names : iterable of str, optional
            Run folder names (or paths to run folders); default every complete local run.

        Returns
        -------
        TransferReport
            Runs pushed, skipped (already on the remote, or the remote holds another copy) and
            refused (not complete locally, bad name), objects and bytes sent, seconds.

        Raises
        ------
        RemoteUnavailable
            The remote is unreachable, has no credentials, denies access or has no bucket.
        """
        report = TransferReport("push", self.url)
        started = time.perf_counter()
        runs = local_runs(names, report.refused)
        if not runs:
            report.seconds = time.perf_counter() - started
            return report
        on_remote = set(self.run_names())
        with self._errors("listing objects"):
            self._ensure_folders()
            stored = self._list(f"{self.root}/objects")
        manifests = self._push_plan(runs, on_remote, report)
        self._upload_missing(manifests, stored, report)
        for manifest, _, exists in manifests:
            if exists:
                report.skipped.append((manifest.run, "already on the remote"))
                continue
            with self._errors(f"writing the manifest of {manifest.run}"):
                self._put_bytes(manifest.to_bytes(), self.manifest_key(manifest.run))
            report.done.append(manifest.run)
            log.info(
                "pushed %s (%d files, %.1f MB)",
                manifest.run,
                len(manifest.files),
                manifest.total_bytes / 1e6,
            )
        report.seconds = time.perf_counter() - started
        return report

    def _push_plan(
        self, runs: list[Run], on_remote: set[str], report: TransferReport
    ) -> list[tuple[Manifest, dict[str, Path], bool]]:
        """Each run to push: its manifest, its files' paths and whether the remote holds it already."""
        manifests = []
        for run in runs:
            try:
                manifest, paths = local_manifest(run)
            except CifarkitError as exc:
                report.refused.append((run.path.name, str(exc)))
                continue
            remote = self._remote_copy(manifest.run) if manifest.run in on_remote else None
            if remote is not None and remote.files != manifest.files:
                # The first complete copy wins, as in the local store: a retrained run has
                # the same key but not always the same bytes (timestamps inside model.keras).
                report.skipped.append(
                    (
                        manifest.run,
                        "the remote already holds a complete copy with other bytes; kept it",
                    )
                )
                continue
            manifests.append((manifest, paths, remote is not None))
        return manifests

    def _upload_missing(
        self,
        manifests: list[tuple[Manifest, dict[str, Path], bool]],
        stored: dict[str, int],
        report: TransferReport,
    ) -> None:
        """Upload each object of ``manifests`` that ``stored`` (sha256 -> size) lacks, once."""
        # Several files (or runs) may share one object: send each missing one once.
        wanted: dict[str, tuple[Path, FileEntry, str]] = {}
        for manifest, paths, _ in manifests:
            for rel, entry in manifest.files.items():
                if stored.get(entry.sha256) != entry.size:
                    wanted.setdefault(entry.sha256, (paths[rel], entry, f"{manifest.run}/{rel}"))
        progress = _Progress(sum(e.size for _, e, _ in wanted.values()), "push") if wanted else None
        try:
            for sha, (path, entry, label) in wanted.items():
                with self._errors(f"uploading {label}"):
                    self._put_file(path, self.object_key(sha), entry, progress)
                report.files += 1
                report.bytes += entry.size
        finally:
            if progress is not None:
                progress.close()

    def _remote_copy(self, name: str) -> Manifest | None:
        """The remote's manifest of ``name``, or None when it has none (or an unusable one)."""
        try:
            return self.read_manifest(name)
        except RemoteUnavailable:
            raise
        except CifarkitError as exc:
            if "is not on the remote" not in str(exc):
                log.warning("replacing the remote's unusable manifest of %s: %s", name, exc)
            return None

    # ------------------------------------------------------------------ packed runs
    def receive(self, manifest: bytes, objects: Mapping[str, bytes]) -> str:
        """Store a run handed over in memory (:func:`~cifarkit.runs.remote.manifest.pack_run`):
        every object checked against the manifest, objects first, the manifest last.

        Parameters
        ----------
        manifest : bytes
            The run's manifest as :meth:`Manifest.to_bytes` writes it.
        objects : mapping of str to bytes
            sha256 -> content, for every object the manifest lists.

        Returns
        -------
        str
            The run's name; :meth:`pull` then brings it into the local store.

        Raises
        ------
        CifarkitError
            The manifest is unusable, or an object is missing or does not match its sha256.
        """
        try:
            name = json.loads(manifest).get("run")
        except (ValueError, AttributeError):
            name = None
        if not isinstance(name, str):
            raise CifarkitError(
                "the packed run's manifest names no run; pack it again with pack_run"
            )
        check_run_name(name)
        parsed = Manifest.parse(manifest, name)
        for rel, entry in parsed.files.items():
            data = objects.get(entry.sha256)
            if (
                data is None
                or len(data) != entry.size
                or hashlib.sha256(data).hexdigest() != entry.sha256
            ):
                raise CifarkitError(
                    f"the packed run {name} has no valid object for {rel} (sha256 "
                    f"{entry.sha256[:12]}...); pack it again with pack_run"
                )
        with self._errors(f"writing the objects of {name}"):
            self._ensure_folders()
            for sha in {e.sha256 for e in parsed.files.values()}:
                self._put_bytes(objects[sha], self.object_key(sha))
        with self._errors(f"writing the manifest of {name}"):
            self._put_bytes(manifest, self.manifest_key(name))
        return name

    def write_key(self, rel: str, data: bytes) -> None:
        """Write ``data`` whole or not at all under ``rel`` (a path below the store's root that
        is neither an object nor a manifest: the checkpoint mirror's pointer)."""
        if not _CHECKPOINT_KEY.fullmatch(rel):
            raise CifarkitError(
                f"rel={rel!r}: only checkpoints/<run>/latest.json and "
                "checkpoints/<run>/epoch-NNN/{model.keras,state.json} may be written"
            )
        with self._errors(f"writing {rel}"):
            self._put_bytes(data, f"{self.root}/{rel}")

    # ------------------------------------------------------------------ pull
    def pull(self, names: Iterable[str] | None = None) -> TransferReport:
        """Pull remote runs into the local store, each verified in full before it is moved in.

        Parameters
        ----------
        names : iterable of str, optional
            Run folder names; default every remote run that is not complete locally.

        Returns
        -------
        TransferReport
            Runs pulled, skipped (complete locally, or being trained here) and refused (one
            line each: hostile manifest, missing, truncated or corrupt object), files, bytes.

        Raises
        ------
        RemoteUnavailable
            The remote is unreachable, has no credentials, denies access, has no bucket, or
            its folder does not exist (an existing empty store pulls nothing).
        """
        report = TransferReport("pull", self.url)
        started = time.perf_counter()
        self.require_exists()
        listed = self.run_names()
        wanted = [Path(n).name for n in names] if names is not None else listed
        root = runs_root()
        _remove_stale_staging(root)
        todo = self._pull_plan(wanted, listed, root, report)
        if todo:
            _check_free_space(root, sum(m.total_bytes for m in todo))
        progress = _Progress(sum(m.total_bytes for m in todo), "pull") if todo else None
        try:
            for manifest in todo:
                try:
                    outcome = self._pull_one(manifest, root, progress)
                except RemoteUnavailable:
                    raise
                except CifarkitError as exc:
                    report.refused.append((manifest.run, str(exc)))
                    continue
                if outcome:
                    report.skipped.append((manifest.run, outcome))
                    continue
                report.done.append(manifest.run)
                report.files += len(manifest.files)
                report.bytes += manifest.total_bytes
                log.info(
                    "pulled %s (%d files, %.1f MB, every sha256 checked)",
                    manifest.run,
                    len(manifest.files),
                    manifest.total_bytes / 1e6,
                )
        finally:
            if progress is not None:
                progress.close()
            with contextlib.suppress(OSError):
                (root / _STAGING).rmdir()  # only when empty: other pulls may be staging
        report.seconds = time.perf_counter() - started
        return report

    def _pull_plan(
        self, wanted: list[str], listed: list[str], root: Path, report: TransferReport
    ) -> list[Manifest]:
        """The validated manifests of the ``wanted`` runs to pull; the others go to skipped or refused."""
        todo: list[Manifest] = []
        for name in wanted:
            try:
                check_run_name(name)
                if Run(root / name).complete:
                    report.skipped.append((name, "already complete locally; not overwritten"))
                    continue
                if name not in listed:
                    raise CifarkitError(
                        f"run {name} is not on the remote {self.url}; `cifarkit remote ls` "
                        "lists the runs it holds"
                    )
                todo.append(self.read_manifest(name))
            except RemoteUnavailable:
                raise
            except CifarkitError as exc:
                report.refused.append((name, str(exc)))
        return todo

    def _pull_one(self, manifest: Manifest, root: Path, progress: _Progress | None) -> str | None:
        """Download, verify, move in; return why the run was skipped, or None once it is in place."""
        from filelock import FileLock, Timeout

        staging = root / _STAGING / f"{manifest.run}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        try:
            staging.mkdir(parents=True)
            for rel, entry in sorted(manifest.files.items()):
                self._fetch(manifest.run, rel, entry, staging / rel, progress)
            for folder in {(staging / rel).parent for rel in manifest.files}:
                fsync_dir(folder)
            staged = Run(staging)
            if not staged.complete:
                raise CifarkitError(
                    f"remote run {manifest.run!r} refused: its status.json does not say "
                    "complete; push it again from a machine that has it"
                )
            run = Run(root / manifest.run)
            lock = FileLock(run.lock_path)
            try:
                lock.acquire(timeout=0)
            except Timeout:
                return f"another process holds {run.lock_path.name} (training it?); pull it again later"
            try:
                if run.complete:
                    return "completed locally meanwhile; not overwritten"
                if run.path.exists():
                    # An unfinished local attempt at the same run (same key): the complete
                    # remote copy supersedes it; nobody trains it, we hold its lock.
                    aside = staging.with_name(staging.name + ".replaced")
                    run.path.rename(aside)
                    log.info(
                        "replaced the %s local copy of %s by the remote's complete one",
                        Run(aside).status,
                        manifest.run,
                    )
                    shutil.rmtree(aside, ignore_errors=True)
                staging.rename(run.path)
                fsync_dir(root)
            finally:
                lock.release()
            return None
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _fetch(
        self, name: str, rel: str, entry: FileEntry, dest: Path, progress: _Progress | None
    ) -> None:
        """Download one object, reading at most its size plus one byte, and check size and sha256."""
        key = f"objects/{entry.sha256}"

        def refuse(problem: str) -> CifarkitError:
            return CifarkitError(
                f"remote run {name!r} refused: object {key} ({rel}) {problem}; the local "
                f"store is unchanged; push {name} again from a machine that has it"
            )

        dest.parent.mkdir(parents=True, exist_ok=True)
        digest, size = hashlib.sha256(), 0
        with self._errors(f"downloading {key} ({name}/{rel})"):
            try:
                with (
                    self.fs.open(self.object_key(entry.sha256), "rb") as src,
                    open(dest, "wb") as out,
                ):
                    while size <= entry.size and (
                        chunk := src.read(min(CHUNK, entry.size + 1 - size))
                    ):
                        digest.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
                        if progress is not None:
                            progress.update(len(chunk))
                    out.flush()
                    os.fsync(out.fileno())
            except FileNotFoundError:
                raise refuse("is missing") from None
        if size < entry.size:
            raise refuse(f"is truncated: {size} of {entry.size} bytes")
        if size > entry.size:
            raise refuse(f"is larger than the {entry.size} bytes its manifest states")
        if digest.hexdigest() != entry.sha256:
            raise refuse(
                f"is corrupt: its bytes hash to {digest.hexdigest()[:12]}..., not its name"
            )


def _remove_stale_staging(root: Path) -> None:
    """Remove staging folders of pulls whose process is gone (a kill leaves them behind)."""
    staging = root / _STAGING
    if not staging.is_dir():
        return
    for folder in staging.iterdir():
        # <run>.<pid>.<hex>, or the same with .replaced: the pid is the second field from the end.
        parts = folder.name.removesuffix(".replaced").rsplit(".", 2)
        pid = int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None
        if pid is not None and pid != os.getpid() and not _alive(pid):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _check_free_space(root: Path, needed: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(root).free
    if free < needed + (256 << 20):
        raise CifarkitError(
            f"not enough disk under {root} to pull {needed / 1e9:.2f} GB ({free / 1e9:.2f} GB "
            "free, 0.25 GB kept spare); free space or pull fewer runs (cifarkit remote pull RUN)"
        )


# ---------------------------------------------------------------------------- convenience
def open_store(url: str | None = None) -> RemoteStore:
    """The :class:`RemoteStore` at ``url`` (or ``$CIFARKIT_REMOTE``); one line when none is set."""
    resolved = configured_url(url)
    if resolved is None:
        raise CifarkitError(
            f"no remote configured: pass --remote URL or set {ENV_URL} (e.g. "
            "s3://bucket/prefix, gs://bucket/prefix or file:///path/to/folder)"
        )
    return RemoteStore(resolved)


def push(url: str | None = None, names: Iterable[str] | None = None) -> TransferReport:
    """Push runs to the remote at ``url`` (or ``$CIFARKIT_REMOTE``); see :meth:`RemoteStore.push`."""
    return open_store(url).push(names)


def pull(url: str | None = None, names: Iterable[str] | None = None) -> TransferReport:
    """Pull runs from the remote at ``url`` (or ``$CIFARKIT_REMOTE``); see :meth:`RemoteStore.pull`."""
    return open_store(url).pull(names)
