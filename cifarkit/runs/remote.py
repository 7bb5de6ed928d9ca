"""A remote run store at any fsspec URL: push complete runs, pull them back verified.

The remote (``s3://bucket/prefix`` through s3fs, ``gs://bucket/prefix`` through gcsfs,
``file:///path``, or any other fsspec URL) holds two kinds of keys:

* ``objects/<sha256>``: each file's bytes, stored once whatever run or path holds them
  (content addressing makes uploads idempotent: two pushers write the same bytes to the
  same key);
* ``runs/<run-folder-name>.json``: the run's *manifest* (each relative path's sha256 and
  size, and the run's status record), written **last**. A run without its manifest does
  not exist remotely, so a push killed at any point leaves either no run or a whole one.

Push sends only the objects the remote lacks (one listing, then uploads with a tqdm bar
in bytes with ETA). On object stores a PUT is atomic (the key appears whole or not at
all), so objects are written in place; on a local folder they are written to a temp file,
fsynced and renamed; on other filesystems to a temp key, then moved.

Pull never trusts the remote: a manifest whose run name is not ``<experiment>-<12 hex>``,
whose paths leave the run-folder contract (:data:`RUN_FILES`, ``snapshots/epoch-NNN.keras``)
or which exceeds the size limits (:data:`MAX_FILE_BYTES`, :data:`MAX_RUN_BYTES`,
:data:`MAX_MANIFEST_BYTES`) is refused with one line. The files are downloaded into a
staging folder under the runs root, each checked against its size and sha256 while it is
read, and only then renamed into the store under the run's training lock. A run that is
complete locally is never overwritten; a missing, truncated or corrupt object refuses the
run, names the object and leaves the local store as it was.

The URL comes from ``--remote`` or ``CIFARKIT_REMOTE``; an S3 endpoint other than AWS
from ``CIFARKIT_REMOTE_ENDPOINT``, ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``;
credentials the usual way for each backend (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``
or ``AWS_PROFILE`` for S3). fsspec and s3fs are the optional ``remote`` extra.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from cifarkit.core.atomic import atomic_path, fsync_dir
from cifarkit.core.errors import CifarkitError
from cifarkit.data.cache import hash_file
from cifarkit.runs.run import COMPLETE, Run, runs_root

log = logging.getLogger(__name__)

ENV_URL = "CIFARKIT_REMOTE"
ENV_ENDPOINT = "CIFARKIT_REMOTE_ENDPOINT"
ENV_PUSH = "CIFARKIT_PUSH"
FORMAT = "cifarkit-run/1"

#: The files of the run-folder contract (:mod:`cifarkit.runs.run`); snapshots match
#: ``snapshots/epoch-NNN.keras``. Nothing else is pushed, and a manifest naming anything
#: else is refused.
RUN_FILES = frozenset({"config.yaml", "env.json", "history.csv", "history.json", "model.keras",
                       "predictions.npz", "metrics.json", "status.json"})
_SNAPSHOT = re.compile(r"snapshots/epoch-[0-9]{3}\.keras")
_RUN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,150}-[0-9a-f]{12}")
_SHA256 = re.compile(r"[0-9a-f]{64}")

#: Limits a manifest must keep: far above any run cifarkit writes (a transfer model is
#: about 100 MB), low enough that a hostile manifest cannot fill the disk or memory.
MAX_FILE_BYTES = 4 << 30
MAX_RUN_BYTES = 16 << 30
MAX_MANIFEST_BYTES = 1 << 20
MAX_FILES = 1010  # the contract's 8 files and up to 999 snapshots

_CHUNK = 1 << 20
_STAGING = ".staging"
# Backends whose writes are atomic per key (a reader sees the whole object or none).
_ATOMIC_PUT = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "memory"})
_LOCAL = frozenset({"file", "local"})
_CREDENTIAL_ERRORS = frozenset({"NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError",
                                "DefaultCredentialsError", "RefreshError"})
_CONNECTION_ERRORS = frozenset({"EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError",
                                "ClientConnectorError", "ClientConnectionError", "ServerDisconnectedError",
                                "ConnectionRefusedError", "ConnectionResetError", "gaierror",
                                "ServerTimeoutError", "ProxyConnectionError"})


class RemoteUnavailable(CifarkitError):
    """The remote cannot be used at all (unreachable, no credentials, access denied, no bucket)."""


# ---------------------------------------------------------------------------- manifests
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
        record = {"format": FORMAT, "run": self.run, "status": dict(self.status),
                  "files": {rel: {"sha256": e.sha256, "size": e.size} for rel, e in sorted(self.files.items())}}
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
            return CifarkitError(f"remote run {name!r} refused: {problem}; remove runs/{name}.json from "
                                 "the remote or push the run again from a machine that has it")

        check_run_name(name)
        if len(data) > MAX_MANIFEST_BYTES:
            raise refuse(f"its manifest is {len(data)} bytes, over the {MAX_MANIFEST_BYTES}-byte limit")
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
            if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str) \
                    or not _SHA256.fullmatch(entry["sha256"]):
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
            raise refuse(f"its files add up to {manifest.total_bytes} bytes, over the per-run limit of "
                         f"{MAX_RUN_BYTES}")
        return manifest


def check_run_name(name: str) -> None:
    """Raise a one-line :class:`CifarkitError` unless ``name`` looks like ``<experiment>-<12 hex>``."""
    if not isinstance(name, str) or not _RUN_NAME.fullmatch(name):
        raise CifarkitError(f"run {name!r} refused: a run folder name is <experiment>-<12 hex digits> "
                            "(e.g. resnet20-0123456789ab); `cifarkit runs ls` and `cifarkit remote ls` "
                            "list the runs")


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
    return ("is not a file of the run-folder contract (" + ", ".join(sorted(RUN_FILES))
            + ", snapshots/epoch-NNN.keras)")


def local_manifest(run: Run) -> tuple[Manifest, dict[str, Path]]:
    """The manifest of a complete local run and the path of each of its files.

    Files outside the run-folder contract (a checkpoint a kill left behind, temp files)
    are not part of the run and are left out.
    """
    if not run.complete:
        raise CifarkitError(f"run {run.path.name} is {run.status} in {run.path.parent}, not complete; "
                            "only complete runs are pushed (train it first)")
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


# ---------------------------------------------------------------------------- configuration
def configured_url(explicit: str | None = None) -> str | None:
    """The remote's URL: ``explicit`` (``--remote``), else ``$CIFARKIT_REMOTE``, else None."""
    url = (explicit or os.environ.get(ENV_URL) or "").strip()
    return url or None


def push_requested(flag: bool = False) -> bool:
    """True with ``--push`` or ``CIFARKIT_PUSH=1``."""
    return flag or os.environ.get(ENV_PUSH, "").strip().lower() in ("1", "true", "yes")


def endpoint_url() -> str | None:
    """The S3 endpoint: ``CIFARKIT_REMOTE_ENDPOINT``, ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``."""
    for name in (ENV_ENDPOINT, "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        if os.environ.get(name, "").strip():
            return os.environ[name].strip()
    return None


def open_store(url: str | None = None) -> RemoteStore:
    """The :class:`RemoteStore` at ``url`` (or ``$CIFARKIT_REMOTE``); one line when none is set."""
    resolved = configured_url(url)
    if resolved is None:
        raise CifarkitError(f"no remote configured: pass --remote URL or set {ENV_URL} (e.g. "
                            "s3://bucket/prefix, gs://bucket/prefix or file:///path/to/folder)")
    return RemoteStore(resolved)


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
        verb, where, what = {"push": ("pushed", "to", "new object(s)"), "pull": ("pulled", "from", "file(s)")}[
            self.action]
        return (f"{verb} {len(self.done)} run(s) {where} {self.url}: {self.files} {what}, "
                f"{self.bytes / 1e6:.1f} MB in {self.seconds:.1f} s ({mb_s:.1f} MB/s); "
                f"{len(self.skipped)} skipped, {len(self.refused)} refused")


@dataclass(frozen=True)
class RemoteRun:
    """One row of ``cifarkit remote ls``."""

    name: str
    manifest: Manifest | None
    problem: str | None = None


def _callback(progress: _Progress | None) -> Any:
    """An fsspec transfer callback that moves the :class:`_Progress` bar by each chunk sent."""
    from fsspec.callbacks import Callback

    class Forward(Callback):
        def relative_update(self, inc: int = 1) -> None:
            if progress is not None:
                progress.update(inc)

    return Forward()


class _Progress:
    """A tqdm bar in bytes with ETA on stderr; hidden when stderr is not a terminal."""

    def __init__(self, total: int, desc: str) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                        leave=False, disable=None, dynamic_ncols=True)

    def update(self, n: int) -> None:
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()


# ---------------------------------------------------------------------------- the store
class RemoteStore:
    """A content-addressed run store at one fsspec URL (see the module docstring).

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

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/") or url
        self.endpoint = None
        try:
            import fsspec.core
        except ImportError:
            raise CifarkitError(f"the remote {self.url} needs fsspec: pip install -e '.[remote]' "
                                "(fsspec and s3fs, pinned in requirements.lock)") from None
        protocol = fsspec.core.split_protocol(self.url)[0] or "file"
        options: dict[str, Any] = {}
        if protocol in ("s3", "s3a"):
            self.endpoint = endpoint_url()
            if self.endpoint:
                options["endpoint_url"] = self.endpoint
            # botocore retries transient failures (throttling, 5xx, resets) three times; s3fs
            # retries each of those calls again, which multiplies the wait on a dead endpoint.
            options["config_kwargs"] = {"retries": {"max_attempts": 3, "mode": "standard"}}
        if protocol not in _LOCAL:
            # A cached instance would keep the credentials and listings of an earlier call.
            options["skip_instance_cache"] = True
        try:
            self.fs, root = fsspec.core.url_to_fs(self.url, **options)
        except ImportError as exc:
            package = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs"}.get(protocol, "its fsspec backend")
            raise CifarkitError(f"the remote {self.url} needs {package}: pip install -e '.[remote]' "
                                f"(or pip install {package}) ({exc})") from None
        except (ValueError, TypeError) as exc:
            raise CifarkitError(f"cannot open the remote {self.url!r} ({exc}); use a URL such as "
                                "s3://bucket/prefix or file:///path") from None
        if protocol in ("s3", "s3a"):
            self.fs.retries = 2
        self.protocol = protocol
        self.root = root.rstrip("/")
        self.local = protocol in _LOCAL
        self.atomic_put = protocol in _ATOMIC_PUT

    # ------------------------------------------------------------------ keys
    def object_key(self, sha256: str) -> str:
        return f"{self.root}/objects/{sha256}"

    def manifest_key(self, name: str) -> str:
        return f"{self.root}/runs/{name}.json"

    # ------------------------------------------------------------------ errors
    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Turn backend failures into one line naming the URL and what to set or do."""
        try:
            yield
        except CifarkitError:
            raise
        except Exception as exc:  # noqa: BLE001 - backends raise many types; unknown ones re-raise below
            translated = self._translate(exc, doing)
            if translated is None:
                raise
            raise translated from exc

    def _translate(self, exc: BaseException, doing: str) -> CifarkitError | None:
        chain, seen = [], set()
        current: BaseException | None = exc
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            chain.append(current)
            current = current.__cause__ or current.__context__
        names = {type(e).__name__ for e in chain}
        detail = " ".join(str(exc).split())[:200]
        where = f" at endpoint {self.endpoint}" if self.endpoint else ""
        if names & _CREDENTIAL_ERRORS:
            return RemoteUnavailable(
                f"no credentials for the remote {self.url} while {doing}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) for s3://, GOOGLE_APPLICATION_CREDENTIALS for gs://")
        if names & _CONNECTION_ERRORS or (isinstance(exc, TimeoutError) and not self.local):
            return RemoteUnavailable(
                f"cannot reach the remote {self.url}{where} while {doing} ({type(exc).__name__}); check "
                f"that the server is up and set {ENV_ENDPOINT} (or AWS_ENDPOINT_URL) to its URL")
        if isinstance(exc, PermissionError) and self.local:
            return RemoteUnavailable(f"permission denied on the remote {self.url} while {doing} ({detail}); "
                                     "check the folder's owner and permissions")
        if isinstance(exc, PermissionError):
            return RemoteUnavailable(
                f"access denied to the remote {self.url}{where} while {doing} ({detail}); check the "
                "credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE) and the bucket's policy")
        if isinstance(exc, FileNotFoundError) and _no_bucket(exc):
            bucket = self.root.split("/", 1)[0]
            return RemoteUnavailable(
                f"the bucket {bucket!r} of the remote {self.url} does not exist ({detail}); create it "
                f"(e.g. `aws s3 mb {self.protocol}://{bucket}`) or fix {ENV_URL}/--remote")
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return CifarkitError(f"disk full while {doing} ({detail}); free space and run the same "
                                 "command again")
        if isinstance(exc, OSError):
            return CifarkitError(f"the remote {self.url} failed while {doing} ({type(exc).__name__}: "
                                 f"{detail}); check the URL and the remote, then run the command again")
        return None

    # ------------------------------------------------------------------ remote listing
    def _list(self, prefix: str) -> dict[str, int]:
        """Base name -> size of the keys under ``prefix``; empty when the prefix does not exist."""
        self.fs.invalidate_cache(prefix)
        try:
            entries = self.fs.ls(prefix, detail=True)
        except FileNotFoundError as exc:
            if _no_bucket(exc):
                raise
            return {}
        out = {}
        for entry in entries:
            if entry.get("type", "file") == "file":
                out[entry["name"].rstrip("/").rsplit("/", 1)[-1]] = int(entry.get("size") or 0)
        return out

    def run_names(self) -> list[str]:
        """Every run with a manifest on the remote, sorted (names not yet validated)."""
        with self._errors("listing runs"):
            return sorted(name[:-len(".json")] for name in self._list(f"{self.root}/runs")
                          if name.endswith(".json"))

    def read_manifest(self, name: str) -> Manifest:
        """The validated manifest of one remote run (see :meth:`Manifest.parse`)."""
        check_run_name(name)
        key = self.manifest_key(name)
        with self._errors(f"reading the manifest of {name}"):
            try:
                size = int(self.fs.info(key).get("size") or 0)
                if size > MAX_MANIFEST_BYTES:
                    raise CifarkitError(f"remote run {name!r} refused: its manifest is {size} bytes, over "
                                        f"the {MAX_MANIFEST_BYTES}-byte limit")
                data = self.fs.cat_file(key)
            except FileNotFoundError:
                raise CifarkitError(f"run {name} is not on the remote {self.url}; `cifarkit remote ls` "
                                    "lists the runs it holds") from None
        return Manifest.parse(data, name)

    def runs(self) -> list[RemoteRun]:
        """Every remote run with its manifest, or the problem that makes it unusable."""
        rows = []
        for name in self.run_names():
            try:
                rows.append(RemoteRun(name, self.read_manifest(name)))
            except RemoteUnavailable:
                raise
            except CifarkitError as exc:
                rows.append(RemoteRun(name, None, str(exc)))
        return rows

    # ------------------------------------------------------------------ writing
    def _put_file(self, path: Path, key: str, expected: FileEntry, progress: _Progress | None) -> None:
        """Upload ``path`` to ``key`` so that the key is either absent or whole, with the bytes hashed."""
        changed = CifarkitError(f"{path} changed while it was pushed (it no longer matches the sha256 "
                                "taken before); check the run folder and push again")
        if self.local:
            # Hash the very bytes written, so nothing lands under a name it does not match.
            digest, size = hashlib.sha256(), 0
            with open(path, "rb") as source, atomic_path(key) as tmp, open(tmp, "wb") as out:
                while chunk := source.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                    if progress is not None:
                        progress.update(len(chunk))
                if digest.hexdigest() != expected.sha256 or size != expected.size:
                    raise changed
        else:
            # An object store's single PUT appears whole or not at all, and a multipart upload
            # only when it completes (s3fs aborts it on an error); elsewhere a temp key is
            # moved into place.
            target = key if self.atomic_put else self._temp_key(key)
            try:
                self.fs.put_file(str(path), target, callback=_callback(progress))
                if hash_file(path) != expected.sha256 or path.stat().st_size != expected.size:
                    self.fs.rm(target)
                    raise changed
                if target != key:
                    self.fs.mv(target, key)
            finally:
                if target != key:
                    with contextlib.suppress(OSError):
                        if self.fs.exists(target):
                            self.fs.rm(target)
        stored = int(self.fs.info(key).get("size") or 0)
        if stored != expected.size:
            raise CifarkitError(f"the remote {self.url} stored {stored} of {expected.size} bytes of "
                                f"{key}; run the push again")

    def _put_bytes(self, data: bytes, key: str) -> None:
        """Write a small key (a manifest) whole or not at all."""
        if self.local:
            with atomic_path(key) as tmp:
                tmp.write_bytes(data)
        elif self.atomic_put:
            self.fs.pipe_file(key, data)
        else:
            tmp = self._temp_key(key)
            self.fs.pipe_file(tmp, data)
            self.fs.mv(tmp, key)

    def _temp_key(self, key: str) -> str:
        return f"{self.root}/tmp/{key.rsplit('/', 1)[-1]}.{uuid.uuid4().hex}.partial"

    def _ensure_folders(self) -> None:
        # Object stores have no folders; filesystems need them before a file is written.
        if not self.atomic_put:
            for sub in ("objects", "runs") if self.local else ("objects", "runs", "tmp"):
                self.fs.makedirs(f"{self.root}/{sub}", exist_ok=True)
        if self.local:
            # A push killed mid-write leaves its temp file (never a partial object); a day
            # old, no push is still writing it.
            cutoff = time.time() - 86400
            for tmp in Path(self.root, "objects").glob(".*.tmp"):
                with contextlib.suppress(OSError):
                    if tmp.stat().st_mtime < cutoff:
                        tmp.unlink()

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
        runs = self._local_runs(names, report)
        if not runs:
            report.seconds = time.perf_counter() - started
            return report
        on_remote = set(self.run_names())
        with self._errors("listing objects"):
            self._ensure_folders()
            stored = self._list(f"{self.root}/objects")
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
                report.skipped.append((manifest.run, "the remote already holds a complete copy with other "
                                                     "bytes; kept it"))
                continue
            manifests.append((manifest, paths, remote is not None))
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
        for manifest, _, exists in manifests:
            if exists:
                report.skipped.append((manifest.run, "already on the remote"))
                continue
            with self._errors(f"writing the manifest of {manifest.run}"):
                self._put_bytes(manifest.to_bytes(), self.manifest_key(manifest.run))
            report.done.append(manifest.run)
            log.info("pushed %s (%d files, %.1f MB)", manifest.run, len(manifest.files), manifest.total_bytes / 1e6)
        report.seconds = time.perf_counter() - started
        return report

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

    def _local_runs(self, names: Iterable[str] | None, report: TransferReport) -> list[Run]:
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
                report.refused.append((name, str(exc)))
                continue
            run = Run(root / name)
            if not run.complete:
                report.refused.append((name, f"run {name} is {run.status} in {root}, not complete; only "
                                             "complete runs are pushed (train it first)"))
                continue
            runs.append(run)
        return runs

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
            The remote is unreachable, has no credentials, denies access or has no bucket.
        """
        report = TransferReport("pull", self.url)
        started = time.perf_counter()
        listed = self.run_names()
        explicit = names is not None
        wanted = [Path(n).name for n in names] if explicit else listed
        root = runs_root()
        _remove_stale_staging(root)
        todo: list[Manifest] = []
        for name in wanted:
            try:
                check_run_name(name)
                if Run(root / name).complete:
                    report.skipped.append((name, "already complete locally; not overwritten"))
                    continue
                if name not in listed:
                    raise CifarkitError(f"run {name} is not on the remote {self.url}; `cifarkit remote ls` "
                                        "lists the runs it holds")
                todo.append(self.read_manifest(name))
            except RemoteUnavailable:
                raise
            except CifarkitError as exc:
                report.refused.append((name, str(exc)))
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
                log.info("pulled %s (%d files, %.1f MB, every sha256 checked)", manifest.run,
                         len(manifest.files), manifest.total_bytes / 1e6)
        finally:
            if progress is not None:
                progress.close()
            with contextlib.suppress(OSError):
                (root / _STAGING).rmdir()  # only when empty: other pulls may be staging
        report.seconds = time.perf_counter() - started
        return report

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
                raise CifarkitError(f"remote run {manifest.run!r} refused: its status.json does not say "
                                    "complete; push it again from a machine that has it")
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
                    log.info("replaced the %s local copy of %s by the remote's complete one",
                             Run(aside).status, manifest.run)
                    shutil.rmtree(aside, ignore_errors=True)
                staging.rename(run.path)
                fsync_dir(root)
            finally:
                lock.release()
            return None
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _fetch(self, name: str, rel: str, entry: FileEntry, dest: Path, progress: _Progress | None) -> None:
        """Download one object, reading at most its size plus one byte, and check size and sha256."""
        key = f"objects/{entry.sha256}"

        def refuse(problem: str) -> CifarkitError:
            return CifarkitError(f"remote run {name!r} refused: object {key} ({rel}) {problem}; the local "
                                 f"store is unchanged; push {name} again from a machine that has it")

        dest.parent.mkdir(parents=True, exist_ok=True)
        digest, size = hashlib.sha256(), 0
        with self._errors(f"downloading {key} ({name}/{rel})"):
            try:
                with self.fs.open(self.object_key(entry.sha256), "rb") as src, open(dest, "wb") as out:
                    while size <= entry.size and (chunk := src.read(min(_CHUNK, entry.size + 1 - size))):
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
            raise refuse(f"is corrupt: its bytes hash to {digest.hexdigest()[:12]}..., not its name")


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


def _no_bucket(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) says the bucket itself does not exist."""
    current: BaseException | None = exc
    for _ in range(10):
        if current is None:
            return False
        if type(current).__name__ == "NoSuchBucket" or "bucket does not exist" in str(current).lower():
            return True
        current = current.__cause__ or current.__context__
    return False


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
        raise CifarkitError(f"not enough disk under {root} to pull {needed / 1e9:.2f} GB ({free / 1e9:.2f} GB "
                            "free, 0.25 GB kept spare); free space or pull fewer runs (cifarkit remote pull RUN)")


# ---------------------------------------------------------------------------- convenience
def push(url: str | None = None, names: Iterable[str] | None = None) -> TransferReport:
    """Push runs to the remote at ``url`` (or ``$CIFARKIT_REMOTE``); see :meth:`RemoteStore.push`."""
    return open_store(url).push(names)


def pull(url: str | None = None, names: Iterable[str] | None = None) -> TransferReport:
    """Pull runs from the remote at ``url`` (or ``$CIFARKIT_REMOTE``); see :meth:`RemoteStore.pull`."""
    return open_store(url).pull(names)


def book_remote(remote: str | None, push_flag: bool) -> tuple[str | None, bool]:
    """The book build's remote and whether to push after it; checked before any slow step.

    Parameters
    ----------
    remote : str or None
        ``--remote``; None falls back to ``$CIFARKIT_REMOTE``.
    push_flag : bool
        ``--push``; ``CIFARKIT_PUSH=1`` also asks for the push.

    Returns
    -------
    tuple of (str or None, bool)
        The URL (None: no remote) and whether to push complete runs after the build.
    """
    url = configured_url(remote)
    wanted = push_requested(push_flag)
    if wanted and url is None:
        raise CifarkitError(f"--push (or {ENV_PUSH}=1) needs a remote: pass --remote URL or set {ENV_URL}")
    if url is not None:
        RemoteStore(url)  # a missing backend package fails now, not after the chapters ran
    return url, wanted


def pull_for_build(url: str) -> TransferReport:
    """Before the book's chapters run: pull every remote run that is not complete locally.

    A refused run is logged and left to the run store (a chapter that needs it trains it);
    an unreachable remote or missing credentials stop the build with one line.
    """
    report = RemoteStore(url).pull()
    for name, problem in report.refused:
        log.warning("not pulled: %s", problem if name in problem else f"{name}: {problem}")
    already = sum("complete locally" in why for _, why in report.skipped)
    log.info("remote %s: pulled %d run(s) (%.1f MB, %.1f s); %d already complete locally, %d refused",
             url, len(report.done), report.bytes / 1e6, report.seconds, already, len(report.refused))
    return report


def push_after_build(url: str) -> TransferReport:
    """After the book built: push every complete local run the remote lacks."""
    report = RemoteStore(url).push()
    for name, problem in report.refused:
        log.warning("not pushed: %s: %s", name, problem)
    log.info("remote %s: %s", url, report.summary())
    return report
