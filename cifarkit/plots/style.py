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
  function, and no randomness: the same input draws the same figure;
* one size: every figure is :data:`FIGURE_WIDTH` inches wide (:func:`new_figure`'s
  default), the width of the report's text column, and the site's stylesheet draws each
  figure across that column, so the fonts of :data:`_STYLE` read at the same size in every
  figure, close to the size of the text around them;
* one colour per model family (:func:`model_colour`): the baseline CNN, the ResNets,
  airbench and the ImageNet backbones keep their colour from figure to figure.
"""

from __future__ import annotations

from typing import Any

import matplotlib as mpl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

PALETTE_NAME = "colorblind"
SPLIT_ORDER: tuple[str, ...] = ("train", "val", "test")
CHANNEL_NAMES: tuple[str, ...] = ("red", "green", "blue")

#: Width of every figure (inches). The report's text column is about 690 CSS pixels wide
#: in a 1280-pixel window and the site draws each figure at the column's width, so one
#: point of a figure's font is about 1.4 pixels on screen: its 10-point text reads like
#: the 14-pixel text beside it.
FIGURE_WIDTH = 7.0
#: Pixels per inch of a figure as a notebook embeds it: 1.5 times the column's pixels, so a
#: figure stays sharp on high-density screens.
FIGURE_DPI = 150
#: Font sizes (points) at :data:`FIGURE_WIDTH`: text and labels, ticks and legends, and the
#: smallest text any figure uses (captions inside image mosaics, cell labels).
FONT_SIZE = 10.0
SMALL_FONT_SIZE = 9.0
TINY_FONT_SIZE = 7.5

#: Model families and their palette index: every figure colours a model by its family.
MODEL_FAMILIES: tuple[tuple[str, str, int], ...] = (
    # (family, substring of a model or variant label, palette index)
    ("baseline CNN", "cnn", 0),
    ("ResNet", "resnet", 1),
    ("airbench", "airbench", 2),
    ("EfficientNet", "efficientnet", 4),
    ("MobileNet", "mobilenet", 3),
)

_STYLE: dict[str, Any] = {
    "figure.dpi": FIGURE_DPI,
    "savefig.dpi": FIGURE_DPI,
    "savefig.bbox": "tight",
    "font.size": FONT_SIZE,
    "axes.titlesize": FONT_SIZE,
    "axes.labelsize": FONT_SIZE,
    "xtick.labelsize": SMALL_FONT_SIZE,
    "ytick.labelsize": SMALL_FONT_SIZE,
    "legend.fontsize": SMALL_FONT_SIZE,
    "figure.titlesize": FONT_SIZE + 1,
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


def model_family(label: str) -> str | None:
    """The family of a model or variant label (``"ResNet20, no augmentation"`` → ``"ResNet"``),
    or None when it names none of :data:`MODEL_FAMILIES`."""
    text = label.lower().replace(" ", "").replace("_", "")
    for family, needle, _ in MODEL_FAMILIES:
        if needle in text:
            return family
    return None


def model_colour(label: str) -> tuple[float, float, float]:
    """The colour of a model's family (:data:`MODEL_FAMILIES`), the same in every figure;
    grey for a label that names no family."""
    family = model_family(label)
    for name, _, index in MODEL_FAMILIES:
        if name == family:
            return palette()[index]
    return (0.45, 0.45, 0.45)


def apply_style() -> None:
    """Apply cifarkit's plot style to matplotlib's global rcParams (idempotent).

    Every plotting function also draws inside :func:`_styled`, so calling this is only
    needed for figures made outside this module.
    """
    mpl.rcParams.update(_rc())


def _rc() -> dict[str, Any]:
    from cycler import cycler

    return {**_STYLE, "axes.prop_cycle": cycler(color=palette())}


def new_figure(
    *, height: float, width: float = FIGURE_WIDTH, **subplots: Any
) -> tuple[Figure, Any]:
    """A new styled Figure with an Agg canvas and its axes, :data:`FIGURE_WIDTH` wide unless
    ``width`` says otherwise (figures for the report keep the default)."""
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
