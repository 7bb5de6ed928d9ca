"""Figures of the data chapter: class balance, sample images, channel histograms."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from cifarkit.plots.style import (
    CHANNEL_NAMES,
    FIGURE_WIDTH,
    SPLIT_ORDER,
    bare_image_axes,
    new_figure,
    split_colours,
    styled,
)


@styled
def class_balance_bars(balance: pd.DataFrame, title: str | None = None) -> Figure:
    """Grouped bars: images per class for each split.

    ``balance`` is :func:`cifarkit.data.statistics.class_balance` (a ``total`` row is ignored).
    """
    table = balance.drop(index="total", errors="ignore")
    splits = [s for s in SPLIT_ORDER if s in table.columns]
    classes = [str(c) for c in table.index]
    fig, ax = new_figure(height=3.4)
    colours = split_colours()
    width = 0.8 / max(len(splits), 1)
    x = np.arange(len(classes))
    for i, split in enumerate(splits):
        ax.bar(
            x + (i - (len(splits) - 1) / 2) * width,
            table[split].to_numpy(),
            width,
            label=f"{split} ({int(table[split].sum()):,})",
            color=colours[split],
        )
    ax.set_xticks(x, classes, rotation=30, ha="right")
    ax.set_ylabel("images")
    ax.grid(axis="x", visible=False)
    ax.legend(ncols=len(splits), loc="upper center", bbox_to_anchor=(0.5, 1.12))
    if title:
        fig.suptitle(title)
    return fig


@styled
def sample_grid(
    images: np.ndarray, class_names: Sequence[str], title: str | None = None, gap: int = 2
) -> Figure:
    """A grid of images: one row per class (labelled), ``per_class`` columns.

    ``images`` has shape ``(classes, per_class, H, W, 3)`` (uint8), e.g. from
    :func:`cifarkit.data.statistics.sample_images`. The images are tiled into one mosaic with
    ``gap`` white pixels between them and drawn pixel for pixel
    (``interpolation="nearest"``), without smoothing; one axes keeps it fast. The grid spans
    the figure's width (:data:`~cifarkit.plots.style.FIGURE_WIDTH`).
    """
    images = np.asarray(images)
    if images.ndim != 5 or images.shape[-1] != 3:
        raise ValueError(
            f"expected images of shape (classes, per_class, H, W, 3), got {images.shape}"
        )
    n_rows, n_cols, h, w = images.shape[:4]
    if len(class_names) != n_rows:
        raise ValueError(f"{len(class_names)} class names for {n_rows} rows of images")
    mosaic = np.full((n_rows * (h + gap) - gap, n_cols * (w + gap) - gap, 3), 255, dtype=np.uint8)
    for r in range(n_rows):
        for c in range(n_cols):
            top, left = r * (h + gap), c * (w + gap)
            mosaic[top : top + h, left : left + w] = images[r, c]
    cell_inches = (FIGURE_WIDTH - 1.2) / max(n_cols, 1)
    fig, ax = new_figure(height=0.3 + n_rows * cell_inches)
    ax.imshow(mosaic, interpolation="nearest", vmin=0, vmax=255)
    ax.set_yticks(
        [r * (h + gap) + (h - 1) / 2 for r in range(n_rows)], [str(name) for name in class_names]
    )
    bare_image_axes(ax, title)
    return fig


@styled
def channel_histograms(
    histograms: Mapping[str, np.ndarray], title: str | None = None, density: bool = True
) -> Figure:
    """Pixel-intensity distributions: one panel per channel, one line per split.

    ``histograms`` maps split name to a ``(3, 256)`` count array, e.g.
    :func:`cifarkit.data.statistics.split_histograms`. With ``density`` each line is the share
    of that split's pixels at each value, so splits of different sizes compare directly.
    """
    fig, axes = new_figure(height=3.0, nrows=1, ncols=3, sharey=True, squeeze=False)
    colours = split_colours()
    order = [s for s in SPLIT_ORDER if s in histograms] + [
        s for s in histograms if s not in SPLIT_ORDER
    ]
    for c, channel in enumerate(CHANNEL_NAMES):
        ax = axes[0, c]
        for split in order:
            counts = np.asarray(histograms[split])[c].astype(np.float64)
            values = counts / counts.sum() if density and counts.sum() else counts
            ax.plot(
                np.arange(len(values)),
                values,
                label=split,
                color=colours.get(split),
                linewidth=1.2,
                drawstyle="steps-mid",
            )
        ax.set_title(channel)
        ax.set_xlim(0, 255)
        ax.set_xticks([0, 64, 128, 192, 255])
        ax.set_xlabel("pixel value")
    axes[0, 0].set_ylabel("share of pixels" if density else "pixels")
    axes[0, -1].legend()
    if title:
        fig.suptitle(title)
    return fig
