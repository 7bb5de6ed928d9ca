"""Every run of a build at a glance: test accuracy against training minutes, by model family."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from cifarkit.plots.style import model_colour, new_figure, styled


@styled
def accuracy_vs_minutes(runs: pd.DataFrame) -> Figure:
    """One dot per run (``test_accuracy``, ``train_minutes``, ``family`` and optionally
    ``classes`` columns), each model family in its colour of every figure
    (:func:`~cifarkit.plots.style.model_colour`), runs on fewer than ten classes hollow, minutes
    on a log axis (runs of this study span two orders of magnitude)."""
    fig, ax = new_figure(height=4.2)
    classes = runs["classes"] if "classes" in runs else pd.Series(10, index=runs.index)
    for (family, k), group in runs.groupby([runs["family"], classes]):
        colour = model_colour(str(family))
        full = k == 10  # runs on fewer classes (the transfer tasks) are hollow: another task
        ax.scatter(
            group["train_minutes"],
            group["test_accuracy"] * 100,
            s=28,
            alpha=0.8,
            color=colour if full else "none",
            edgecolors=colour,
            label=f"{family} ({len(group)})"
            if full
            else f"{family}, {k}-class task ({len(group)})",
        )
    if not runs.empty and (runs["train_minutes"] > 0).all():
        ax.set_xscale("log")
    ax.set_xlabel("training minutes per run (this CPU)")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(title="model family (runs)", loc="best")
    return fig
