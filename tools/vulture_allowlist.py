"""Names that are used where vulture cannot see it (read by tools/deadcode.py, never run).

Framework hooks (Keras callbacks and layers, pydantic validators, import-system loaders,
fsspec callbacks) are left out by name in pyproject.toml's ``[tool.vulture]``. Listed here
are result fields that cifarkit fills for its callers, who read them by attribute or
through ``dataclasses.asdict`` into JSON files.
"""
# ruff: noqa: B018

from cifarkit.bench.inference import InferenceBench
from cifarkit.bench.throughput import Throughput
from cifarkit.evaluation.metrics import RunEvaluation
from cifarkit.evaluation.verdicts import Verdict

InferenceBench.measured_at
Throughput.framework
Throughput.intra_op_threads
Throughput.inter_op_threads
RunEvaluation.confusion_normalised
RunEvaluation.reliability
RunEvaluation.reliability_calibrated
Verdict.excludes_zero
