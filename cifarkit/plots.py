"""Figures for the report: each function returns a :class:`matplotlib.figure.Figure`.

Rules every plot here follows (later figures too):

* compute nothing that is a result: take tables/arrays from :mod:`cifarkit.datastats`,
  ``evaluate``, ``interpret`` ... and draw them;
* never ``show`` or ``save``: the caller (a notebook, the CLI) decides;
* build figures with the object-oriented API (``Figure()``, no ``pyplot``), so nothing is
  registered in pyplot's global figure list, nothing needs a GUI backend, figures are
  freed when dropped, and a notebook never shows a figure twice. Rendering to PNG/SVG
  uses the Agg canvas, whatever backend is active;
* one style (:func:`apply_style`, seaborn's colour-blind palette) applied by every
  function, and no randomness: the same input draws the same figure.

Sections: style; data figures. Training and evaluation figures go below them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# --------------------------------------------------------------------------- style

PALETTE_NAME = "colorblind"
SPLIT_ORDER: tuple[str, ...] = ("train", "val", "test")
CHANNEL_NAMES: tuple[str, ...] = ("red", "green", "blue")

_STYLE: dict[str, Any] = {
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.frameon": False,
    "image.interpolation": "nearest",
    "svg.hashsalt": "cifarkit",  # deterministic SVG ids
}


def palette(n: int | None = None) -> list[tuple[float, float, float]]:
    """The colour-blind-safe palette (seaborn ``colorblind``) as RGB tuples."""
    import seaborn as sns

    colours = sns.color_palette(PALETTE_NAME)
    if n is None:
        return list(colours)
    return [colours[i % len(colours)] for i in range(n)]


def split_colours() -> dict[str, tuple[float, float, float]]:
    """The colour of each split, the same in every figure."""
    return dict(zip(SPLIT_ORDER, palette(3), strict=True))


def channel_colours() -> dict[str, tuple[float, float, float]]:
    """Colours for the red/green/blue channels, taken from the colour-blind palette."""
    cb = palette(10)
    return {"red": cb[3], "green": cb[2], "blue": cb[0]}


def apply_style() -> None:
    """Apply cifarkit's plot style to matplotlib's global rcParams (idempotent).

    Every plotting function also draws inside :func:`_styled`, so calling this is only
    needed for figures made outside this module.
    """
    mpl.rcParams.update(_rc())


def _rc() -> dict[str, Any]:
    from cycler import cycler

    return {**_STYLE, "axes.prop_cycle": cycler(color=palette())}


def _figure(*, width: float, height: float, **subplots: Any) -> tuple[Figure, Any]:
    """A new styled Figure with an Agg canvas and its axes."""
    with mpl.rc_context(_rc()):
        fig = Figure(figsize=(width, height), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(**subplots) if subplots else fig.add_subplot()
    return fig, axes


def _styled(func):
    """Run a plotting function with the style active (rcParams read at draw time too)."""
    import functools

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with mpl.rc_context(_rc()):
            return func(*args, **kwargs)

    return wrapper


# --------------------------------------------------------------------------- data figures


@_styled
def class_balance_bars(balance: pd.DataFrame, title: str | None = None) -> Figure:
    """Grouped bars: images per class for each split.

    ``balance`` is :func:`cifarkit.datastats.class_balance` (a ``total`` row is ignored).
    """
    table = balance.drop(index="total", errors="ignore")
    splits = [s for s in SPLIT_ORDER if s in table.columns]
    classes = [str(c) for c in table.index]
    fig, ax = _figure(width=9, height=3.6)
    colours = split_colours()
    width = 0.8 / max(len(splits), 1)
    x = np.arange(len(classes))
    for i, split in enumerate(splits):
        ax.bar(x + (i - (len(splits) - 1) / 2) * width, table[split].to_numpy(), width,
               label=f"{split} ({int(table[split].sum()):,})", color=colours[split])
    ax.set_xticks(x, classes, rotation=30, ha="right")
    ax.set_ylabel("images")
    ax.grid(axis="x", visible=False)
    ax.legend(ncols=len(splits), loc="upper center", bbox_to_anchor=(0.5, 1.12))
    if title:
        fig.suptitle(title)
    return fig


@_styled
def sample_grid(images: np.ndarray, class_names: Sequence[str], title: str | None = None,
                cell_inches: float = 0.6, gap: int = 2) -> Figure:
    """A grid of images: one row per class (labelled), ``per_class`` columns.

    ``images`` has shape ``(classes, per_class, H, W, 3)`` (uint8), e.g. from
    :func:`cifarkit.datastats.sample_images`. The images are tiled into one mosaic with
    ``gap`` white pixels between them and drawn pixel for pixel
    (``interpolation="nearest"``), without smoothing; one axes keeps it fast.
    """
    images = np.asarray(images)
    if images.ndim != 5 or images.shape[-1] != 3:
        raise ValueError(f"expected images of shape (classes, per_class, H, W, 3), got {images.shape}")
    n_rows, n_cols, h, w = images.shape[:4]
    if len(class_names) != n_rows:
        raise ValueError(f"{len(class_names)} class names for {n_rows} rows of images")
    mosaic = np.full((n_rows * (h + gap) - gap, n_cols * (w + gap) - gap, 3), 255, dtype=np.uint8)
    for r in range(n_rows):
        for c in range(n_cols):
            top, left = r * (h + gap), c * (w + gap)
            mosaic[top:top + h, left:left + w] = images[r, c]
    fig, ax = _figure(width=1.2 + n_cols * cell_inches, height=0.3 + n_rows * cell_inches)
    ax.imshow(mosaic, interpolation="nearest", vmin=0, vmax=255)
    ax.set_yticks([r * (h + gap) + (h - 1) / 2 for r in range(n_rows)],
                  [str(name) for name in class_names])
    ax.set_xticks([])
    ax.tick_params(axis="y", length=0)
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title)
    return fig


@_styled
def channel_histograms(histograms: Mapping[str, np.ndarray], title: str | None = None,
                       density: bool = True) -> Figure:
    """Pixel-intensity distributions: one panel per channel, one line per split.

    ``histograms`` maps split name to a ``(3, 256)`` count array, e.g.
    :func:`cifarkit.datastats.split_histograms`. With ``density`` each line is the share
    of that split's pixels at each value, so splits of different sizes compare directly.
    """
    fig, axes = _figure(width=10, height=3.2, nrows=1, ncols=3, sharey=True, squeeze=False)
    colours = split_colours()
    order = [s for s in SPLIT_ORDER if s in histograms] + [s for s in histograms if s not in SPLIT_ORDER]
    for c, channel in enumerate(CHANNEL_NAMES):
        ax = axes[0, c]
        for split in order:
            counts = np.asarray(histograms[split])[c].astype(np.float64)
            values = counts / counts.sum() if density and counts.sum() else counts
            ax.plot(np.arange(len(values)), values, label=split,
                    color=colours.get(split), linewidth=1.2, drawstyle="steps-mid")
        ax.set_title(channel)
        ax.set_xlim(0, 255)
        ax.set_xticks([0, 64, 128, 192, 255])
        ax.set_xlabel("pixel value")
    axes[0, 0].set_ylabel("share of pixels" if density else "pixels")
    axes[0, -1].legend()
    if title:
        fig.suptitle(title)
    return fig


# --------------------------------------------------------------------------- training figures


@_styled
def lr_finder_figure(result: Any, title: str | None = None) -> Figure:
    """Loss against learning rate (log axis) from :func:`cifarkit.lrfind.lr_find`, with the suggestions."""
    fig, ax = _figure(width=6.4, height=4.0)
    lrs = np.asarray(result.lrs)
    ax.plot(lrs, result.losses, alpha=0.3, label="per-batch loss")
    ax.plot(lrs, result.smoothed, label="smoothed loss")
    ax.axvline(result.suggested_lr, color=palette()[2], linestyle="--",
               label=f"steepest descent: {result.suggested_lr:.2g}")
    ax.axvline(result.min_loss_lr_over_10, color=palette()[3], linestyle=":",
               label=f"minimum / 10: {result.min_loss_lr_over_10:.2g}")
    ax.set_xscale("log")
    smoothed = np.asarray(result.smoothed)
    ax.set_ylim(smoothed.min() - 0.1 * abs(smoothed.min()), min(smoothed.max(), 2.5 * smoothed[0]))
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.legend()
    ax.set_title(title or "Learning-rate range test")
    return fig


@_styled
def training_curves(history: Sequence[Mapping[str, float]], title: str | None = None) -> Figure:
    """Loss and accuracy per epoch, training against validation."""
    fig, axes = _figure(width=9.0, height=3.6, ncols=2)
    epochs = [row["epoch"] for row in history]
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        ax.plot(epochs, [row.get(metric, np.nan) for row in history], marker="o", label="train")
        ax.plot(epochs, [row.get(f"val_{metric}", np.nan) for row in history], marker="o", label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
    axes[1].legend()
    if title:
        fig.suptitle(title)
    return fig


@_styled
def per_class_curves(history: Sequence[Mapping[str, float]], class_names: Sequence[str],
                     title: str | None = None) -> Figure:
    """Validation accuracy of each class per epoch (from the ``val_acc_<class>`` history columns)."""
    fig, ax = _figure(width=7.0, height=4.2)
    epochs = [row["epoch"] for row in history]
    colours = palette(len(class_names))
    for colour, name in zip(colours, class_names, strict=True):
        ax.plot(epochs, [row.get(f"val_acc_{name}", np.nan) for row in history], color=colour, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    ax.legend(ncols=2, fontsize="small")
    ax.set_title(title or "Per-class validation accuracy")
    return fig


# --------------------------------------------------------------------------- helpers


def to_png_bytes(fig: Figure, dpi: int | None = None) -> bytes:
    """Render a figure to PNG bytes with the Agg canvas (for tests and the CLI)."""
    import io

    buf = io.BytesIO()
    FigureCanvasAgg(fig)
    with mpl.rc_context(_rc()):
        fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()
