"""The values the report's Markdown pages quote, handed to Sphinx as MyST substitutions.

A Markdown page (``book/how_to_read.md``) is not executed, so it cannot glue numbers the way
a chapter does; instead it writes ``{{ min_seeds }}``, and this Sphinx extension (listed
under ``sphinx.extra_extensions`` in ``_config.yml``) fills in the value from the module
that defines it when the site is built. A page that names a value missing here fails the
strict site build.
"""

from __future__ import annotations

from typing import Any


def substitutions() -> dict[str, str]:
    """Name → text of every value a Markdown page may quote: the verdict rule's thresholds
    (:mod:`cifarkit.evaluation.stats`) and the measured cost of the JPEG copy of the data
    (:data:`cifarkit.data.statistics.JPEG_OFFSET`)."""
    from cifarkit.data import statistics as datastats
    from cifarkit.evaluation import stats

    return {
        "confidence": f"{stats.CONFIDENCE:.0%}",
        "min_seeds": str(stats.MIN_SEEDS_FOR_CLAIM),
        "min_seeds_decisive": str(stats.MIN_SEEDS_DECISIVE),
        "decisive_p": f"{stats.DECISIVE_P:g}",
        "min_seeds_band": str(stats.MIN_SEEDS_FOR_BAND),
        "equivalence_margin": f"{stats.EQUIVALENCE_MARGIN * 100:g} points",
        "jpeg_offset": datastats.JPEG_OFFSET,
    }


def _add_substitutions(app: Any, config: Any) -> None:
    """``config-inited``: the values of :func:`substitutions`, under any set in ``_config.yml``."""
    config.myst_substitutions = {**substitutions(), **dict(config.myst_substitutions or {})}


def setup(app: Any) -> dict[str, Any]:
    """Sphinx's entry point."""
    app.connect("config-inited", _add_substitutions)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
