"""Content hashes of files: what the data cache keys sources by and what run manifests and
backups record for each file."""

from __future__ import annotations

import hashlib
import os

CHUNK = 1 << 20  # bytes read at a time: a file is never held in memory whole


def hash_file(path: str | os.PathLike[str]) -> str:
    """SHA-256 hex digest of a file's bytes, streamed in 1 MB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
