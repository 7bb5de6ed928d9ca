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


def _bare_image_axes(ax: Any, title: str | None) -> None:
    """Mosaic axes: row labels only, no x ticks, grid or frame."""
    ax.set_xticks([])
    ax.tick_params(axis="y", length=0)
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title)


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
    _bare_image_axes(ax, title)
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


# --------------------------------------------------------------------------- evaluation figures
# Figures of cifarkit.evaluate / cifarkit.stats results (issue 4): reliability diagram,
# confusion matrix, per-class accuracy with CIs over seeds, seed-averaged curves, galleries.


@_styled
def reliability_diagram(tables: Mapping[str, pd.DataFrame], ece: Mapping[str, float] | None = None,
                        title: str | None = None, ece_label: str = "ECE") -> Figure:
    """One panel per reliability table (e.g. before / after temperature scaling): accuracy of
    each confidence bin against the diagonal, the gap shaded, and the share of examples per
    bin below. ``tables`` come from :func:`cifarkit.evaluate.reliability_table`."""
    names = list(tables)
    fig, axes = _figure(width=4.2 * len(names), height=4.6, nrows=2, ncols=len(names), squeeze=False,
                        height_ratios=[3, 1], sharex=True)
    colours = palette()
    for c, name in enumerate(names):
        table = tables[name]
        ax, hist = axes[0, c], axes[1, c]
        width = (table["high"] - table["low"]).to_numpy()
        centre = ((table["low"] + table["high"]) / 2).to_numpy()
        acc = table["accuracy"].fillna(0).to_numpy()
        conf = table["confidence"].to_numpy()
        used = table["count"].to_numpy() > 0
        ax.bar(centre[used], acc[used], width[used], color=colours[0], edgecolor="white", linewidth=0.5,
               label="accuracy")
        ax.bar(centre[used], (conf - acc)[used], width[used], bottom=acc[used], color=colours[3],
               alpha=0.35, edgecolor=colours[3], linewidth=0.5, hatch="//", label="gap to confidence")
        ax.plot([0, 1], [0, 1], color="0.3", linestyle="--", linewidth=1, label="perfect calibration")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        label = name if ece is None or name not in ece else f"{name}  ({ece_label} {ece[name] * 100:.1f}%)"
        ax.set_title(label)
        ax.set_ylabel("accuracy")
        share = table["count"].to_numpy() / max(int(table["count"].sum()), 1)
        hist.bar(centre, share, width, color=colours[7], edgecolor="white", linewidth=0.5)
        hist.set_xlabel("confidence (top probability)")
        hist.set_ylabel("share")
    axes[0, 0].legend(loc="upper left", fontsize="small")
    if title:
        fig.suptitle(title)
    return fig


@_styled
def confusion_matrix_figure(normalised: np.ndarray, class_names: Sequence[str],
                            counts: np.ndarray | None = None, title: str | None = None) -> Figure:
    """Row-normalised confusion matrix (rows: true class) as a heat map, each cell labelled
    with its percentage (and, if given, its count)."""
    matrix = np.asarray(normalised, np.float64)
    k = len(class_names)
    fig, ax = _figure(width=1.6 + 0.62 * k, height=1.2 + 0.55 * k)
    image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    for i in range(k):
        for j in range(k):
            text = f"{matrix[i, j] * 100:.0f}" if counts is None else f"{matrix[i, j] * 100:.0f}\n({int(counts[i, j])})"
            ax.text(j, i, text, ha="center", va="center", fontsize=7 if counts is None else 6,
                    color="white" if matrix[i, j] > 0.55 else "0.15")
    ax.set_xticks(range(k), [str(c) for c in class_names], rotation=45, ha="right")
    ax.set_yticks(range(k), [str(c) for c in class_names])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.grid(False)
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of the true class")
    ax.set_title(title or "Confusion matrix (row-normalised, %)")
    return fig


@_styled
def per_class_accuracy_bars(summary: pd.DataFrame, per_seed: pd.DataFrame | None = None,
                            title: str | None = None) -> Figure:
    """Per-class accuracy: the mean over seeds as bars with their confidence interval
    (``summary`` from :func:`cifarkit.stats.per_class_summary`), each seed as a dot."""
    classes = [str(c) for c in summary.index]
    x = np.arange(len(classes))
    mean = summary["mean"].to_numpy()
    fig, ax = _figure(width=8.5, height=3.8)
    colours = palette()
    ax.bar(x, mean, 0.7, color=colours[0], label="mean over seeds")
    has_ci = summary["low"].notna().to_numpy()
    if has_ci.any():
        yerr = np.vstack([mean - summary["low"].to_numpy(), summary["high"].to_numpy() - mean])
        ax.errorbar(x[has_ci], mean[has_ci], yerr=yerr[:, has_ci], fmt="none", ecolor="0.15",
                    elinewidth=1.2, capsize=4, label="95% CI")
    if per_seed is not None:
        for i, seed in enumerate(per_seed.index):
            offsets = (i - (len(per_seed) - 1) / 2) * 0.08
            ax.plot(x + offsets, per_seed.loc[seed, classes].to_numpy(), "o", markersize=3,
                    color=colours[1], label="per seed" if i == 0 else None)
    n = int(summary["n"].max()) if len(summary) else 0
    ax.set_xticks(x, classes, rotation=30, ha="right")
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("test accuracy")
    ax.grid(axis="x", visible=False)
    ax.legend(ncols=3, loc="upper center", bbox_to_anchor=(0.5, 1.13))
    fig.suptitle(title or f"Per-class test accuracy over {n} seed{'s' if n != 1 else ''}")
    return fig


def _band(ax: Any, curve: pd.DataFrame, colour: Any, label: str, linestyle: str = "-") -> None:
    epochs = curve.index.to_numpy()
    ax.plot(epochs, curve["mean"].to_numpy(), color=colour, label=label, linestyle=linestyle, marker="o",
            markersize=3)
    if curve["low"].notna().any():
        ax.fill_between(epochs, curve["low"].to_numpy(), curve["high"].to_numpy(), color=colour, alpha=0.2,
                        linewidth=0)


@_styled
def seed_curves(curves: Mapping[str, pd.DataFrame], title: str | None = None) -> Figure:
    """Loss and accuracy per epoch, mean over seeds with a 95% band, training vs validation.

    ``curves`` maps history columns (``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``)
    to :func:`cifarkit.stats.curve_summary` tables.
    """
    from matplotlib.ticker import MaxNLocator

    fig, axes = _figure(width=9.0, height=3.6, ncols=2)
    colours = split_colours()
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        if metric in curves:
            _band(ax, curves[metric], colours["train"], "train")
        if f"val_{metric}" in curves:
            _band(ax, curves[f"val_{metric}"], colours["val"], "validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[1].legend()
    n = max((int(c["n"].max()) for c in curves.values() if len(c)), default=0)
    fig.suptitle(title or f"Training curves: mean over {n} seed{'s' if n != 1 else ''}, 95% band")
    return fig


@_styled
def per_class_seed_curves(curves: Mapping[str, pd.DataFrame], title: str | None = None,
                          ncols: int = 5) -> Figure:
    """Validation accuracy of each class per epoch: one small panel per class (shared axes),
    the mean over seeds with its 95% band, and every other class's mean in grey for context.

    ``curves`` maps class name to :func:`cifarkit.stats.curve_summary` of ``val_acc_<class>``.
    """
    from matplotlib.ticker import MaxNLocator

    names = list(curves)
    nrows = max(1, -(-len(names) // ncols))
    fig, axes = _figure(width=2.2 * ncols, height=1.9 * nrows + 0.5, nrows=nrows, ncols=ncols,
                        sharex=True, sharey=True, squeeze=False)
    colours = palette(len(names))
    for i, ax in enumerate(axes.flat):
        if i >= len(names):
            ax.set_visible(False)
            continue
        for other in names:
            if other != names[i]:
                ax.plot(curves[other].index.to_numpy(), curves[other]["mean"].to_numpy(), color="0.8",
                        linewidth=0.8)
        _band(ax, curves[names[i]], colours[i], names[i])
        ax.set_title(names[i], fontsize=10)
        ax.set_ylim(0, 1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if i % ncols == 0:
            ax.set_ylabel("val accuracy")
        if i // ncols == nrows - 1:
            ax.set_xlabel("epoch")
    n = max((int(c["n"].max()) for c in curves.values() if len(c)), default=0)
    fig.suptitle(title or f"Per-class validation accuracy (mean over {n} seed{'s' if n != 1 else ''}, 95% band)")
    return fig


@_styled
def mistake_gallery(rows: Mapping[str, tuple[np.ndarray, pd.DataFrame]], class_names: Sequence[str],
                    title: str | None = None, cell_inches: float = 0.95, max_cols: int | None = None) -> Figure:
    """Galleries of confident mistakes: one labelled row per entry of ``rows``.

    Each value is ``(images, mistakes)``: the images (``(n, H, W, 3)`` uint8, e.g.
    ``x_test[mistakes.index]``) and the table from
    :func:`cifarkit.evaluate.confident_mistakes` that selected them; each image is
    captioned ``true → predicted`` and the confidence. A single row of many images wraps
    at ``max_cols``. Drawn as one mosaic on one axes, pixel for pixel.
    """
    cells: list[tuple[str, list[tuple[np.ndarray, str]]]] = []
    for label, (images, mistakes) in rows.items():
        items = [(np.asarray(img), f"{class_names[int(r.true)]}→{class_names[int(r.predicted)]}\n{r.confidence:.2f}")
                 for img, r in zip(images, mistakes.itertuples(), strict=True)]
        if max_cols and len(items) > max_cols:
            for start in range(0, len(items), max_cols):
                cells.append((label if start == 0 else "", items[start:start + max_cols]))
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
    fig, ax = _figure(width=1.3 + n_cols * cell_inches, height=0.5 + n_rows * cell_inches * (h + gap_y) / h * 0.8)
    for r, (_, items) in enumerate(cells):
        for c, (img, _) in enumerate(items):
            top, left = r * (h + gap_y), c * (w + gap_x)
            mosaic[top:top + h, left:left + w] = img
    ax.imshow(mosaic, interpolation="nearest", vmin=0, vmax=255)
    for r, (_, items) in enumerate(cells):
        for c, (_, caption) in enumerate(items):
            ax.text(c * (w + gap_x) + (w - 1) / 2, r * (h + gap_y) + h + 0.5, caption, ha="center", va="top",
                    fontsize=6, linespacing=1.0)
        if not items:
            ax.text(0, r * (h + gap_y) + h / 2, "no mistakes", va="center", fontsize=7, color="0.4")
    ax.set_yticks([r * (h + gap_y) + (h - 1) / 2 for r in range(len(cells))], [label for label, _ in cells])
    _bare_image_axes(ax, title)
    return fig


# --------------------------------------------------------------------------- helpers


# --------------------------------------------------------------------------- comparisons


@_styled
def comparison_forest(rows: pd.DataFrame, title: str | None = None, scale: float = 100.0,
                      unit: str = "points of test accuracy") -> Figure:
    """Differences to each group's reference with their 95% CI, one line per variant.

    ``rows`` has columns ``group``, ``variant``, ``mean_diff``, ``low``, ``high`` and
    ``per_seed`` (a sequence of per-seed differences, drawn as dots). Groups are drawn top
    to bottom in order; a line at zero marks "no difference".
    """
    n = len(rows)
    fig, ax = _figure(width=8.5, height=0.9 + 0.42 * max(n, 1))
    colours = palette()
    groups = list(dict.fromkeys(rows["group"]))
    y_labels = []
    for i, row in enumerate(rows.itertuples()):
        y = n - 1 - i
        colour = colours[groups.index(row.group) % len(colours)]
        if pd.notna(row.low):
            ax.errorbar(row.mean_diff * scale, y, xerr=[[(row.mean_diff - row.low) * scale],
                                                        [(row.high - row.mean_diff) * scale]],
                        fmt="o", color=colour, ecolor=colour, capsize=4, markersize=6)
        else:
            ax.plot(row.mean_diff * scale, y, "o", color=colour, markersize=6)
        seeds = np.asarray(list(row.per_seed), float) * scale
        ax.plot(seeds, np.full(len(seeds), y - 0.18), "|", color=colour, markersize=7, alpha=0.8)
        y_labels.append(f"{row.group}: {row.variant}")
    ax.axvline(0, color="0.3", linewidth=1, linestyle="--")
    ax.set_yticks(np.arange(n)[::-1], y_labels)
    ax.set_ylim(-0.8, n - 0.4)
    ax.set_xlabel(f"difference to the group's reference ({unit}); bars: 95% CI, ticks: seeds")
    ax.grid(axis="y", visible=False)
    fig.suptitle(title or "Ablations: change against the reference recipe")
    return fig


@_styled
def ladder_figure(steps: Sequence[str], summary: pd.DataFrame, per_seed: pd.DataFrame,
                  minutes: Mapping[str, float], title: str | None = None, scale: float = 100.0) -> Figure:
    """The ablation ladder: test accuracy per step (mean, 95% CI, seeds as ticks) beside the
    training minutes per run; steps without runs are listed and left empty."""
    n = len(steps)
    fig, (acc_ax, time_ax) = _figure(width=9.5, height=1.0 + 0.42 * max(n, 1), ncols=2, sharey=True,
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


@_styled
def per_class_comparison_bars(summaries: Mapping[str, pd.DataFrame], title: str | None = None) -> Figure:
    """Per-class test accuracy of several models side by side, mean over seeds with 95% CI.

    ``summaries`` maps a model label to :func:`cifarkit.stats.per_class_summary` output.
    """
    labels = list(summaries)
    classes = [str(c) for c in next(iter(summaries.values())).index]
    x = np.arange(len(classes))
    width = 0.8 / max(len(labels), 1)
    fig, ax = _figure(width=9.0, height=3.8)
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
    ax.set_xticks(x, classes, rotation=30, ha="right")
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("test accuracy")
    ax.grid(axis="x", visible=False)
    ax.legend(ncols=len(labels), loc="upper center", bbox_to_anchor=(0.5, 1.13))
    fig.suptitle(title or "Per-class test accuracy (mean over seeds, 95% CI)")
    return fig


def to_png_bytes(fig: Figure, dpi: int | None = None) -> bytes:
    """Render a figure to PNG bytes with the Agg canvas (for tests and the CLI)."""
    import io

    buf = io.BytesIO()
    FigureCanvasAgg(fig)
    with mpl.rc_context(_rc()):
        fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()
