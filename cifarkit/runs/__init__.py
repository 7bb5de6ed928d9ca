"""The run store: run folders and their keys, training into them, tracking, backup.

* :mod:`~cifarkit.runs.run` — :class:`Run` (one folder, read-only methods), its key;
* :mod:`~cifarkit.runs.store` — :func:`get_or_train`, the locked, resumable training path
  (the CLI and the runners), and :func:`stored_run`, which only reads (the chapters);
* :mod:`~cifarkit.runs.local`, :mod:`~cifarkit.runs.cluster` — the local and the Ray runner,
  sharing :mod:`~cifarkit.runs.schedule` (jobs, the order runs start in, the time left);
* :mod:`~cifarkit.runs.tracking` — MLflow runs and registered model versions;
* :mod:`~cifarkit.runs.backup` — tar backups with a sha256 manifest, and recovery;
* :mod:`~cifarkit.runs.remote` — a content-addressed remote store (s3://, gs://, file://): push, pull;
* :mod:`~cifarkit.runs.export` — self-contained inference exports (SavedModel, ONNX) of a run;
* :mod:`~cifarkit.runs.predict` — top-k classes of image files from a run or an export.
"""

from cifarkit.runs.run import COMPLETE, FAILED, MISSING, RUNNING, Run, locate, run_hash, runs_root
from cifarkit.runs.store import get_or_train, list_runs, resolve_run, stored_run

__all__ = [
    "COMPLETE",
    "FAILED",
    "MISSING",
    "RUNNING",
    "Run",
    "get_or_train",
    "list_runs",
    "locate",
    "resolve_run",
    "run_hash",
    "runs_root",
    "stored_run",
]
