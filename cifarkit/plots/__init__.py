"""Figures: each function takes numbers (tables, arrays) and returns a matplotlib Figure.

* :mod:`~cifarkit.plots.style` — the one style, figure helpers, PNG rendering;
* :mod:`~cifarkit.plots.data` — the data chapter's figures;
* :mod:`~cifarkit.plots.training` — LR finder and training curves;
* :mod:`~cifarkit.plots.evaluation` — reliability, confusion, per-class accuracy, galleries;
* :mod:`~cifarkit.plots.comparisons` — seeds and means of a few models, effects, the ladder,
  per-class differences;
* :mod:`~cifarkit.plots.maps` — attribution maps and faithfulness curves;
* :mod:`~cifarkit.plots.report` — every figure of a multi-seed report, and its folder.

The figure functions of the first five are importable from this package directly.
"""

from cifarkit.plots.comparisons import (
    accuracy_vs_size_figure,
    comparison_forest,
    ladder_figure,
    per_class_comparison_bars,
    seed_comparison,
)
from cifarkit.plots.data import (
    channel_histograms,
    class_balance_bars,
    sample_grid,
)
from cifarkit.plots.evaluation import (
    confusion_matrix_figure,
    mistake_gallery,
    per_class_accuracy_bars,
    reliability_diagram,
)
from cifarkit.plots.style import (
    apply_style,
    palette,
    split_colours,
    to_png_bytes,
)
from cifarkit.plots.training import (
    lr_finder_figure,
    per_class_seed_curves,
    seed_curves,
)

__all__ = [
    "accuracy_vs_size_figure",
    "apply_style",
    "channel_histograms",
    "class_balance_bars",
    "comparison_forest",
    "confusion_matrix_figure",
    "ladder_figure",
    "lr_finder_figure",
    "mistake_gallery",
    "palette",
    "per_class_accuracy_bars",
    "per_class_comparison_bars",
    "per_class_seed_curves",
    "reliability_diagram",
    "sample_grid",
    "seed_comparison",
    "seed_curves",
    "split_colours",
    "to_png_bytes",
]
