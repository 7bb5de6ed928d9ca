"""One name -> builder registry, the one model loader, and batched inference.

:data:`MODELS` maps every ``model.name`` a config may hold to the function that builds it.
The names themselves are listed once more, as ``ModelName`` in :mod:`cifarkit.core.config`,
so that a config is validated when it is loaded without importing TensorFlow; a test checks
the two lists agree. Adding a model family: write its builder in a module of this package,
add one entry here and its name to ``ModelName``.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from cifarkit.core.config import ModelConfig
from cifarkit.core.errors import CifarkitError
from cifarkit.models import airbench, backbones, cnn, resnet
from cifarkit.models.common import INPUT_SHAPE

Builder = Callable[[ModelConfig, int, float], keras.Model]


def _backbone(cfg: ModelConfig, num_classes: int, l2: float) -> keras.Model:
    return backbones.backbone_model(
        cfg.name,
        num_classes=num_classes,
        weights=cfg.weights,
        weights_path=cfg.weights_path,
        input_size=cfg.input_size,
        dropout=cfg.dropout,
        l2=l2,
    )


def _resnet(depth: int) -> Builder:
    def build(cfg: ModelConfig, num_classes: int, l2: float) -> keras.Model:
        return resnet.cifar_resnet(
            depth, num_classes=num_classes, dropout=cfg.dropout, l2=l2, bn=cfg.batch_norm
        )

    return build


MODELS: dict[str, Builder] = {
    "baseline_cnn": lambda cfg, n, l2: cnn.baseline_cnn(
        num_classes=n, dropout=cfg.dropout, l2=l2, bn=cfg.batch_norm
    ),
    **{f"resnet{depth}": _resnet(depth) for depth in (20, 32, 44, 56)},
    "airbench": lambda cfg, n, l2: airbench.airbench_net(
        cfg.airbench, num_classes=n, dropout=cfg.dropout, l2=l2, bn=cfg.batch_norm
    ),
    **{name: _backbone for name in backbones.BACKBONES},
}


def build_model(cfg: ModelConfig, num_classes: int = 10, l2: float = 0.0) -> keras.Model:
    """Build the model ``cfg.name`` names.

    Parameters
    ----------
    cfg : ModelConfig
        The ``model`` section of an experiment config.
    num_classes : int, default 10
        Width of the ``logits`` layer.
    l2 : float, default 0.0
        Coupled L2 penalty on every conv/dense kernel (0 disables it).

    Returns
    -------
    keras.Model
        A flat functional model: uint8-range float32 images in, logits out.

    Raises
    ------
    CifarkitError
        For a name with no builder, or backbone-only options on a CIFAR model.

    Examples
    --------
    >>> from cifarkit.core.config import load_config
    >>> model = build_model(load_config("resnet20").model)  # doctest: +SKIP
    """
    builder = MODELS.get(cfg.name)
    if builder is None:
        raise CifarkitError(f"unknown model {cfg.name!r}; choose one of: {', '.join(MODELS)}")
    if cfg.name not in backbones.BACKBONES:
        if cfg.input_size != INPUT_SHAPE[0]:
            raise CifarkitError(
                f"model.input_size={cfg.input_size} only applies to the backbones "
                f"({', '.join(backbones.BACKBONES)}); use input_size: 32 for {cfg.name}"
            )
        if cfg.weights != "none" or cfg.weights_path is not None:
            raise CifarkitError(
                f"{cfg.name} trains from scratch; remove model.weights/weights_path or "
                f"choose one of: {', '.join(backbones.BACKBONES)}"
            )
    return builder(cfg, num_classes, l2)


def init_from_data(model: keras.Model, cfg: ModelConfig, images: Any) -> bool:
    """Data-dependent initialisation before training (airbench's whitening conv from training
    patches); a no-op returning False for models without such layers."""
    return airbench.init_from_data(model, cfg, images)


def load_model(path: str | Path) -> keras.Model:
    """Load a cifarkit ``.keras`` file for inference (``safe_mode=True``, not compiled), computing
    in float32 whatever precision it was trained in (:func:`float32_model`).

    The custom layers of every family are registered with Keras when this package is
    imported (the modules above define them), so any stored cifarkit model loads here.

    Raises
    ------
    CifarkitError
        If the file is missing.
    """
    path = Path(path)
    if not path.is_file():
        raise CifarkitError(f"model file {path} does not exist; train the run first")
    return float32_model(keras.models.load_model(path, safe_mode=True, compile=False))


# Dtypes and Keras dtype policies that compute in fewer than 32 bits.
_REDUCED = frozenset({"mixed_float16", "mixed_bfloat16", "float16", "bfloat16"})


def _float32_config(node: Any) -> Any:
    """A model config with every reduced-precision dtype policy (and tensor dtype) made float32."""
    if isinstance(node, dict):
        if (
            node.get("class_name") == "DTypePolicy"
            and (node.get("config") or {}).get("name") in _REDUCED
        ):
            return {**node, "config": {**node["config"], "name": "float32"}}
        return {
            key: "float32"
            if key == "dtype" and isinstance(value, str) and value in _REDUCED
            else _float32_config(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_float32_config(value) for value in node]
    return node


def float32_model(model: keras.Model) -> keras.Model:
    """``model`` computing in float32: itself if every layer does, else the same architecture
    rebuilt with float32 dtype policies, holding the same weights.

    A model trained under ``mixed_float16`` or ``mixed_bfloat16`` keeps its policy in its file,
    so loaded as it is it would compute in 16 bits wherever it is used: float16 on a CPU (slow,
    where TensorFlow has the kernels at all) and logits a few 1e-2 off the float32 ones. Its
    variables are float32 already, so the float32 copy is the same function, computed in full
    precision: predictions, exports, the demo and the chapters agree on any machine.
    """
    config = model.get_config()
    converted = _float32_config(config)
    if converted == config:
        return model
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(
        "float32"
    )  # any layer built without a policy of its own
    try:
        copy = model.__class__.from_config(converted)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    copy.set_weights(model.get_weights())
    return copy


_FORWARD: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _forward(model: keras.Model) -> Any:
    """``model(x, training=False)`` as one ``tf.function`` per model, traced once for any batch size.

    ``model.predict`` retraces for every new input length (the last, shorter batch of each
    call), which costs seconds per call on a CPU; the deletion/insertion curves call this
    thousands of times with varying lengths, so the traced function is cached per model.
    """
    import tensorflow as tf

    fn = _FORWARD.get(model)
    if fn is None:
        spec = tf.TensorSpec((None, *model.input.shape[1:]), tf.float32)
        fn = tf.function(lambda x: model(x, training=False), input_signature=[spec])
        _FORWARD[model] = fn
    return fn


def predict_logits(model: keras.Model, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """The model's logits for ``images``.

    Parameters
    ----------
    model : keras.Model
        Any cifarkit model (raw 0..255 pixels in, logits out).
    images : numpy.ndarray
        ``(n, H, W, 3)`` images, uint8 or float with values 0..255.
    batch_size : int, default 500
        Images per forward pass.

    Returns
    -------
    numpy.ndarray
        float32 logits of shape ``(n, num_classes)``.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise CifarkitError(
            f"images must be (N, H, W, 3) with pixel values 0..255, got shape {images.shape}"
        )
    images = images.astype(np.float32, copy=False)
    out = np.zeros((len(images), int(model.output.shape[-1])), np.float32)
    forward = _forward(model)
    for start in range(0, len(images), batch_size):
        part = slice(start, min(len(images), start + batch_size))
        out[part] = forward(images[part]).numpy()
    return out


def count_params(model: keras.Model) -> int:
    """All weights of the model (trainable + batch-norm statistics), independent of freezing."""
    return int(model.count_params())
