"""bfloat16 against float32: what training in bfloat16 costs in accuracy, seed by seed.

``train.precision: auto`` trains in mixed bfloat16 on a CPU with native bfloat16, where its
training step is much faster than float32's (``cifarkit bench engine``). This benchmark makes
that switch a measured choice: it trains an experiment's seeds in both precisions through the
run store (cached and resumable; on such a CPU the bfloat16 runs are the book's own when the
profile and seeds are the same) and compares their test accuracy seed by seed with the
report's one verdict rule (:func:`cifarkit.evaluation.verdicts.verdict`): bfloat16 − float32,
its 95% interval, and whether a difference is called, bounded or left undecided.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from cifarkit.core.errors import CifarkitError

#: The two precisions compared, the reference first (the difference is the second's minus it).
COMPARED = ("float32", "bfloat16")
#: The kept comparisons under ``artifacts/bench``, one per profile (:func:`result_path`).
PRECISION_GLOB = "precision-*.json"


def compare(experiments: Sequence[str], profile: str = "cpu", seeds: int = 5) -> dict[str, Any]:
    """Train (or find) ``seeds`` runs of each experiment in float32 and in bfloat16; compare them.

    Parameters
    ----------
    experiments : sequence of str
        Experiment names under ``configs/`` (the default headline: ``resnet20``, ``baseline_cnn``).
    profile : str, default "cpu"
        The profile both precisions are trained with; only ``train.precision`` differs.
    seeds : int, default 5
        Seeds ``0 .. seeds-1`` in each precision (the verdict rule calls a difference from 5).

    Returns
    -------
    dict
        The JSON-ready record: the machine, and per experiment each precision's config hash
        and test accuracies by seed, the paired comparison and the verdict's sentence.

    Raises
    ------
    CifarkitError
        On a CPU without native bfloat16 (it would be emulated, many times slower), or with
        fewer than 2 seeds (no interval).
    """
    from cifarkit.bench.engine import machine_record
    from cifarkit.core import precision
    from cifarkit.core.config import load_config
    from cifarkit.core.repro import environment_record
    from cifarkit.evaluation.stats import paired_comparison
    from cifarkit.evaluation.verdicts import verdict
    from cifarkit.runs import get_or_train

    if not precision.machine().cpu_bfloat16:
        raise CifarkitError(
            "this CPU has no native bfloat16 (no avx512_bf16 or amx_bf16 flag in /proc/cpuinfo), "
            "so the bfloat16 arm would be emulated and train many times slower; run cifarkit bench "
            "precision on a CPU that has it (cifarkit doctor says whether this one does)"
        )
    if seeds < 2:
        raise CifarkitError(
            f"--seeds={seeds} is too few: an interval needs at least 2 seeds (the report's rule "
            "calls a difference from 5)"
        )
    configs = {
        (name, p): load_config(name, profile, {"train.precision": p})
        for name in experiments
        for p in COMPARED
    }  # every config checked before anything trains
    total, done = len(configs) * seeds, 0
    rows = []
    for name in experiments:
        accuracy: dict[str, dict[int, float]] = {}
        for p in COMPARED:
            accuracy[p] = {}
            for seed in range(seeds):
                done += 1
                run = get_or_train(configs[name, p], seed, label=f"[{done}/{total}] ")
                accuracy[p][seed] = float(run.metrics()["test_accuracy"])
        comparison = paired_comparison(accuracy[COMPARED[0]], accuracy[COMPARED[1]])
        rows.append(
            {
                "experiment": name,
                "config_hash": {p: configs[name, p].content_hash() for p in COMPARED},
                "test_accuracy": {p: list(accuracy[p].values()) for p in COMPARED},
                "comparison": comparison.as_dict(),
                "sentence": verdict(comparison, *COMPARED, metric="test accuracy").sentence,
            }
        )
    environment = environment_record()
    return {
        "profile": profile,
        "seeds": seeds,
        "recorded_at": environment["recorded_at"],
        "machine": machine_record(environment),
        "experiments": rows,
    }


def result_path(profile: str) -> Path:
    """``artifacts/bench/precision-<profile>.json`` (a profile file's name without its suffix):
    the newest comparison of that profile."""
    from cifarkit.core.paths import artifacts_dir

    return artifacts_dir() / "bench" / f"precision-{Path(profile).stem}.json"


def latest_result(folder: Path | None = None) -> dict[str, Any] | None:
    """The newest kept precision comparison, or None when none is kept."""
    from cifarkit.core.paths import artifacts_dir

    folder = folder or artifacts_dir() / "bench"
    results = [json.loads(p.read_text()) for p in folder.glob(PRECISION_GLOB)]
    return max(results, key=lambda r: r["recorded_at"]) if results else None


def precision_table(result: dict[str, Any]) -> pd.DataFrame:
    """One row per experiment: each precision's mean test accuracy (%) and bfloat16 − float32
    in points with its 95% interval, over the matched seeds."""
    from cifarkit.evaluation.stats import interval_text

    rows = []
    for row in result["experiments"]:
        c = row["comparison"]
        rows.append(
            {
                "experiment": row["experiment"],
                "seeds": c["n"],
                **{
                    f"{p} test accuracy (%)": round(
                        100 * sum(row["test_accuracy"][p]) / len(row["test_accuracy"][p]), 2
                    )
                    for p in COMPARED
                },
                "bfloat16 − float32 (points)": round(100 * c["mean_diff"], 2),
                "95% interval": interval_text(c["low"], c["high"], signed=True),
            }
        )
    return pd.DataFrame(rows)


def machine_text(result: dict[str, Any]) -> str:
    from cifarkit.bench.engine import cpu_text

    return (
        f"{cpu_text(result['machine'])}; profile {result['profile']}, "
        f"seeds 0-{result['seeds'] - 1} in each precision, recorded {result['recorded_at']}"
    )


def chapter_view(folder: Path | None = None) -> tuple[pd.DataFrame | None, str]:
    """What the fast-training chapter shows: the newest comparison's table and the verdict
    sentences with the machine they were measured on, or no table and the command that makes one."""
    result = latest_result(folder)
    if result is None:
        return None, (
            "No precision comparison has been kept on this machine yet. Make one on a CPU with "
            "native bfloat16 with `cifarkit bench precision` (the headline pair, five seeds each)."
        )
    sentences = " ".join(f"{row['experiment']}: {row['sentence']}" for row in result["experiments"])
    return precision_table(result), f"{sentences} Measured on {machine_text(result)}."
