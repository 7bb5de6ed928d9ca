"""Training figures: the LR finder, training curves per run and over seeds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from cifarkit.plots.style import new_figure, palette, split_colours, styled


@styled
def lr_finder_figure(result: Any, title: str | None = None) -> Figure:
    """Loss against learning rate (log axis) from :func:`cifarkit.training.lrfind.lr_find`, with the suggestions."""
    fig, ax = new_figure(height=4.0)
    lrs = np.asarray(result.lrs)
    ax.plot(lrs, result.losses, alpha=0.3, label="per-batch loss")
    ax.plot(lrs, result.smoothed, label="smoothed loss")
    ax.axvline(
        result.suggested_lr,
        color=palette()[2],
        linestyle="--",
        label=f"steepest descent: {result.suggested_lr:.2g}",
    )
    ax.axvline(
        result.min_loss_lr_over_10,
        color=palette()[3],
        linestyle=":",
        label=f"minimum / 10: {result.min_loss_lr_over_10:.2g}",
    )
    ax.set_xscale("log")
    smoothed = np.asarray(result.smoothed)
    ax.set_ylim(smoothed.min() - 0.1 * abs(smoothed.min()), min(smoothed.max(), 2.5 * smoothed[0]))
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.legend()
    ax.set_title(title or "Learning-rate range test")
    return fig


def _seed_columns(curve: pd.DataFrame) -> list[str]:
    return [c for c in curve.columns if str(c).startswith("seed:")]


def seed_band_note(n: int) -> str:
    """What a seed-curve figure over ``n`` seeds draws: the mean and each seed, and a 95%
    Student-t band only from :data:`cifarkit.evaluation.stats.MIN_SEEDS_FOR_BAND` seeds (for
    titles and captions)."""
    from cifarkit.evaluation.stats import MIN_SEEDS_FOR_BAND

    seeds = f"{n} seed{'s' if n != 1 else ''}"
    if n >= MIN_SEEDS_FOR_BAND:
        return f"mean over {seeds} with its 95% Student-t band (over seeds); thin lines: each seed"
    if n >= 2:
        return (
            f"mean over {seeds} (thick) and each seed (thin); no band: a t band needs at least "
            f"{MIN_SEEDS_FOR_BAND} seeds"
        )
    return f"{seeds}: no spread over seeds is shown"


def curve_description(curves: Mapping[str, pd.DataFrame]) -> str:
    """:func:`seed_band_note` for the number of seeds behind ``curves``
    (:func:`cifarkit.evaluation.stats.curve_summary` tables)."""
    return seed_band_note(max((int(c["n"].max()) for c in curves.values() if len(c)), default=0))


def band(ax: Any, curve: pd.DataFrame, colour: Any, label: str, linestyle: str = "-") -> None:
    """The mean of ``curve`` (:func:`cifarkit.evaluation.stats.curve_summary`) as a line, each
    seed as a thin line, and the t band where the table gives one (enough seeds)."""
    epochs = curve.index.to_numpy()
    for column in _seed_columns(curve):
        ax.plot(
            epochs,
            curve[column].to_numpy(),
            color=colour,
            linestyle=linestyle,
            linewidth=0.7,
            alpha=0.45,
        )
    ax.plot(
        epochs,
        curve["mean"].to_numpy(),
        color=colour,
        label=label,
        linestyle=linestyle,
        marker="o",
        markersize=3,
        linewidth=1.8,
    )
    if curve["low"].notna().any():
        ax.fill_between(
            epochs,
            curve["low"].to_numpy(),
            curve["high"].to_numpy(),
            color=colour,
            alpha=0.2,
            linewidth=0,
        )


def _title(title: str | None, default: str, curves: Mapping[str, pd.DataFrame]) -> str:
    return f"{title or default}\n{curve_description(curves)}"


@styled
def seed_curves(curves: Mapping[str, pd.DataFrame], title: str | None = None) -> Figure:
    """Loss and accuracy per epoch over seeds, training vs validation: the mean, each seed, and a
    95% t band only from :data:`cifarkit.evaluation.stats.MIN_SEEDS_FOR_BAND` seeds.

    ``curves`` maps history columns (``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``)
    to :func:`cifarkit.evaluation.stats.curve_summary` tables. The title gets a second line
    that says what the lines and band are.
    """
    from matplotlib.ticker import MaxNLocator

    fig, axes = new_figure(height=3.5, ncols=2)
    colours = split_colours()
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        if metric in curves:
            band(ax, curves[metric], colours["train"], "train")
        if f"val_{metric}" in curves:
            band(ax, curves[f"val_{metric}"], colours["val"], "validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    labelled = [ax for ax in (axes[1], axes[0]) if ax.get_legend_handles_labels()[0]]
    if labelled:  # one legend, on the accuracy panel when it has curves
        labelled[0].legend()
    fig.suptitle(_title(title, "Training curves", curves))
    return fig


@styled
def per_class_seed_curves(
    curves: Mapping[str, pd.DataFrame], title: str | None = None, ncols: int = 5
) -> Figure:
    """Validation accuracy of each class per epoch: one small panel per class (shared axes),
    the mean over seeds with each seed (and a t band from enough seeds, not clipped to
    [0, 1]), and every other class's mean in grey for context.

    ``curves`` maps class name to :func:`cifarkit.evaluation.stats.curve_summary` of ``val_acc_<class>``.
    """
    from matplotlib.ticker import MaxNLocator

    names = list(curves)
    nrows = max(1, -(-len(names) // ncols))
    fig, axes = new_figure(
        height=1.7 * nrows + 0.8, nrows=nrows, ncols=ncols, sharex=True, sharey=True, squeeze=False
    )
    colours = palette(len(names))
    # The axis spans [0, 1] and any part of a band beyond it, so nothing is cut off silently.
    lows = [float(c["low"].min()) for c in curves.values() if len(c) and c["low"].notna().any()]
    highs = [float(c["high"].max()) for c in curves.values() if len(c) and c["high"].notna().any()]
    y_low, y_high = min([0.0, *lows]), max([1.0, *highs])
    for i, ax in enumerate(axes.flat):
        if i >= len(names):
            ax.set_visible(False)
            continue
        for other in names:
            if other != names[i]:
                ax.plot(
                    curves[other].index.to_numpy(),
                    curves[other]["mean"].to_numpy(),
                    color="0.8",
                    linewidth=0.8,
                )
        band(ax, curves[names[i]], colours[i], names[i])
        ax.set_title(names[i])
        ax.set_ylim(y_low, y_high)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if i % ncols == 0:
            ax.set_ylabel("val accuracy")
        if i // ncols == nrows - 1:
            ax.set_xlabel("epoch")
    fig.suptitle(_title(title, "Per-class validation accuracy", curves))
    return fig
