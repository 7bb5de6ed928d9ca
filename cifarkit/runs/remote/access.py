"""The remote's filesystem: its URL, endpoint and credentials, its keys, reads and writes.

:class:`StoreAccess` opens any fsspec URL (``s3://`` through s3fs, ``gs://`` through gcsfs,
``file://``) and knows the two kinds of keys, ``objects/<sha256>`` and
``runs/<run-folder-name>.json``. On object stores a PUT is atomic (the key appears whole
or not at all), so objects are written in place; on a local folder they are written to a
temp file, fsynced and renamed; on other filesystems to a temp key, then moved. Every
backend failure becomes one line naming the URL and what to set or do; the ones that make
the remote unusable at all are :class:`RemoteUnavailable`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cifarkit.core.atomic import atomic_path
from cifarkit.core.errors import CifarkitError
from cifarkit.core.hashing import CHUNK, hash_file
from cifarkit.runs.remote.manifest import MAX_MANIFEST_BYTES, FileEntry, Manifest, check_run_name

ENV_URL = "CIFARKIT_REMOTE"
ENV_ENDPOINT = "CIFARKIT_REMOTE_ENDPOINT"

# Backends whose writes are atomic per key (a reader sees the whole object or none).
_ATOMIC_PUT = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "memory"})
_LOCAL = frozenset({"file", "local"})
_CREDENTIAL_ERRORS = frozenset(
    {
        "NoCredentialsError",
        "PartialCredentialsError",
        "CredentialRetrievalError",
        "DefaultCredentialsError",
        "RefreshError",
    }
)
_CONNECTION_ERRORS = frozenset(
    {
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ConnectionClosedError",
        "ClientConnectorError",
        "ClientConnectionError",
        "ServerDisconnectedError",
        "ConnectionRefusedError",
        "ConnectionResetError",
        "gaierror",
        "ServerTimeoutError",
        "ProxyConnectionError",
    }
)


class RemoteUnavailable(CifarkitError):
    """The remote cannot be used at all (unreachable, no credentials, access denied, no bucket)."""


# ---------------------------------------------------------------------------- configuration
def configured_url(explicit: str | None = None) -> str | None:
    """The remote's URL: ``explicit`` (``--remote``), else ``$CIFARKIT_REMOTE``, else None."""
    url = (explicit or os.environ.get(ENV_URL) or "").strip()
    return url or None


def endpoint_url() -> str | None:
    """The S3 endpoint: ``CIFARKIT_REMOTE_ENDPOINT``, ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``."""
    for name in (ENV_ENDPOINT, "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        if os.environ.get(name, "").strip():
            return os.environ[name].strip()
    return None


@dataclass(frozen=True)
class RemoteRun:
    """One row of ``cifarkit remote ls``."""

    name: str
    manifest: Manifest | None
    problem: str | None = None


class Progress(Protocol):
    """What a transfer reports its bytes to (the push and pull progress bars)."""

    def update(self, n: int) -> None: ...


def _callback(progress: Progress | None) -> Any:
    """An fsspec transfer callback that moves the progress bar by each chunk sent."""
    from fsspec.callbacks import Callback

    class Forward(Callback):
        def relative_update(self, inc: int = 1) -> None:
            if progress is not None:
                progress.update(inc)

    return Forward()


# ---------------------------------------------------------------------------- the store
class StoreAccess:
    """The keys of a content-addressed run store at one fsspec URL: listing, reads, writes.

    :class:`~cifarkit.runs.remote.transfer.RemoteStore` adds push and pull on top.

    Parameters
    ----------
    url : str
        ``s3://bucket/prefix``, ``gs://bucket/prefix``, ``file:///path`` or any fsspec URL.
    """

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/") or url
        self.endpoint = None
        try:
            import fsspec.core
        except ImportError:
            raise CifarkitError(
                f"the remote {self.url} needs fsspec: pip install -e '.[remote]' "
                "(fsspec and s3fs, pinned in requirements.lock)"
            ) from None
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
            package = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs"}.get(
                protocol, "its fsspec backend"
            )
            raise CifarkitError(
                f"the remote {self.url} needs {package}: pip install -e '.[remote]' "
                f"(or pip install {package}) ({exc})"
            ) from None
        except (ValueError, TypeError) as exc:
            raise CifarkitError(
                f"cannot open the remote {self.url!r} ({exc}); use a URL such as "
                "s3://bucket/prefix or file:///path"
            ) from None
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
                "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) for s3://, GOOGLE_APPLICATION_CREDENTIALS for gs://"
            )
        if names & _CONNECTION_ERRORS or (isinstance(exc, TimeoutError) and not self.local):
            return RemoteUnavailable(
                f"cannot reach the remote {self.url}{where} while {doing} ({type(exc).__name__}); check "
                f"that the server is up and set {ENV_ENDPOINT} (or AWS_ENDPOINT_URL) to its URL"
            )
        if isinstance(exc, PermissionError) and self.local:
            return RemoteUnavailable(
                f"permission denied on the remote {self.url} while {doing} ({detail}); "
                "check the folder's owner and permissions"
            )
        if isinstance(exc, PermissionError):
            return RemoteUnavailable(
                f"access denied to the remote {self.url}{where} while {doing} ({detail}); check the "
                "credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE) and the bucket's policy"
            )
        if isinstance(exc, FileNotFoundError) and _no_bucket(exc):
            bucket = self.root.split("/", 1)[0]
            return RemoteUnavailable(
                f"the bucket {bucket!r} of the remote {self.url} does not exist ({detail}); create it "
                f"(e.g. `aws s3 mb {self.protocol}://{bucket}`) or fix {ENV_URL}/--remote"
            )
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return CifarkitError(
                f"disk full while {doing} ({detail}); free space and run the same command again"
            )
        if isinstance(exc, OSError):
            return CifarkitError(
                f"the remote {self.url} failed while {doing} ({type(exc).__name__}: "
                f"{detail}); check the URL and the remote, then run the command again"
            )
        return None

    # ------------------------------------------------------------------ remote listing
    def exists(self) -> bool:
        """Whether the store's folder exists; always True on an object store, which has no
        folders (an empty prefix is an empty store, a missing bucket fails when listed)."""
        if self.atomic_put:
            return True
        with self._errors("looking for the store"):
            return bool(self.fs.isdir(self.root))

    def require_exists(self) -> None:
        """Refuse to read a store whose folder does not exist: a mistyped URL would otherwise
        read as an empty store (push creates the folder)."""
        if not self.exists():
            raise RemoteUnavailable(
                f"the remote {self.url} does not exist (no folder {self.root}); check the URL, or create "
                f"the store by pushing to it: cifarkit remote push --remote {self.url}"
            )

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
            return sorted(
                name[: -len(".json")]
                for name in self._list(f"{self.root}/runs")
                if name.endswith(".json")
            )

    def read_manifest(self, name: str) -> Manifest:
        """The validated manifest of one remote run (see :meth:`Manifest.parse`)."""
        check_run_name(name)
        key = self.manifest_key(name)
        with self._errors(f"reading the manifest of {name}"):
            try:
                size = int(self.fs.info(key).get("size") or 0)
                if size > MAX_MANIFEST_BYTES:
                    raise CifarkitError(
                        f"remote run {name!r} refused: its manifest is {size} bytes, over "
                        f"the {MAX_MANIFEST_BYTES}-byte limit"
                    )
                data = self.fs.cat_file(key)
            except FileNotFoundError:
                raise CifarkitError(
                    f"run {name} is not on the remote {self.url}; `cifarkit remote ls` "
                    "lists the runs it holds"
                ) from None
        return Manifest.parse(data, name)

    def runs(self) -> list[RemoteRun]:
        """Every remote run with its manifest, or the problem that makes it unusable.

        Raises
        ------
        RemoteUnavailable
            The store's folder does not exist, or the remote cannot be used at all.
        """
        self.require_exists()
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
    def _put_file(
        self, path: Path, key: str, expected: FileEntry, progress: Progress | None
    ) -> None:
        """Upload ``path`` to ``key`` so that the key is either absent or whole, with the bytes hashed."""
        changed = CifarkitError(
            f"{path} changed while it was pushed (it no longer matches the sha256 "
            "taken before); check the run folder and push again"
        )
        if self.local:
            # Hash the very bytes written, so nothing lands under a name it does not match.
            digest, size = hashlib.sha256(), 0
            with open(path, "rb") as source, atomic_path(key) as tmp, open(tmp, "wb") as out:
                while chunk := source.read(CHUNK):
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
            raise CifarkitError(
                f"the remote {self.url} stored {stored} of {expected.size} bytes of "
                f"{key}; run the push again"
            )

    def _put_bytes(self, data: bytes, key: str) -> None:
        """Write a small key (a manifest) whole or not at all."""
        if self.local:
            with atomic_path(key) as tmp:
                tmp.write_bytes(data)
        elif self.atomic_put:
            self.fs.pipe_file(key, data)
        else:
            staged = self._temp_key(key)
            self.fs.pipe_file(staged, data)
            self.fs.mv(staged, key)

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


def _no_bucket(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) says the bucket itself does not exist."""
    current: BaseException | None = exc
    for _ in range(10):
        if current is None:
            return False
        if (
            type(current).__name__ == "NoSuchBucket"
            or "bucket does not exist" in str(current).lower()
        ):
            return True
        current = current.__cause__ or current.__context__
    return False
