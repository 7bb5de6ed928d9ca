"""Evaluation figures: reliability, confusion, per-class accuracy, mistake galleries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from cifarkit.plots.style import (
    FIGURE_WIDTH,
    SMALL_FONT_SIZE,
    TINY_FONT_SIZE,
    bare_image_axes,
    new_figure,
    palette,
    styled,
)

# Figures of cifarkit.evaluation.metrics / cifarkit.evaluation.stats results: reliability diagram,
# confusion matrix, per-class accuracy with CIs over seeds, seed-averaged curves, galleries.


@styled
def reliability_diagram(
    tables: Mapping[str, pd.DataFrame],
    ece: Mapping[str, float] | None = None,
    title: str | None = None,
    ece_label: str = "ECE",
) -> Figure:
    """One panel per reliability table (e.g. before / after temperature scaling): accuracy of
    each confidence bin against the diagonal, the gap shaded, and the share of examples per
    bin below. ``tables`` come from :func:`cifarkit.evaluation.metrics.reliability_table`."""
    names = list(tables)
    fig, axes = new_figure(
        height=4.4, nrows=2, ncols=len(names), squeeze=False, height_ratios=[3, 1], sharex=True
    )
    colours = palette()
    for c, name in enumerate(names):
        table = tables[name]
        ax, hist = axes[0, c], axes[1, c]
        width = (table["high"] - table["low"]).to_numpy()
        centre = ((table["low"] + table["high"]) / 2).to_numpy()
        acc = table["accuracy"].fillna(0).to_numpy()
        conf = table["confidence"].to_numpy()
        used = table["count"].to_numpy() > 0
        ax.bar(
            centre[used],
            acc[used],
            width[used],
            color=colours[0],
            edgecolor="white",
            linewidth=0.5,
            label="accuracy",
        )
        ax.bar(
            centre[used],
            (conf - acc)[used],
            width[used],
            bottom=acc[used],
            color=colours[3],
            alpha=0.35,
            edgecolor=colours[3],
            linewidth=0.5,
            hatch="//",
            label="gap to confidence",
        )
        ax.plot(
            [0, 1], [0, 1], color="0.3", linestyle="--", linewidth=1, label="perfect calibration"
        )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        label = (
            name
            if ece is None or name not in ece
            else f"{name}  ({ece_label} {ece[name] * 100:.1f}%)"
        )
        ax.set_title(label)
        ax.set_ylabel("accuracy")
        share = table["count"].to_numpy() / max(int(table["count"].sum()), 1)
        hist.bar(centre, share, width, color=colours[7], edgecolor="white", linewidth=0.5)
        hist.set_xlabel("confidence (top probability)")
        hist.set_ylabel("share")
    axes[0, 0].legend(loc="upper left")
    if title:
        fig.suptitle(title)
    return fig


@styled
def confusion_matrix_figure(
    normalised: np.ndarray,
    class_names: Sequence[str],
    counts: np.ndarray | None = None,
    title: str | None = None,
) -> Figure:
    """Row-normalised confusion matrix (rows: true class) as a heat map, each cell labelled
    with its percentage (and, if given, its count)."""
    matrix = np.asarray(normalised, np.float64)
    k = len(class_names)
    fig, ax = new_figure(height=1.2 + (FIGURE_WIDTH - 1.6) / max(k, 1) * 0.9 * k)
    image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    for i in range(k):
        for j in range(k):
            text = (
                f"{matrix[i, j] * 100:.0f}"
                if counts is None
                else f"{matrix[i, j] * 100:.0f}\n({int(counts[i, j])})"
            )
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                fontsize=SMALL_FONT_SIZE if counts is None else TINY_FONT_SIZE,
                color="white" if matrix[i, j] > 0.55 else "0.15",
            )
    ax.set_xticks(range(k), [str(c) for c in class_names], rotation=45, ha="right")
    ax.set_yticks(range(k), [str(c) for c in class_names])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.grid(False)
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of the true class")
    ax.set_title(title or "Confusion matrix (row-normalised, %)")
    return fig


def unclipped_ylim(ax, lows: np.ndarray, highs: np.ndarray) -> None:
    """Accuracy axis spanning [0, 1] *and* every interval end: a Student-t interval over few
    seeds can pass 0 or 1, and it is drawn whole rather than cut at the axis. A dotted line
    marks 1 when an interval passes it."""
    lows, highs = np.asarray(lows, float), np.asarray(highs, float)
    low = min(0.0, float(np.nanmin(lows))) if np.isfinite(lows).any() else 0.0
    high = max(1.0, float(np.nanmax(highs))) if np.isfinite(highs).any() else 1.0
    ax.set_ylim(low, high + 0.02)
    if high > 1.0:
        ax.axhline(1.0, color="0.4", linestyle=":", linewidth=1)


@styled
def per_class_accuracy_bars(
    summary: pd.DataFrame, per_seed: pd.DataFrame | None = None, title: str | None = None
) -> Figure:
    """Per-class accuracy: the mean over seeds as bars with their 95% Student-t interval over
    seeds (``summary`` from :func:`cifarkit.evaluation.stats.per_class_summary`), each seed as a
    dot. Intervals are not clipped to [0, 1]: with few seeds one can pass 100%, and the axis
    extends to show it (a dotted line marks 100%)."""
    classes = [str(c) for c in summary.index]
    x = np.arange(len(classes))
    mean = summary["mean"].to_numpy()
    fig, ax = new_figure(height=3.6)
    colours = palette()
    ax.bar(x, mean, 0.7, color=colours[0], label="mean over seeds")
    has_ci = summary["low"].notna().to_numpy()
    if has_ci.any():
        yerr = np.vstack([mean - summary["low"].to_numpy(), summary["high"].to_numpy() - mean])
        ax.errorbar(
            x[has_ci],
            mean[has_ci],
            yerr=yerr[:, has_ci],
            fmt="none",
            ecolor="0.15",
            elinewidth=1.2,
            capsize=4,
            label="95% t CI over seeds (not clipped)",
        )
    if per_seed is not None:
        for i, seed in enumerate(per_seed.index):
            offsets = (i - (len(per_seed) - 1) / 2) * 0.08
            ax.plot(
                x + offsets,
                per_seed.loc[seed, classes].to_numpy(),
                "o",
                markersize=3,
                color=colours[1],
                label="per seed" if i == 0 else None,
            )
    n = int(summary["n"].max()) if len(summary) else 0
    ax.set_xticks(x, classes, rotation=30, ha="right")
    unclipped_ylim(ax, summary["low"].to_numpy(float), summary["high"].to_numpy(float))
    ax.set_ylabel("test accuracy")
    ax.grid(axis="x", visible=False)
    ax.legend(ncols=3, loc="upper center", bbox_to_anchor=(0.5, 1.13))
    fig.suptitle(title or f"Per-class test accuracy over {n} seed{'s' if n != 1 else ''}")
    return fig


@styled
def mistake_gallery(
    rows: Mapping[str, tuple[np.ndarray, pd.DataFrame]],
    class_names: Sequence[str],
    title: str | None = None,
    max_cols: int | None = None,
) -> Figure:
    """Galleries of confident mistakes: one labelled row per entry of ``rows``.

    Each value is ``(images, mistakes)``: the images (``(n, H, W, 3)`` uint8, e.g.
    ``x_test[mistakes.index]``) and the table from
    :func:`cifarkit.evaluation.metrics.confident_mistakes` that selected them; each image is
    captioned ``true → predicted`` and the confidence. A single row of many images wraps
    at ``max_cols``. Drawn as one mosaic on one axes, pixel for pixel, across the figure's width.
    """
    cells: list[tuple[str, list[tuple[np.ndarray, str]]]] = []
    for label, (images, mistakes) in rows.items():
        items = [
            (
                np.asarray(img),
                f"{class_names[int(r.true)]}→{class_names[int(r.predicted)]}\n{r.confidence:.2f}",
            )
            for img, r in zip(images, mistakes.itertuples(), strict=True)
        ]
        if max_cols and len(items) > max_cols:
            for start in range(0, len(items), max_cols):
                cells.append((label if start == 0 else "", items[start : start + max_cols]))
        else:
            cells.append((label, items))
    n_rows = max(len(cells), 1)
    n_cols = max((len(items) for _, items in cells), default=1) or 1
    h, w = 32, 32
    for _, items in cells:
        if items:
            h, w = items[0][0].shape[:2]
            break
    gap_x, gap_y = max(w // 8, 3), int(h * 0.55)
    mosaic = np.full((n_rows * (h + gap_y), n_cols * (w + gap_x) - gap_x, 3), 255, np.uint8)
    cell_inches = (FIGURE_WIDTH - 1.3) / n_cols
    fig, ax = new_figure(height=0.5 + n_rows * cell_inches * (h + gap_y) / h * 0.8)
    for r, (_, items) in enumerate(cells):
        for c, (img, _) in enumerate(items):
            top, left = r * (h + gap_y), c * (w + gap_x)
            mosaic[top : top + h, left : left + w] = img
    ax.imshow(mosaic, interpolation="nearest", vmin=0, vmax=255)
    for r, (_, items) in enumerate(cells):
        for c, (_, caption) in enumerate(items):
            ax.text(
                c * (w + gap_x) + (w - 1) / 2,
                r * (h + gap_y) + h + 0.5,
                caption,
                ha="center",
                va="top",
                fontsize=TINY_FONT_SIZE,
                linespacing=1.0,
            )
        if not items:
            ax.text(
                0,
                r * (h + gap_y) + h / 2,
                "no mistakes",
                va="center",
                fontsize=TINY_FONT_SIZE,
                color="0.4",
            )
    ax.set_yticks(
        [r * (h + gap_y) + (h - 1) / 2 for r in range(len(cells))], [label for label, _ in cells]
    )
    bare_image_axes(ax, title)
    return fig
