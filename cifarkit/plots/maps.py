"""Figures of the interpretability chapter (drawing only; every number comes from the
other :mod:`cifarkit.interpret` modules). Same rules and style as :mod:`cifarkit.plots`:
object-oriented Figures, no ``show``/``save``, deterministic."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from cifarkit.interpret.faithfulness import METRICS, CurveResult
from cifarkit.plots.style import (
    FIGURE_WIDTH,
    SMALL_FONT_SIZE,
    TINY_FONT_SIZE,
    new_figure,
    palette,
    styled,
)

HEATMAP = "inferno"


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """An RGB image (uint8 or 0..255 floats) blended with a [0, 1] heat map in :data:`HEATMAP`."""
    colours = mpl.colormaps[HEATMAP](np.clip(heat, 0, 1))[..., :3]
    return np.clip((1 - alpha) * np.asarray(image, np.float64) / 255.0 + alpha * colours, 0, 1)


def _image_cell(
    ax: Any, picture: np.ndarray, title: str | None = None, ylabel: str | None = None, **imshow: Any
) -> None:
    ax.imshow(picture, interpolation="nearest", **imshow)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title, fontsize=TINY_FONT_SIZE)
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=SMALL_FONT_SIZE, rotation=0, ha="right", va="center")


@styled
def map_grid(
    images: np.ndarray,
    rows: Mapping[str, np.ndarray],
    titles: Sequence[str] | None = None,
    title: str | None = None,
    blend: bool = True,
) -> Figure:
    """First row the images, then one labelled row per entry of ``rows`` (maps ``(n, H, W)``),
    overlaid on the image (``blend``) or alone, across the figure's width."""
    images = np.asarray(images)
    n = len(images)
    cell_inches = (FIGURE_WIDTH - 1.6) / max(n, 1)
    fig, axes = new_figure(
        height=0.5 + (len(rows) + 1) * cell_inches, nrows=len(rows) + 1, ncols=n, squeeze=False
    )
    for c in range(n):
        _image_cell(
            axes[0, c],
            images[c].astype(np.uint8),
            titles[c] if titles else None,
            "image" if c == 0 else None,
        )
        for r, (label, maps) in enumerate(rows.items(), start=1):
            picture = overlay(images[c], maps[c]) if blend else maps[c]
            _image_cell(
                axes[r, c],
                picture,
                None,
                label if c == 0 else None,
                **({} if blend else {"cmap": HEATMAP, "vmin": 0, "vmax": 1}),
            )
    if title:
        fig.suptitle(title)
    return fig


@styled
def pair_maps_figure(
    pairs: Sequence[Any],
    images: np.ndarray,
    class_names: Sequence[str],
    method_label: str = "Grad-CAM",
    title: str | None = None,
) -> Figure:
    """Per confused pair (:class:`~cifarkit.interpret.mistakes.PairMaps`): the mistakes, the map
    for the predicted class and the map for the true class, one column per image."""
    n_cols = max((len(p.index) for p in pairs), default=1)
    n_rows = 3 * max(len(pairs), 1)
    cell_inches = (FIGURE_WIDTH - 1.9) / max(n_cols, 1)
    fig, axes = new_figure(
        height=0.5 + n_rows * cell_inches * 1.1, nrows=n_rows, ncols=n_cols, squeeze=False
    )
    for ax in axes.flat:
        ax.set_axis_off()
    for p_i, p in enumerate(pairs):
        for c, idx in enumerate(p.index):
            top = 3 * p_i
            for r in range(3):
                axes[top + r, c].set_axis_on()
            true, pred = class_names[int(p.true[c])], class_names[int(p.predicted[c])]
            _image_cell(
                axes[top, c],
                images[idx].astype(np.uint8),
                f"{true}→{pred} ({p.confidence[c]:.2f})",
                f"{p.pair[0]}↔{p.pair[1]}" if c == 0 else None,
            )
            _image_cell(
                axes[top + 1, c],
                overlay(images[idx], p.map_predicted[c]),
                None,
                "predicted\nclass" if c == 0 else None,
            )
            _image_cell(
                axes[top + 2, c],
                overlay(images[idx], p.map_true[c]),
                None,
                "true\nclass" if c == 0 else None,
            )
    fig.suptitle(title or f"{method_label}: predicted vs true class on the worst confusion pairs")
    return fig


@styled
def class_mean_figure(means: Any, title: str | None = None) -> Figure:
    """Mean map per class (columns), correct (top row) and wrong (bottom row) predictions,
    on one shared colour scale; the number of images in each title."""
    k = len(means.class_names)
    cell_inches = (FIGURE_WIDTH - 1.4) / max(k, 1)
    fig, axes = new_figure(height=1.0 + 2 * cell_inches * 1.3, nrows=2, ncols=k, squeeze=False)
    finite = means.means[np.isfinite(means.means)]
    vmax = float(finite.max()) if finite.size else 1.0
    image = None
    for c, name in enumerate(means.class_names):
        for j, label in enumerate(("correct", "wrong")):
            ax = axes[j, c]
            empty = not means.counts[c, j]
            # An empty cell (no such images) is drawn blank in white, not as a zero map.
            _image_cell(
                ax,
                np.ones((2, 2, 3)) if empty else means.means[c, j],
                f"{name}\nn={means.counts[c, j]}" if j == 0 else f"n={means.counts[c, j]}",
                label if c == 0 else None,
                **({} if empty else {"cmap": HEATMAP, "vmin": 0, "vmax": vmax}),
            )
            if not empty:
                image = ax.images[-1]
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8, label="mean map value")
    if title:
        fig.suptitle(title)
    return fig


@styled
def attention_stats_figure(table: pd.DataFrame, title: str | None = None) -> Figure:
    """Per class: mean map entropy and centre share with 95% CIs, vehicles and animals coloured."""
    fig, axes = new_figure(height=3.2, ncols=2)
    colours = dict(zip(("vehicle", "animal"), palette(2), strict=True))
    x = np.arange(len(table))
    for ax, col, label, ref in (
        (axes[0], "entropy", "normalised entropy (1 = uniform)", 1.0),
        (axes[1], "centre_share", "share of mass in central quarter", 0.25),
    ):
        for group, colour in colours.items():
            chosen = (table["group"] == group).to_numpy()
            mean = table[col].to_numpy()[chosen]
            err = np.vstack(
                [
                    mean - table[f"{col}_low"].to_numpy()[chosen],
                    table[f"{col}_high"].to_numpy()[chosen] - mean,
                ]
            )
            ax.errorbar(x[chosen], mean, yerr=err, fmt="o", color=colour, label=group, capsize=2)
        ax.axhline(ref, color="0.5", linestyle=":", linewidth=1, label="uniform map")
        ax.set_xticks(x, list(table.index), rotation=40, ha="right")
        ax.set_ylabel(label)
        ax.grid(axis="x", visible=False)
    axes[0].legend(loc="best")
    if title:
        fig.suptitle(title)
    return fig


@styled
def curves_figure(curves: Mapping[str, CurveResult], title: str | None = None) -> Figure:
    """Mean deletion and insertion curves (target-class probability vs share of pixels) per method."""
    fig, axes = new_figure(height=3.4, ncols=2, sharey=True)
    colours = palette(len(curves))
    for (label, res), colour in zip(curves.items(), colours, strict=True):
        dashed = "random" in label
        for ax, kind in ((axes[0], "deletion"), (axes[1], "insertion")):
            curve = getattr(res, kind)
            auc = getattr(res, f"{kind}_auc").mean()
            ax.plot(
                res.fractions,
                curve.mean(axis=0),
                color=colour,
                linestyle="--" if dashed else "-",
                label=f"{label} (AUC {auc:.3f})",
            )
    axes[0].set_title("deletion: most important\npixels blurred first")
    axes[1].set_title("insertion: most important\npixels revealed first")
    for ax in axes:
        ax.set_xlabel("share of pixels")
        ax.legend(fontsize=TINY_FONT_SIZE)
    axes[0].set_ylabel("probability of target class")
    if title:
        fig.suptitle(title)
    return fig


@styled
def faithfulness_figure(summary: pd.DataFrame, title: str | None = None) -> Figure:
    """One panel per metric: each method's mean with its 95% bootstrap CI; baselines hatched grey."""
    metrics = [m for m in METRICS if m in set(summary["metric"])]
    methods = list(dict.fromkeys(summary["method"]))
    fig, axes = new_figure(
        height=1.0 + 0.3 * len(methods), ncols=len(metrics), sharey=True, squeeze=False
    )
    y = np.arange(len(methods))[::-1]
    colours = palette(len(methods))
    for ax, metric in zip(axes[0], metrics, strict=True):
        part = summary[summary["metric"] == metric].set_index("method").loc[methods]
        for i, method in enumerate(methods):
            row = part.loc[method]
            grey = "random" in method
            ax.errorbar(
                row["mean"],
                y[i],
                xerr=[[row["mean"] - row["low"]], [row["high"] - row["mean"]]],
                fmt="s" if grey else "o",
                color="0.45" if grey else colours[i],
                capsize=2,
            )
        label, lower = METRICS[metric]
        ax.set_title(
            f"{label}\n({'lower' if lower else 'higher'} is better)", fontsize=SMALL_FONT_SIZE
        )
        ax.grid(axis="y", visible=False)
    axes[0, 0].set_yticks(y, methods)
    if title:
        fig.suptitle(title)
    return fig


@styled
def randomisation_figure(tables: Mapping[str, pd.DataFrame], title: str | None = None) -> Figure:
    """Mean Spearman correlation with the trained model's maps as blocks are re-initialised
    from the top down (x: the block just randomised), with 95% bootstrap bands."""
    fig, ax = new_figure(height=3.6)
    for (label, table), colour in zip(tables.items(), palette(len(tables)), strict=True):
        dashed = "control" in label.lower() or "guided" in label.lower()
        ax.plot(
            table["step"],
            table["spearman"],
            marker="o",
            markersize=3,
            color=colour,
            linestyle="--" if dashed else "-",
            label=label,
        )
        ax.fill_between(
            table["step"], table["low"], table["high"], color=colour, alpha=0.2, linewidth=0
        )
    first = next(iter(tables.values()))
    ax.set_xticks(first["step"], first["randomised"], rotation=40, ha="right")
    ax.axhline(0, color="0.5", linewidth=1, linestyle=":")
    ax.set_xlabel("re-initialised down to (cumulative, top first)")
    ax.set_ylabel("Spearman ρ with original map")
    ax.legend()
    if title:
        fig.suptitle(title)
    return fig


@styled
def training_faithfulness_figure(
    table: pd.DataFrame, method_label: str, title: str | None = None
) -> Figure:
    """Deletion and insertion AUC per epoch snapshot for the method and the random baselines (95% CIs)."""
    fig, axes = new_figure(height=3.2, ncols=2)
    methods = list(dict.fromkeys(table["method"]))
    for ax, metric in zip(axes, ("deletion_auc", "insertion_auc"), strict=True):
        for method, colour in zip(methods, palette(len(methods)), strict=True):
            part = table[(table["metric"] == metric) & (table["method"] == method)].sort_values(
                "epoch"
            )
            label = method_label if "random" not in method else method
            ax.errorbar(
                part["epoch"],
                part["mean"],
                yerr=[part["mean"] - part["low"], part["high"] - part["mean"]],
                marker="o",
                capsize=2,
                color=colour,
                linestyle="--" if "random" in method else "-",
                label=label,
            )
        name, lower = METRICS[metric]
        ax.set_title(
            f"{name}\n({'lower' if lower else 'higher'} is better)", fontsize=SMALL_FONT_SIZE
        )
        ax.set_xlabel("epoch")
        ax.set_xticks(sorted(set(table["epoch"])))
    axes[0].legend()
    if title:
        fig.suptitle(title)
    return fig
