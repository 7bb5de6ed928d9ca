"""Back up and recover ``artifacts/``: a tar with a SHA-256 manifest, restored only if it verifies.

``backup`` writes ``MANIFEST.sha256`` (``<sha256>  <relative path>`` per file) as the first
member, then every file, atomically (temp file, rename). ``recover`` reads the tar member
by member without ``extractall`` (regular files with safe relative names only), checks
every file against the manifest in a staging folder next to ``artifacts/``, and only then
swaps it in; the previous ``artifacts/`` is kept beside it, never deleted. Lock files,
half-written temp files and (by default) the decoded-data cache, which is rebuilt from
the data source on demand, are left out.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Literal

from cifarkit.core.atomic import atomic_path
from cifarkit.core.errors import CifarkitError
from cifarkit.core.hashing import hash_file
from cifarkit.core.paths import artifacts_dir, cache_dir

log = logging.getLogger(__name__)

MANIFEST = "MANIFEST.sha256"
_CHUNK = 1 << 20


def _skipped(rel: PurePosixPath) -> bool:
    name = rel.name
    return name.endswith(".lock") or name.startswith(".") or ".tmp" in name or ".partial" in name


def backup_files(root: Path, include_cache: bool = False) -> Iterator[tuple[str, Path]]:
    """(relative posix name, path) of every file a backup holds, sorted."""
    cache = cache_dir().resolve()
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        if not include_cache and path.resolve().is_relative_to(cache):
            continue
        rel = PurePosixPath(path.relative_to(root).as_posix())
        if not _skipped(rel):
            yield str(rel), path


def backup(target: str | os.PathLike, include_cache: bool = False) -> tuple[Path, int]:
    """Write a tar of the artifacts folder with a manifest; return its path and file count."""
    root = artifacts_dir()
    if not root.is_dir():
        raise CifarkitError(f"nothing to back up: {root} does not exist; train a run first")
    target = Path(target).expanduser().resolve()
    if target.is_relative_to(root):
        raise CifarkitError(f"{target} is inside {root}; write the backup somewhere else")
    files = list(backup_files(root, include_cache))
    manifest = "".join(f"{hash_file(path)}  {rel}\n" for rel, path in files).encode()
    mode: Literal["w:gz", "w"] = "w:gz" if target.name.endswith((".tgz", ".tar.gz")) else "w"
    with atomic_path(target, suffix=".tar") as tmp, tarfile.open(tmp, mode) as tar:
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mtime = len(manifest), int(time.time())
        tar.addfile(info, io.BytesIO(manifest))
        for rel, path in files:
            tar.add(path, arcname=rel, recursive=False)
    log.info("backed up %d files from %s to %s", len(files), root, target)
    return target, len(files)


def _safe_name(name: str, archive: Path) -> PurePosixPath:
    rel = PurePosixPath(name)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise CifarkitError(f"unsafe path {name!r} in {archive}; refusing to restore it")
    return rel


def _read_manifest(tar: tarfile.TarFile, archive: Path) -> dict[str, str]:
    try:
        member = tar.getmember(MANIFEST)
        source = tar.extractfile(member)  # None when the member is not a regular file
        if source is None:
            raise KeyError(MANIFEST)
        text = source.read().decode()
    except (KeyError, AttributeError, UnicodeDecodeError):
        raise CifarkitError(
            f"{archive} has no readable {MANIFEST}; it is not a cifarkit backup"
        ) from None
    manifest = {}
    for line in text.splitlines():
        digest, _, name = line.partition("  ")
        manifest[name] = digest
    return manifest


def recover(archive: str | os.PathLike) -> tuple[Path, int, Path | None]:
    """Restore a backup into the artifacts folder after verifying every file.

    Returns (artifacts folder, files restored, where the previous folder was moved or None).
    """
    archive = Path(archive).expanduser().resolve()
    if not archive.is_file():
        raise CifarkitError(
            f"backup {archive} not found; pass the file `cifarkit artifacts backup` wrote"
        )
    root = artifacts_dir()
    staging = root.with_name(f".{root.name}.recover-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        count = _extract_verified(archive, staging)
        previous = None
        if root.exists():
            previous = root.with_name(
                f"{root.name}.before-recover-{time.strftime('%Y%m%d-%H%M%S')}"
            )
            root.rename(previous)
        staging.rename(root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("restored %d verified files into %s", count, root)
    return root, count, previous


def _extract_verified(archive: Path, staging: Path) -> int:
    try:
        with tarfile.open(archive, "r:*") as tar:
            manifest = _read_manifest(tar, archive)
            seen = set()
            for member in tar:
                if member.name == MANIFEST:
                    continue
                rel = _safe_name(member.name, archive)
                if not member.isfile():
                    raise CifarkitError(
                        f"{archive} holds a non-regular member {member.name!r}; refusing to restore it"
                    )
                if str(rel) not in manifest:
                    raise CifarkitError(
                        f"{archive}: {rel} is not in the manifest; the backup was altered"
                    )
                dest = staging.joinpath(*rel.parts)
                dest.parent.mkdir(parents=True, exist_ok=True)
                digest = hashlib.sha256()
                source = tar.extractfile(member)
                if source is None:  # a regular member (checked above) always has its contents
                    raise CifarkitError(
                        f"{archive}: {member.name!r} cannot be read; refusing to restore it"
                    )
                with source as src, open(dest, "wb") as out:
                    while chunk := src.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                if digest.hexdigest() != manifest[str(rel)]:
                    raise CifarkitError(
                        f"{archive}: {rel} does not match its manifest checksum; the backup is corrupt"
                    )
                seen.add(str(rel))
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise CifarkitError(
            f"cannot read backup {archive} ({exc}); it is truncated or not a tar file"
        ) from None
    missing = sorted(set(manifest) - seen)
    if missing:
        raise CifarkitError(
            f"{archive} is missing {len(missing)} files listed in its manifest (first: {missing[0]})"
        )
    return len(seen)
