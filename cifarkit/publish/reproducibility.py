"""What the reproducibility appendix shows: the environment, the resolved configs, every run.

Everything here is read from the repository and the run store (never typed by hand):
the package versions and machine of this process, each experiment resolved under a
profile with its content hash, and one row per run with its run key, seed, result and
its MLflow run id and registered model version.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from cifarkit.core.config import available, load_config
from cifarkit.core.repro import environment_record


def environment() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(machine table, package-version table) for the process that builds the book."""
    record = environment_record()
    machine = {
        key: record.get(key)
        for key in (
            "python",
            "platform",
            "machine",
            "cpu",
            "cpu_isa",
            "cpu_count",
            "git_commit",
            "git_dirty",
            "recorded_at",
        )
    }
    machine_table = pd.DataFrame({"value": {k: str(v) for k, v in machine.items()}})
    packages = pd.DataFrame({"version": record.get("packages", {})})
    packages.index.name = "package"
    return machine_table, packages


def resolved_configs(profile: str) -> dict[str, dict[str, Any]]:
    """Every experiment under ``configs/`` resolved with ``profile``: YAML text and hash."""
    out = {}
    for name in available("experiments"):
        cfg = load_config(name, profile)
        out[name] = {"hash": cfg.content_hash(), "yaml": cfg.to_yaml()}
    return out


def run_table(profile: str | None = None) -> pd.DataFrame:
    """Complete runs in the store (of ``profile`` if given): key, seed, result, MLflow ids."""
    from cifarkit.runs import COMPLETE, list_runs

    rows = []
    for row in list_runs():
        if row["status"] != COMPLETE or (profile is not None and row["profile"] != profile):
            continue
        rows.append(
            {
                "run": row["run"],
                "experiment": row["experiment"],
                "seed": row["seed"],
                "config hash": str(row["config_hash"] or "")[:12],
                "test accuracy (%)": round(100 * float(row["test_accuracy"]), 2)
                if row["test_accuracy"] is not None
                else None,
                "train min": round(float(row["train_seconds"]) / 60, 1)
                if row["train_seconds"] is not None
                else None,
                "MLflow run id": row["mlflow_run_id"],
                "model version": row["model_version"],
            }
        )
    columns = [
        "run",
        "experiment",
        "seed",
        "config hash",
        "test accuracy (%)",
        "train min",
        "MLflow run id",
        "model version",
    ]
    return (
        pd.DataFrame(rows, columns=columns)
        .sort_values(["experiment", "config hash", "seed"])
        .reset_index(drop=True)
    )


def registered_models(profile: str | None = None) -> pd.DataFrame:
    """Every registered model version in MLflow (of ``profile`` if given): name, version,
    aliases and the tags each version carries (config hash, seed, profile, test accuracy)."""
    from cifarkit.runs.tracking import model_versions, registered_model_names

    rows = []
    for name in registered_model_names():
        for v in model_versions(name):
            tags = v["tags"]
            if profile is not None and tags.get("profile") not in (None, profile):
                continue
            accuracy = tags.get("test_accuracy")
            rows.append(
                {
                    "model": name,
                    "version": v["version"],
                    "aliases": ", ".join(v["aliases"]),
                    "seed": tags.get("seed"),
                    "profile": tags.get("profile"),
                    "config hash": str(tags.get("config_hash") or "")[:12],
                    "test accuracy (%)": round(100 * float(accuracy), 2) if accuracy else None,
                }
            )
    columns = ["model", "version", "aliases", "seed", "profile", "config hash", "test accuracy (%)"]
    return (
        pd.DataFrame(rows, columns=columns).sort_values(["model", "version"]).reset_index(drop=True)
    )
