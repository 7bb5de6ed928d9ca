"""The figures' shared style and helpers.

Rules every plot in :mod:`cifarkit.plots` follows:

* compute nothing that is a result: take tables/arrays from :mod:`cifarkit.data.statistics`,
  :mod:`cifarkit.evaluation`, :mod:`cifarkit.interpret` ... and draw them;
* never ``show`` or ``save``: the caller (a notebook, the CLI) decides;
* build figures with the object-oriented API (``Figure()``, no ``pyplot``), so nothing is
  registered in pyplot's global figure list, nothing needs a GUI backend, figures are
  freed when dropped, and a notebook never shows a figure twice. Rendering to PNG/SVG
  uses the Agg canvas, whatever backend is active;
* one style (:func:`apply_style`, seaborn's colour-blind palette) applied by every
  function, and no randomness: the same input draws the same figure.
"""

from __future__ import annotations

from typing import Any

import matplotlib as mpl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

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


def apply_style() -> None:
    """Apply cifarkit's plot style to matplotlib's global rcParams (idempotent).

    Every plotting function also draws inside :func:`_styled`, so calling this is only
    needed for figures made outside this module.
    """
    mpl.rcParams.update(_rc())


def _rc() -> dict[str, Any]:
    from cycler import cycler

    return {**_STYLE, "axes.prop_cycle": cycler(color=palette())}


def new_figure(*, width: float, height: float, **subplots: Any) -> tuple[Figure, Any]:
    """A new styled Figure with an Agg canvas and its axes."""
    with mpl.rc_context(_rc()):
        fig = Figure(figsize=(width, height), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(**subplots) if subplots else fig.add_subplot()
    return fig, axes


def styled(func):
    """Run a plotting function with the style active (rcParams read at draw time too)."""
    import functools

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with mpl.rc_context(_rc()):
            return func(*args, **kwargs)

    return wrapper


def bare_image_axes(ax: Any, title: str | None) -> None:
    """Mosaic axes: row labels only, no x ticks, grid or frame."""
    ax.set_xticks([])
    ax.tick_params(axis="y", length=0)
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title)


def to_png_bytes(fig: Figure, dpi: int | None = None) -> bytes:
    """Render a figure to PNG bytes with the Agg canvas (for tests and the CLI)."""
    import io

    buf = io.BytesIO()
    FigureCanvasAgg(fig)
    with mpl.rc_context(_rc()):
        fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()
