"""A remote run store at any fsspec URL: push complete runs, pull them back verified.

The remote (``s3://bucket/prefix`` through s3fs, ``gs://bucket/prefix`` through gcsfs,
``file:///path``, or any other fsspec URL) holds two kinds of keys:

* ``objects/<sha256>``: each file's bytes, stored once whatever run or path holds them
  (content addressing makes uploads idempotent: two pushers write the same bytes to the
  same key);
* ``runs/<run-folder-name>.json``: the run's *manifest* (each relative path's sha256 and
  size, and the run's status record), written **last**. A run without its manifest does
  not exist remotely, so a push killed at any point leaves either no run or a whole one.

The modules, each importing only those listed before it:

* :mod:`~cifarkit.runs.remote.manifest` — the run-folder contract, manifests, their
  validation and limits;
* :mod:`~cifarkit.runs.remote.access` — the fsspec filesystem: URL, endpoint and
  credentials, backend errors in one line, object and manifest reads and writes;
* :mod:`~cifarkit.runs.remote.transfer` — :class:`RemoteStore`: push, pull (staged,
  verified, moved in under the run's lock), progress bars;
* :mod:`~cifarkit.runs.remote.book` — the book build's pull before and push after.

The URL comes from ``--remote`` or ``CIFARKIT_REMOTE``; an S3 endpoint other than AWS
from ``CIFARKIT_REMOTE_ENDPOINT``, ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``;
credentials the usual way for each backend (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``
or ``AWS_PROFILE`` for S3). fsspec and s3fs are the optional ``remote`` extra.
"""

from cifarkit.runs.remote.access import ENV_ENDPOINT, ENV_URL, configured_url
from cifarkit.runs.remote.book import (
    ENV_PUSH,
    book_remote,
    pull_for_build,
    push_after_build,
    push_requested,
)
from cifarkit.runs.remote.manifest import (
    FORMAT,
    MAX_FILE_BYTES,
    MAX_MANIFEST_BYTES,
    Manifest,
    local_manifest,
    pack_run,
)
from cifarkit.runs.remote.transfer import RemoteStore, open_store

__all__ = [
    "ENV_ENDPOINT",
    "ENV_PUSH",
    "ENV_URL",
    "FORMAT",
    "configured_url",
    "MAX_FILE_BYTES",
    "MAX_MANIFEST_BYTES",
    "Manifest",
    "RemoteStore",
    "book_remote",
    "local_manifest",
    "open_store",
    "pack_run",
    "pull_for_build",
    "push_after_build",
    "push_requested",
]
