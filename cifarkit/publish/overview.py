"""The introduction's answers from the whole run store of a build: how well, how reliably, where.

"How well" is every run of the build's plan placed by its test accuracy against the minutes
it trained (by model family), and the best accuracy reached per CPU-minute; "how reliably"
is the seed spread of the headline model; "where" is the date range and the CPU the runs
were trained on, read from each run's ``env.json``.
"""

from __future__ import annotations

import json

import pandas as pd


def build_runs(profile: str) -> pd.DataFrame:
    """One row per complete run of ``profile``'s study plan: folder, experiment, model family,
    seed, test accuracy, training minutes, precision, CPU and the date it was recorded."""
    from cifarkit.runs.run import Run, runs_root
    from cifarkit.studies.ablations import ARCH_LABELS
    from cifarkit.studies.plan import study_plan

    rows = []
    for entry in study_plan(profile):
        run = Run(runs_root() / entry.folder)
        if not run.complete:
            continue
        record = run.status_record()
        env_path = run.path / "env.json"
        env = json.loads(env_path.read_text()) if env_path.is_file() else {}
        model = entry.config.model.name
        rows.append(
            {
                "run": entry.folder,
                "experiment": entry.config.name,
                "seed": entry.seed,
                "family": ARCH_LABELS.get(model, model),
                "classes": len(entry.config.data.classes or ()) or 10,
                "chapters": ", ".join(entry.chapters),
                "test_accuracy": float(record["test_accuracy"]),
                "train_minutes": float(record.get("train_seconds") or 0.0) / 60,
                "precision": entry.config.train.precision,
                "cpu": env.get("cpu", "unknown"),
                "cpu_isa": env.get("cpu_isa", "unknown"),
                "cpu_bfloat16": env.get("cpu_bfloat16"),
                "device": env.get("device", "cpu"),
                "recorded_at": env.get("recorded_at"),
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "run",
            "experiment",
            "seed",
            "family",
            "classes",
            "chapters",
            "test_accuracy",
            "train_minutes",
            "precision",
            "cpu",
            "cpu_isa",
            "cpu_bfloat16",
            "device",
            "recorded_at",
        ],
    )


def how_well(runs: pd.DataFrame) -> str:
    """The best test accuracy of the build and what it cost, and the best accuracy reached per
    training minute spent on one run (the study's most efficient run), in one sentence.

    Only runs on all ten classes compete: an accuracy over fewer classes (the transfer
    chapter's five-class tasks) answers another question, and the sentence says they are left out.
    """
    if runs.empty:
        return "No run of this build is stored yet."
    full = runs[runs["classes"] == 10] if "classes" in runs else runs
    others = len(runs) - len(full)
    left_out = (
        f" ({others} run{'s' if others != 1 else ''} on tasks of fewer classes, from the transfer "
        f"chapter, {'are' if others != 1 else 'is'} left out of this comparison: an accuracy over "
        "fewer classes answers another question)"
        if others
        else ""
    )
    if full.empty:
        return f"No run of this build is on all ten classes{left_out}."
    runs, total = full, len(runs)
    best = runs.loc[runs["test_accuracy"].idxmax()]
    timed = runs[runs["train_minutes"] > 0]
    text = (
        f"The best test accuracy this build measured is {best['test_accuracy'] * 100:.1f}% "
        f"({best['family']}, {best['train_minutes']:.1f} training minutes on this CPU)"
    )
    if not timed.empty:
        rate = timed["test_accuracy"] / timed["train_minutes"]
        fast = timed.loc[rate.idxmax()]
        if fast["run"] != best["run"]:
            text += (
                f"; the most accuracy per minute came from a {fast['family']} run: "
                f"{fast['test_accuracy'] * 100:.1f}% in {fast['train_minutes']:.1f} minutes"
            )
    return (
        text
        + f"{left_out}. Every one of the build's {total} runs is in the figure, by model family."
    )


def how_reliably(per_seed: pd.Series, name: str) -> str:
    """The headline model's seed spread: range and standard deviation of its test accuracy."""
    values = per_seed.dropna() * 100
    if len(values) < 2:
        return f"{name} has fewer than two seeds in this build, so its seed spread is not measured."
    return (
        f"Over {len(values)} seeds that differ in nothing else, {name}'s test accuracy ranges from "
        f"{values.min():.1f}% to {values.max():.1f}% (standard deviation {values.std(ddof=1):.2f} points)."
    )


def where_trained(runs: pd.DataFrame) -> str:
    """When and on what CPU the build's runs were trained, from their ``env.json``."""
    if runs.empty:
        return "No run of this build is stored yet."
    dates = pd.to_datetime(runs["recorded_at"].dropna(), utc=True)
    when = (
        f"between {dates.min():%Y-%m-%d} and {dates.max():%Y-%m-%d}"
        if len(dates) and dates.min().date() != dates.max().date()
        else f"on {dates.min():%Y-%m-%d}"
        if len(dates)
        else ""
    )
    machines = []
    for (cpu, isa, bf16, device), group in runs.groupby(
        ["cpu", "cpu_isa", "cpu_bfloat16", "device"], dropna=False
    ):
        native = (
            "native bfloat16"
            if bf16 is True
            else "no native bfloat16"
            if bf16 is False
            else "bfloat16 unknown"
        )
        where = f"{cpu} ({isa}, {native})" if device == "cpu" else str(device)
        machines.append(f"{len(group)} on {where}")
    precisions = ", ".join(f"{n} in {p}" for p, n in runs["precision"].value_counts().items())
    return f"The {len(runs)} runs of this report were trained {when}: {'; '.join(machines)} ({precisions})."


#: Published full-budget test accuracies on the official CIFAR-10 batches (external figures,
#: cited, not measured here): He et al. 2016, table 6 (ResNet20: 8.75% error after 64k
#: iterations of batch 128, about 182 epochs, on 45k training images).
PUBLISHED = {
    "ResNet20": (0.9125, "He et al. (2016) report 91.25% for ResNet20 after about 182 epochs")
}


def beside_published(per_seed: pd.Series, name: str, epochs: int) -> str:
    """The headline model's mean accuracy beside its published full-budget figure, so a reader
    sees how far from convergence this budget is (the JPEG copy's own offset said in words)."""
    from cifarkit.data.statistics import JPEG_OFFSET

    published = PUBLISHED.get(name)
    values = per_seed.dropna()
    if published is None or values.empty:
        return ""
    return (
        f"{published[1]} on the official batches; this build trains {name} for {epochs} epoch"
        f"{'s' if epochs != 1 else ''} and reaches {values.mean() * 100:.1f}% on average, on a JPEG copy "
        f"of the data that scored {JPEG_OFFSET}. The gap is the budget's: the study's comparisons hold at "
        "this budget and say nothing about converged models."
    )
