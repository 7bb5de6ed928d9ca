"""Every run of a build at a glance: test accuracy against training minutes, by model family."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd


def accuracy_vs_minutes(runs: pd.DataFrame) -> plt.Figure:
    """One dot per run (``test_accuracy``, ``train_minutes``, ``family`` columns), a colour per
    model family, minutes on a log axis (runs of this study span two orders of magnitude)."""
    fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    for family, group in runs.groupby("family"):
        ax.scatter(group["train_minutes"], group["test_accuracy"] * 100, s=28, alpha=0.8, label=f"{family} ({len(group)})")
    if not runs.empty and (runs["train_minutes"] > 0).all():
        ax.set_xscale("log")
    ax.set_xlabel("training minutes per run (this CPU)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(title="model family (runs)", loc="lower right", fontsize=9)
    return fig
