"""Comparison figures: seeds and means of a few models, forest plots of effects, the ladder,
per-class differences."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from cifarkit.plots.style import (
    FONT_SIZE,
    SMALL_FONT_SIZE,
    model_colour,
    new_figure,
    palette,
    styled,
)


def _seed_offsets(n: int, spread: float = 0.22) -> np.ndarray:
    """Vertical offsets that keep ``n`` dots on one row apart (deterministic, no jitter)."""
    if n <= 1:
        return np.zeros(max(n, 0))
    return np.linspace(-spread / 2, spread / 2, n)


@styled
def seed_comparison(
    per_seed: pd.DataFrame,
    summary: pd.DataFrame,
    title: str | None = None,
    scale: float = 100.0,
    xlabel: str = "test accuracy (%)",
) -> Figure:
    """The headline as a picture: one row per model, each seed a dot, and beside the dots the
    mean with its 95% Student-t interval over seeds, the mean written at the bar's end.

    ``per_seed`` has one column per model (rows: seeds) and ``summary`` one row per model
    (``mean``, ``low``, ``high``, ``n``), as in :class:`cifarkit.studies.variants.Comparison`.
    Models are drawn top to bottom in ``summary``'s order, each in its family's colour
    (:func:`~cifarkit.plots.style.model_colour`). A model with one seed has no interval.
    """
    labels = [str(label) for label in summary.index]
    n = len(labels)
    fig, ax = new_figure(height=1.1 + 0.9 * max(n, 1))
    for i, label in enumerate(labels):
        y = n - 1 - i
        colour = model_colour(label)
        seeds = (
            per_seed[label].dropna().to_numpy(float) * scale if label in per_seed else np.array([])
        )
        ax.plot(
            seeds,
            y + 0.12 + _seed_offsets(len(seeds)),
            "o",
            color=colour,
            markersize=7,
            alpha=0.75,
            markeredgecolor="white",
            markeredgewidth=0.6,
            label="one seed" if i == 0 else None,
        )
        s = summary.loc[label]
        mean = float(s["mean"]) * scale
        if pd.notna(s["low"]):
            ax.errorbar(
                mean,
                y - 0.22,
                xerr=[[mean - float(s["low"]) * scale], [float(s["high"]) * scale - mean]],
                fmt="D",
                color=colour,
                ecolor=colour,
                elinewidth=2.2,
                capsize=5,
                markersize=7,
                label="mean, 95% interval over seeds" if i == 0 else None,
            )
            right = float(s["high"]) * scale
        else:
            ax.plot(
                mean, y - 0.22, "D", color=colour, markersize=7, label="mean" if i == 0 else None
            )
            right = mean
        ax.annotate(
            f"{mean:.1f}",
            (right, y - 0.22),
            xytext=(6, 0),
            textcoords="offset points",
            va="center",
            color=colour,
            fontsize=SMALL_FONT_SIZE,
        )
    ax.set_yticks(np.arange(n)[::-1], labels)
    ax.set_ylim(-0.7, n - 0.4)
    ax.margins(x=0.12)
    ax.set_xlabel(xlabel)
    ax.grid(axis="y", visible=False)
    ax.tick_params(axis="y", length=0, labelsize=FONT_SIZE)
    fig.legend(loc="outside lower center", ncols=2)
    fig.suptitle(title or "Each seed (dots); the mean and its 95% interval over seeds (bars)")
    return fig


@styled
def comparison_forest(
    rows: pd.DataFrame,
    title: str | None = None,
    scale: float = 100.0,
    unit: str = "points of test accuracy",
) -> Figure:
    """Differences to each group's reference with their 95% CI, one line per variant.

    ``rows`` has columns ``group``, ``variant``, ``mean_diff``, ``low``, ``high`` and
    ``per_seed`` (a sequence of per-seed differences, drawn as ticks), and optionally
    ``role``: a primary comparison is drawn as a filled marker and labelled "(primary)",
    an exploratory one as an open marker; and ``model``: the row's model, which sets its
    colour (:func:`~cifarkit.plots.style.model_colour`; without it each group has a colour).
    Groups are drawn top to bottom in order, each under its name; a line at zero marks "no
    difference". Intervals are the raw (unadjusted) t intervals. The figure spans the text
    width at every number of rows, its labels at the report's font size.
    """
    groups = list(dict.fromkeys(rows["group"]))
    colours = palette()
    roles = rows["role"].tolist() if "role" in rows else [None] * len(rows)
    models = rows["model"].tolist() if "model" in rows else [None] * len(rows)
    # One line per group heading and per variant, top to bottom.
    lines: list[tuple[str, Any]] = []
    for group in groups:
        lines.append(("group", group))
        lines += [("row", i) for i in np.flatnonzero((rows["group"] == group).to_numpy())]
    n = len(lines)
    fig, ax = new_figure(height=1.3 + 0.36 * max(n, 1))
    ticks, tick_labels, headings = [], [], []
    for position, (kind, item) in enumerate(lines):
        y = n - 1 - position
        if kind == "group":
            ticks.append(y)
            tick_labels.append(str(item))
            headings.append(len(tick_labels) - 1)
            continue
        row, role, model = rows.iloc[item], roles[item], models[item]
        colour = (
            model_colour(model) if model else colours[groups.index(row["group"]) % len(colours)]
        )
        face = "white" if role == "exploratory" else colour
        mean = row["mean_diff"] * scale
        if pd.notna(row["low"]):
            ax.errorbar(
                mean,
                y,
                xerr=[[mean - row["low"] * scale], [row["high"] * scale - mean]],
                fmt="o",
                color=colour,
                ecolor=colour,
                elinewidth=1.8,
                capsize=4,
                markersize=7,
                markerfacecolor=face,
            )
        else:
            ax.plot(mean, y, "o", color=colour, markersize=7, markerfacecolor=face)
        seeds = np.asarray(list(row["per_seed"]), float) * scale
        ax.plot(seeds, np.full(len(seeds), y - 0.22), "|", color=colour, markersize=8, alpha=0.8)
        ticks.append(y)
        tick_labels.append(f"{row['variant']}" + (" (primary)" if role == "primary" else ""))
    ax.axvline(0, color="0.3", linewidth=1, linestyle="--")
    ax.set_yticks(ticks, tick_labels)
    for index in headings:
        label = ax.get_yticklabels()[index]
        label.set_fontweight("bold")
        label.set_fontsize(FONT_SIZE)
    ax.tick_params(axis="y", length=0)
    ax.set_ylim(-0.8, n - 0.4)
    ax.set_xlabel(f"difference to the reference ({unit})")
    ax.grid(axis="y", visible=False)
    grey = "0.35"
    handles = [
        Line2D(
            [], [], marker="o", color=grey, linestyle="-", markersize=7, label="mean, 95% interval"
        ),
        Line2D([], [], marker="|", color=grey, linestyle="none", markersize=8, label="one seed"),
    ]
    if "role" in rows:
        handles += [
            Line2D([], [], marker="o", color=grey, linestyle="none", markersize=7, label="primary"),
            Line2D(
                [],
                [],
                marker="o",
                color=grey,
                markerfacecolor="white",
                linestyle="none",
                markersize=7,
                label="exploratory",
            ),
        ]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles))
    fig.suptitle(title or "Change in test accuracy against the reference recipe")
    return fig


@styled
def ladder_figure(
    steps: Sequence[str],
    summary: pd.DataFrame,
    per_seed: pd.DataFrame,
    minutes: Mapping[str, float],
    title: str | None = None,
    scale: float = 100.0,
) -> Figure:
    """The ablation ladder: test accuracy per step (mean, 95% CI, seeds as ticks) beside the
    training minutes per run; steps without runs are listed and left empty."""
    n = len(steps)
    fig, (acc_ax, time_ax) = new_figure(
        height=1.2 + 0.4 * max(n, 1), ncols=2, sharey=True, gridspec_kw={"width_ratios": [3, 1]}
    )
    colour = model_colour("airbench")
    for i, step in enumerate(steps):
        y = n - 1 - i
        if step not in summary.index:
            acc_ax.text(
                0.01,
                y,
                "not run",
                transform=acc_ax.get_yaxis_transform(),
                va="center",
                color="0.45",
                fontsize=SMALL_FONT_SIZE,
            )
            continue
        s = summary.loc[step]
        if pd.notna(s["low"]):
            acc_ax.errorbar(
                s["mean"] * scale,
                y,
                xerr=[[(s["mean"] - s["low"]) * scale], [(s["high"] - s["mean"]) * scale]],
                fmt="o",
                color=colour,
                capsize=4,
                markersize=6,
            )
        else:
            acc_ax.plot(s["mean"] * scale, y, "o", color=colour, markersize=6)
        seeds = per_seed[step].dropna().to_numpy(float) * scale
        acc_ax.plot(
            seeds, np.full(len(seeds), y - 0.18), "|", color=colour, markersize=7, alpha=0.8
        )
        time_ax.barh(y, minutes[step], color="0.6", height=0.5)
    acc_ax.set_yticks(np.arange(n)[::-1], list(steps))
    acc_ax.set_ylim(-0.8, n - 0.4)
    acc_ax.set_xlabel("test accuracy (%)\nbars: 95% interval, ticks: seeds")
    time_ax.set_xlabel("training min / run")
    for ax in (acc_ax, time_ax):
        ax.grid(axis="y", visible=False)
    fig.suptitle(title or "Fast recipe: each trick added to the ones above")
    return fig


@styled
def per_class_comparison_bars(
    summaries: Mapping[str, pd.DataFrame], title: str | None = None
) -> Figure:
    """Per-class test accuracy of several models side by side, mean over seeds with its 95%
    t interval over seeds (not clipped to [0, 1]: the axis extends when an interval passes 100%).

    ``summaries`` maps a model label to :func:`cifarkit.evaluation.stats.per_class_summary` output.
    """
    from cifarkit.plots.evaluation import unclipped_ylim

    labels = list(summaries)
    classes = [str(c) for c in next(iter(summaries.values())).index]
    x = np.arange(len(classes))
    width = 0.8 / max(len(labels), 1)
    fig, ax = new_figure(height=3.8)
    lows, highs = [], []
    for i, (label, colour) in enumerate(
        zip(labels, [model_colour(label) for label in labels], strict=True)
    ):
        summary = summaries[label].loc[classes]
        mean = summary["mean"].to_numpy()
        pos = x + (i - (len(labels) - 1) / 2) * width
        ax.bar(pos, mean, width * 0.95, color=colour, label=label)
        has_ci = summary["low"].notna().to_numpy()
        if has_ci.any():
            yerr = np.vstack([mean - summary["low"].to_numpy(), summary["high"].to_numpy() - mean])
            ax.errorbar(
                pos[has_ci],
                mean[has_ci],
                yerr=yerr[:, has_ci],
                fmt="none",
                ecolor="0.15",
                elinewidth=1,
                capsize=2,
            )
        lows += list(summary["low"].to_numpy(float))
        highs += list(summary["high"].to_numpy(float))
    ax.set_xticks(x, classes, rotation=30, ha="right")
    unclipped_ylim(ax, np.asarray(lows), np.asarray(highs))
    ax.set_ylabel("test accuracy")
    ax.grid(axis="x", visible=False)
    ax.legend(ncols=len(labels), loc="upper center", bbox_to_anchor=(0.5, 1.13))
    fig.suptitle(title or "Per-class test accuracy: mean over seeds, 95% interval over seeds")
    return fig


@styled
def accuracy_vs_size_figure(
    table: pd.DataFrame, labels: Mapping[str, str] | None = None, title: str | None = None
) -> Figure:
    """Test accuracy on B against the number of B training images, one line per strategy, 95% CI bars.

    ``labels`` maps a strategy to its legend text; ``table`` is :func:`cifarkit.studies.transfer.results_table`'s long table.
    """
    fig, ax = new_figure(height=4.4)
    colours = palette()
    for i, (strategy, rows) in enumerate(table.groupby("strategy", sort=False)):
        rows = rows.sort_values("size")
        x, y = rows["size"].to_numpy(), rows["mean"].to_numpy() * 100
        has_ci = rows["low"].notna().to_numpy()
        err = np.where(
            has_ci,
            [
                (rows["mean"] - rows["low"]).fillna(0) * 100,
                (rows["high"] - rows["mean"]).fillna(0) * 100,
            ],
            0,
        )
        ax.errorbar(
            x,
            y,
            yerr=err,
            fmt="o-",
            capsize=4,
            color=colours[i % len(colours)],
            label=(labels or {}).get(strategy, strategy),
            markersize=5,
        )
    ax.set_xscale("log")
    ax.set_xlabel("task-B training images (log scale)")
    ax.set_ylabel("test accuracy on task B (%)")
    ax.legend(loc="best")
    fig.suptitle(title or "Split-CIFAR transfer: accuracy against training-set size")
    return fig
