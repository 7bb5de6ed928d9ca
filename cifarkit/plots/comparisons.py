"""Comparison figures: forest plots of effects, the ladder, per-class differences."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from cifarkit.plots.style import new_figure, palette, styled


@styled
def comparison_forest(rows: pd.DataFrame, title: str | None = None, scale: float = 100.0,
                      unit: str = "points of test accuracy") -> Figure:
    """Differences to each group's reference with their 95% CI, one line per variant.

    ``rows`` has columns ``group``, ``variant``, ``mean_diff``, ``low``, ``high`` and
    ``per_seed`` (a sequence of per-seed differences, drawn as ticks), and optionally
    ``role``: a primary comparison is drawn as a filled marker and labelled "(primary)",
    an exploratory one as an open marker. Groups are drawn top to bottom in order; a line
    at zero marks "no difference". Intervals are the raw (unadjusted) t intervals.
    """
    n = len(rows)
    fig, ax = new_figure(width=8.5, height=0.9 + 0.42 * max(n, 1))
    colours = palette()
    groups = list(dict.fromkeys(rows["group"]))
    y_labels = []
    roles = rows["role"].tolist() if "role" in rows else [None] * n
    for i, (row, role) in enumerate(zip(rows.itertuples(), roles, strict=True)):
        y = n - 1 - i
        colour = colours[groups.index(row.group) % len(colours)]
        face = "white" if role == "exploratory" else colour
        if pd.notna(row.low):
            ax.errorbar(row.mean_diff * scale, y, xerr=[[(row.mean_diff - row.low) * scale],
                                                        [(row.high - row.mean_diff) * scale]],
                        fmt="o", color=colour, ecolor=colour, capsize=4, markersize=6, markerfacecolor=face)
        else:
            ax.plot(row.mean_diff * scale, y, "o", color=colour, markersize=6, markerfacecolor=face)
        seeds = np.asarray(list(row.per_seed), float) * scale
        ax.plot(seeds, np.full(len(seeds), y - 0.18), "|", color=colour, markersize=7, alpha=0.8)
        y_labels.append(f"{row.group}: {row.variant}" + (" (primary)" if role == "primary" else ""))
    ax.axvline(0, color="0.3", linewidth=1, linestyle="--")
    ax.set_yticks(np.arange(n)[::-1], y_labels)
    ax.set_ylim(-0.8, n - 0.4)
    legend = "; filled: primary, open: exploratory" if "role" in rows else ""
    ax.set_xlabel(f"difference to the reference ({unit}); bars: 95% t CI over seeds, ticks: seeds{legend}")
    ax.grid(axis="y", visible=False)
    fig.suptitle(title or "Ablations: change against the reference recipe")
    return fig


@styled
def ladder_figure(steps: Sequence[str], summary: pd.DataFrame, per_seed: pd.DataFrame,
                  minutes: Mapping[str, float], title: str | None = None, scale: float = 100.0) -> Figure:
    """The ablation ladder: test accuracy per step (mean, 95% CI, seeds as ticks) beside the
    training minutes per run; steps without runs are listed and left empty."""
    n = len(steps)
    fig, (acc_ax, time_ax) = new_figure(width=9.5, height=1.0 + 0.42 * max(n, 1), ncols=2, sharey=True,
                                     gridspec_kw={"width_ratios": [3, 1]})
    colour = palette()[0]
    for i, step in enumerate(steps):
        y = n - 1 - i
        if step not in summary.index:
            acc_ax.text(0.01, y, "not run", transform=acc_ax.get_yaxis_transform(), va="center",
                        color="0.45", fontsize=9)
            continue
        s = summary.loc[step]
        if pd.notna(s["low"]):
            acc_ax.errorbar(s["mean"] * scale, y, xerr=[[(s["mean"] - s["low"]) * scale],
                                                        [(s["high"] - s["mean"]) * scale]],
                            fmt="o", color=colour, capsize=4, markersize=6)
        else:
            acc_ax.plot(s["mean"] * scale, y, "o", color=colour, markersize=6)
        seeds = per_seed[step].dropna().to_numpy(float) * scale
        acc_ax.plot(seeds, np.full(len(seeds), y - 0.18), "|", color=colour, markersize=7, alpha=0.8)
        time_ax.barh(y, minutes[step], color=palette()[1], height=0.5)
    acc_ax.set_yticks(np.arange(n)[::-1], list(steps))
    acc_ax.set_ylim(-0.8, n - 0.4)
    acc_ax.set_xlabel("test accuracy (%); bars: 95% CI, ticks: seeds")
    time_ax.set_xlabel("training min / run")
    for ax in (acc_ax, time_ax):
        ax.grid(axis="y", visible=False)
    fig.suptitle(title or "Fast recipe: each trick added to the ones above")
    return fig


@styled
def per_class_comparison_bars(summaries: Mapping[str, pd.DataFrame], title: str | None = None) -> Figure:
    """Per-class test accuracy of several models side by side, mean over seeds with its 95%
    t interval over seeds (not clipped to [0, 1]: the axis extends when an interval passes 100%).

    ``summaries`` maps a model label to :func:`cifarkit.evaluation.stats.per_class_summary` output.
    """
    from cifarkit.plots.evaluation import unclipped_ylim

    labels = list(summaries)
    classes = [str(c) for c in next(iter(summaries.values())).index]
    x = np.arange(len(classes))
    width = 0.8 / max(len(labels), 1)
    fig, ax = new_figure(width=9.0, height=3.8)
    lows, highs = [], []
    for i, (label, colour) in enumerate(zip(labels, palette(len(labels)), strict=True)):
        summary = summaries[label].loc[classes]
        mean = summary["mean"].to_numpy()
        pos = x + (i - (len(labels) - 1) / 2) * width
        ax.bar(pos, mean, width * 0.95, color=colour, label=label)
        has_ci = summary["low"].notna().to_numpy()
        if has_ci.any():
            yerr = np.vstack([mean - summary["low"].to_numpy(), summary["high"].to_numpy() - mean])
            ax.errorbar(pos[has_ci], mean[has_ci], yerr=yerr[:, has_ci], fmt="none", ecolor="0.15",
                        elinewidth=1, capsize=2)
        lows += list(summary["low"].to_numpy(float))
        highs += list(summary["high"].to_numpy(float))
    ax.set_xticks(x, classes, rotation=30, ha="right")
    unclipped_ylim(ax, np.asarray(lows), np.asarray(highs))
    ax.set_ylabel("test accuracy")
    ax.grid(axis="x", visible=False)
    ax.legend(ncols=len(labels), loc="upper center", bbox_to_anchor=(0.5, 1.13))
    fig.suptitle(title or "Per-class test accuracy (mean over seeds, 95% t CI over seeds, not clipped)")
    return fig


@styled
def accuracy_vs_size_figure(table: pd.DataFrame, labels: Mapping[str, str] | None = None,
                            title: str | None = None) -> Figure:
    """Test accuracy on B against the number of B training images, one line per strategy, 95% CI bars.

    ``labels`` maps a strategy to its legend text; ``table`` is :func:`cifarkit.studies.transfer.results_table`'s long table.
    """
    fig, ax = new_figure(width=8.0, height=4.6)
    colours = palette()
    for i, (strategy, rows) in enumerate(table.groupby("strategy", sort=False)):
        rows = rows.sort_values("size")
        x, y = rows["size"].to_numpy(), rows["mean"].to_numpy() * 100
        has_ci = rows["low"].notna().to_numpy()
        err = np.where(has_ci, [(rows["mean"] - rows["low"]).fillna(0) * 100,
                                (rows["high"] - rows["mean"]).fillna(0) * 100], 0)
        ax.errorbar(x, y, yerr=err, fmt="o-", capsize=4, color=colours[i % len(colours)],
                    label=(labels or {}).get(strategy, strategy), markersize=5)
    ax.set_xscale("log")
    ax.set_xlabel("task-B training images (log scale)")
    ax.set_ylabel("test accuracy on task B (%)")
    ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(title or "Split-CIFAR transfer: accuracy against training-set size")
    return fig
