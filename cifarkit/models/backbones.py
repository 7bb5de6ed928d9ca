"""keras.applications backbones with a new head, flat in one graph, for transfer learning.

ImageNet weights are read from a local file only (Keras' cache or ``model.weights_path``);
nothing is downloaded and random weights are never substituted for missing ones.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
from keras import layers, ops

from cifarkit.core.errors import CifarkitError
from cifarkit.models.common import INPUT_SHAPE, check_common, image_input, logits_head, regularizer

BACKBONES: tuple[str, ...] = ("resnet50", "efficientnetb0", "mobilenetv2")

# keras.applications' "caffe" preprocessing: BGR channel order minus these BGR means.
IMAGENET_MEAN_BGR: tuple[float, float, float] = (103.939, 116.779, 123.68)
# EfficientNet's ImageNet standard deviations (keras.applications.efficientnet).
_EFFNET_STDDEV_RGB: tuple[float, float, float] = (0.229, 0.224, 0.225)
_MOBILENETV2_SIZES: tuple[int, ...] = (96, 128, 160, 192, 224)
# Name prefixes of the layers that are not part of a keras.applications backbone.
_NON_BACKBONE_PREFIXES: tuple[str, ...] = ("head_", "preprocess_", "resize", "normalize", "logits")


@keras.saving.register_keras_serializable(package="cifarkit")
class CaffePreprocess(layers.Layer):
    """RGB 0..255 -> BGR minus the ImageNet BGR mean: keras.applications' ``caffe`` mode (ResNet50)."""

    def __init__(self, mean_bgr: Sequence[float] = IMAGENET_MEAN_BGR, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mean_bgr = tuple(float(m) for m in mean_bgr)

    def call(self, inputs: Any) -> Any:
        bgr = ops.flip(inputs, axis=-1)
        return bgr - ops.convert_to_tensor(self.mean_bgr, dtype=bgr.dtype)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mean_bgr": list(self.mean_bgr)}


def weights_file_name(name: str, input_size: int = 224) -> str:
    """The file keras.applications downloads for ``include_top=False`` ImageNet weights."""
    if name == "resnet50":
        return "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    if name == "efficientnetb0":
        return "efficientnetb0_notop.h5"
    if name == "mobilenetv2":
        return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{input_size}_no_top.h5"
    raise CifarkitError(f"unknown backbone {name!r}; choose one of: {', '.join(BACKBONES)}")


def keras_models_cache() -> Path:
    """Keras' download cache for application weights: ``$KERAS_HOME/models`` or ``~/.keras/models``."""
    home = os.environ.get("KERAS_HOME") or str(Path("~").expanduser() / ".keras")
    return Path(home).expanduser() / "models"


def resolve_weights(
    name: str, input_size: int, weights_path: str | os.PathLike[str] | None
) -> Path:
    """Local ImageNet weights file; never downloads (the machines are offline)."""
    if name == "mobilenetv2" and input_size not in _MOBILENETV2_SIZES:
        raise CifarkitError(
            f"MobileNetV2 ImageNet weights exist only for input_size "
            f"{', '.join(map(str, _MOBILENETV2_SIZES))}; set model.input_size to one "
            f"of them (got {input_size}) or use weights: none"
        )
    file_name = weights_file_name(name, input_size)
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise CifarkitError(
                f"weights_path {path} does not exist; point model.weights_path at "
                f"the {name} ImageNet file {file_name}"
            )
        return path
    path = keras_models_cache() / file_name
    if not path.is_file():
        raise CifarkitError(
            f"ImageNet weights for {name} not found: put {file_name} in "
            f"{path.parent}/ (Keras' cache; KERAS_HOME moves it) or set "
            f"model.weights_path to the file (no download is attempted offline)"
        )
    return path


def _application(name: str, x: Any, size: int) -> keras.Model:
    """The keras.applications model built on tensor ``x`` (random weights, no top)."""
    builders = {
        "resnet50": keras.applications.ResNet50,
        "efficientnetb0": keras.applications.EfficientNetB0,
        "mobilenetv2": keras.applications.MobileNetV2,
    }
    return builders[name](
        include_top=False, weights=None, input_tensor=x, input_shape=(size, size, 3), pooling=None
    )


def _auto_name(layer: keras.layers.Layer) -> bool:
    """True for a name Keras generated from the class (``rescaling``, ``normalization_3``)."""
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", type(layer).__name__).lower()
    return re.fullmatch(rf"{snake}(_\d+)?", layer.name) is not None


def _effnet_imagenet_fix(app: keras.Model) -> None:
    """Fold the rescaling keras.applications inserts for EfficientNet ImageNet weights.

    With ``weights="imagenet"`` Keras adds ``Rescaling(1/sqrt(stddev))`` after the stem's
    Normalization (tensorflow#49930); we build with ``weights=None`` (to never download),
    so multiply the loaded variance by ``stddev`` instead, which divides by the same factor.
    """
    norm = next(layer for layer in app.layers if isinstance(layer, layers.Normalization))
    norm.adapt_variance.assign(norm.adapt_variance * ops.convert_to_tensor(_EFFNET_STDDEV_RGB))
    norm.finalize_state()


def _add_l2(model: keras.Model, l2: float) -> None:
    """Attach an L2 penalty to every conv/dense kernel (config too, so it survives a reload)."""
    for layer in model.layers:
        if isinstance(layer, layers.DepthwiseConv2D):
            option = "depthwise_regularizer"
        elif isinstance(layer, layers.Conv2D | layers.Dense):
            option = "kernel_regularizer"
        else:
            continue
        if getattr(layer, option) is None:
            regularizer = keras.regularizers.L2(l2)
            setattr(layer, option, regularizer)
            layer.kernel.regularizer = regularizer


def backbone_model(
    name: str,
    num_classes: int = 10,
    weights: str = "none",
    weights_path: str | os.PathLike[str] | None = None,
    input_size: int = 32,
    dropout: float = 0.0,
    l2: float = 0.0,
) -> keras.Model:
    """A keras.applications backbone (no top) with a new head, all in one flat graph.

    image 0..255 -> ``resize`` (if ``input_size`` != 32) -> the application's preprocessing
    (ResNet50: ``preprocess_caffe``; MobileNetV2: ``preprocess_rescale`` to [-1, 1];
    EfficientNetB0 rescales itself) -> backbone -> ``head_pool`` -> ``head_dropout`` ->
    ``logits``. The application is built with ``input_tensor=`` the preprocessed tensor, so
    its layers are inlined into this graph rather than nested. ``weights="imagenet"`` loads
    ``weights_path`` or the file in Keras' cache and raises :class:`CifarkitError` if it is
    missing (nothing is downloaded; random weights are never substituted).
    """
    if name not in BACKBONES:
        raise CifarkitError(f"unknown backbone {name!r}; choose one of: {', '.join(BACKBONES)}")
    if weights not in ("none", "imagenet"):
        raise CifarkitError(f"weights={weights!r} is not supported; use 'none' or 'imagenet'")
    if weights == "none" and weights_path is not None:
        raise CifarkitError(
            f"weights_path={weights_path} is set but weights is 'none'; "
            "set weights: imagenet or drop weights_path"
        )
    if not 32 <= input_size <= 512:
        raise CifarkitError(f"input_size={input_size} is out of range; use 32..512")
    check_common(num_classes, dropout)
    regularizer(l2)  # validates l2
    source = resolve_weights(name, input_size, weights_path) if weights == "imagenet" else None

    inputs = image_input()
    x = inputs
    if input_size != INPUT_SHAPE[0]:
        x = layers.Resizing(input_size, input_size, interpolation="bilinear", name="resize")(x)
    if name == "resnet50":
        x = CaffePreprocess(name="preprocess_caffe")(x)
    elif name == "mobilenetv2":
        x = layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocess_rescale")(x)
    app = _application(name, x, input_size)
    for layer in app.layers:
        if _auto_name(layer):  # EfficientNet's unnamed built-in Rescaling and Normalization
            layer.name = f"preprocess_{type(layer).__name__.lower()}"
    if source is not None:
        try:
            app.load_weights(str(source))
        except (ValueError, OSError, KeyError) as exc:
            raise CifarkitError(
                f"cannot load {source} into {name} ({exc}); pass the include_top=False "
                f"ImageNet file {weights_file_name(name, input_size)}"
            ) from None
        if name == "efficientnetb0":
            _effnet_imagenet_fix(app)

    x = layers.GlobalAveragePooling2D(name="head_pool")(app.output)
    x = layers.Dropout(dropout, name="head_dropout")(x)
    model = keras.Model(inputs, logits_head(x, num_classes, l2), name=f"{name}_transfer")
    if l2 > 0:
        _add_l2(model, l2)
    if any(isinstance(layer, keras.Model) for layer in model.layers):  # pragma: no cover
        raise RuntimeError(f"{name}: keras.applications nested a sub-model; the graph must be flat")
    return model


def is_backbone_layer(layer: keras.layers.Layer) -> bool:
    """True for layers of a keras.applications backbone (not input, preprocessing or head).

    Decided by name, so it is meant for :func:`backbone_model` models: on a CIFAR model it
    would count every non-head layer as backbone.
    """
    if isinstance(layer, layers.InputLayer):
        return False
    return not layer.name.startswith(_NON_BACKBONE_PREFIXES)
