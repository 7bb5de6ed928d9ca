"""Interpretability: attribution maps (tf-keras-vis), their aggregates and their faithfulness.

* :mod:`~cifarkit.interpret.cams` — the map methods, layer choice by name, batching;
* :mod:`~cifarkit.interpret.faithfulness` — deletion/insertion AUC, Average Drop /
  Increase in Confidence, the parameter-randomisation check, random baselines, sentences;
* :mod:`~cifarkit.interpret.aggregate` — class-mean maps, attention statistics per class,
  vehicles vs animals;
* :mod:`~cifarkit.interpret.mistakes` — predicted- vs true-class maps for confused pairs;
* :mod:`~cifarkit.interpret.snapshots` — maps and faithfulness over training epochs;
* :mod:`~cifarkit.interpret.plots` — the figures (drawing only).
"""

from cifarkit.interpret.cams import (
    CAM_METHODS,
    FUSED,
    METHOD_LABELS,
    METHODS,
    PIXEL_METHODS,
    Explainer,
    last_layer,
    layer_resolution,
    normalise_maps,
    target_layers,
)

__all__ = [
    "CAM_METHODS",
    "FUSED",
    "METHODS",
    "METHOD_LABELS",
    "PIXEL_METHODS",
    "Explainer",
    "last_layer",
    "layer_resolution",
    "normalise_maps",
    "target_layers",
]
