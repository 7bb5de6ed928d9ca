"""Model families and the registry that builds them by name.

``cnn`` (the baseline), ``resnet`` (CIFAR ResNets), ``airbench`` (the fast-training net
and its data-dependent initialisation) and ``backbones`` (keras.applications for
transfer) each define their layers and builder; :mod:`~cifarkit.models.registry` maps a
config's ``model.name`` to a builder and holds the one :func:`load_model`.
"""

from cifarkit.models.registry import (
    MODELS,
    build_model,
    count_params,
    float32_model,
    init_from_data,
    load_model,
    predict_logits,
)

__all__ = [
    "MODELS",
    "build_model",
    "count_params",
    "float32_model",
    "init_from_data",
    "load_model",
    "predict_logits",
]
