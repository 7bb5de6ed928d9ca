"""Model builders: a baseline CNN, CIFAR ResNets (He et al. 2016) and keras.applications backbones.

Every builder returns a *flat* functional :class:`keras.Model` (no nested sub-models, so
Grad-CAM can pick any layer by name) that takes ``(32, 32, 3)`` float32 images with raw
pixel values 0..255 and returns **logits** from a linear ``Dense`` named ``"logits"``.
Normalisation is the model's first layer. Every layer has an explicit name, and no
``Lambda`` layer is used anywhere, so models round-trip through ``.keras`` files with
``safe_mode=True``; the two custom layers below are registered for that.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
from keras import layers, ops

from cifarkit.config import ModelConfig
from cifarkit.errors import CifarkitError

CIFAR_MEAN: tuple[float, float, float] = (125.3, 123.0, 113.9)
CIFAR_STD: tuple[float, float, float] = (63.0, 62.1, 66.7)
INPUT_SHAPE: tuple[int, int, int] = (32, 32, 3)
BACKBONES: tuple[str, ...] = ("resnet50", "efficientnetb0", "mobilenetv2")

# keras.applications' "caffe" preprocessing: BGR channel order minus these BGR means.
IMAGENET_MEAN_BGR: tuple[float, float, float] = (103.939, 116.779, 123.68)
# EfficientNet's ImageNet standard deviations (keras.applications.efficientnet).
_EFFNET_STDDEV_RGB: tuple[float, float, float] = (0.229, 0.224, 0.225)
_MOBILENETV2_SIZES: tuple[int, ...] = (96, 128, 160, 192, 224)
# Name prefixes of the layers that are not part of a keras.applications backbone.
_NON_BACKBONE_PREFIXES: tuple[str, ...] = ("head_", "preprocess_", "resize", "normalize", "logits")
# Torch/Caffe batch-norm settings of the original papers (Keras' 0.99 lags on short runs).
_BN: dict[str, float] = {"momentum": 0.9, "epsilon": 1e-5}


# --------------------------------------------------------------------------- custom layers


@keras.saving.register_keras_serializable(package="cifarkit")
class ChannelPad(layers.Layer):
    """Append ``before`` zero channels in front of and ``after`` behind the channel axis.

    The parameter-free channel increase of the option-A ResNet shortcut.
    """

    def __init__(self, before: int, after: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.before = int(before)
        self.after = int(after)

    def call(self, inputs: Any) -> Any:
        return ops.pad(inputs, [[0, 0], [0, 0], [0, 0], [self.before, self.after]])

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        channels = input_shape[-1]
        return (*input_shape[:-1], None if channels is None else channels + self.before + self.after)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "before": self.before, "after": self.after}


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


# --------------------------------------------------------------------------- helpers


def _regularizer(l2: float) -> keras.regularizers.Regularizer | None:
    if l2 < 0:
        raise CifarkitError(f"l2={l2} is negative; pass l2 >= 0 (0 disables weight regularisation)")
    return keras.regularizers.L2(l2) if l2 > 0 else None


def _check_common(num_classes: int, dropout: float) -> None:
    if num_classes < 2:
        raise CifarkitError(f"num_classes={num_classes} is too small; a classifier needs at least 2")
    if not 0.0 <= dropout < 1.0:
        raise CifarkitError(f"dropout={dropout} is out of range; use a rate in [0, 1)")


def _image_input() -> Any:
    return keras.Input(shape=INPUT_SHAPE, dtype="float32", name="image")


def _normalize(x: Any) -> Any:
    return layers.Normalization(mean=list(CIFAR_MEAN), variance=[s**2 for s in CIFAR_STD],
                                name="normalize")(x)


def _logits(x: Any, num_classes: int, l2: float) -> Any:
    # float32 logits even under a mixed_float16 policy, for a stable softmax cross-entropy.
    return layers.Dense(num_classes, kernel_regularizer=_regularizer(l2), dtype="float32",
                        name="logits")(x)


def _conv_bn_relu(x: Any, filters: int, prefix: str, suffix: str, l2: float,
                  relu_name: str | None = None) -> Any:
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer="he_normal",
                      kernel_regularizer=_regularizer(l2), name=f"{prefix}_conv{suffix}")(x)
    x = layers.BatchNormalization(**_BN, name=f"{prefix}_bn{suffix}")(x)
    return layers.ReLU(name=relu_name or f"{prefix}_relu{suffix}")(x)


# --------------------------------------------------------------------------- baseline CNN


def baseline_cnn(num_classes: int = 10, dropout: float = 0.0, l2: float = 0.0) -> keras.Model:
    """Three conv blocks (32, 64, 128 filters: conv3x3-BN-ReLU, 2x2 max-pool), flatten, dense logits.

    One convolution per block keeps it at roughly the ~1,800 img/s of NOTES-performance on two
    CPU cores (a fourth conv costs about a third of that). Flatten rather than global
    pooling: with three convolutions each 4x4 cell sees only 22 px, so position matters.
    """
    _check_common(num_classes, dropout)
    inputs = _image_input()
    x = _normalize(inputs)
    for block, filters in enumerate((32, 64, 128), start=1):
        prefix = f"block{block}"
        x = _conv_bn_relu(x, filters, prefix, "1", l2, relu_name=f"{prefix}_out")
        x = layers.MaxPooling2D(2, name=f"{prefix}_pool")(x)
    x = layers.Flatten(name="head_flatten")(x)
    if dropout > 0:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    return keras.Model(inputs, _logits(x, num_classes, l2), name="baseline_cnn")


def baseline_conv_blocks(model: keras.Model) -> list[str]:
    """Names of the baseline CNN's block outputs (the ReLU before each max-pool), in order."""
    names = [layer.name for layer in model.layers if re.fullmatch(r"block\d+_out", layer.name)]
    if not names:
        raise CifarkitError(f"model {model.name!r} has no block<i>_out layers; pass a model built "
                            "by cifarkit.models.baseline_cnn")
    return sorted(names, key=lambda name: int(re.findall(r"\d+", name)[0]))


# --------------------------------------------------------------------------- CIFAR ResNet


def _basic_block(x: Any, filters: int, stride: int, prefix: str, l2: float) -> Any:
    """conv3x3-BN-ReLU-conv3x3-BN, + shortcut, ReLU; the output layer is ``<prefix>_out``."""
    in_channels = x.shape[-1]
    shortcut = x
    y = x
    if stride > 1:
        # Symmetric padding (as in the papers' Torch/Caffe code) centres the strided conv's
        # outputs on the even pixels, the ones the shortcut's subsampling keeps.
        y = layers.ZeroPadding2D(1, name=f"{prefix}_pad")(y)
    y = layers.Conv2D(filters, 3, strides=stride, padding="valid" if stride > 1 else "same",
                      use_bias=False, kernel_initializer="he_normal",
                      kernel_regularizer=_regularizer(l2), name=f"{prefix}_conv1")(y)
    y = layers.BatchNormalization(**_BN, name=f"{prefix}_bn1")(y)
    y = layers.ReLU(name=f"{prefix}_relu1")(y)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer="he_normal",
                      kernel_regularizer=_regularizer(l2), name=f"{prefix}_conv2")(y)
    y = layers.BatchNormalization(**_BN, name=f"{prefix}_bn2")(y)
    if stride > 1:
        # pool_size 1 with stride 2 is x[:, ::2, ::2, :]: subsampling without parameters.
        shortcut = layers.MaxPooling2D(1, strides=stride, name=f"{prefix}_shortcut_pool")(shortcut)
    if filters != in_channels:
        extra = filters - in_channels
        shortcut = ChannelPad(extra // 2, extra - extra // 2, name=f"{prefix}_shortcut_pad")(shortcut)
    y = layers.Add(name=f"{prefix}_add")([y, shortcut])
    return layers.ReLU(name=f"{prefix}_out")(y)


def cifar_resnet(depth: int, num_classes: int = 10, dropout: float = 0.0,
                 l2: float = 0.0) -> keras.Model:
    """The CIFAR ResNet of He et al. (2016, section 4.2), ``depth = 6n + 2``.

    3x3 conv (16) -> 3 stages of n basic blocks (16, 32, 64 filters; stride 2 at the first
    block of stages 2 and 3) -> global average pooling -> dropout (if > 0) -> dense logits.
    Shortcuts use **option A**: where the shape changes the identity is subsampled and
    zero-padded in channels (:class:`ChannelPad`), which adds no parameters, so counts match
    the paper (ResNet20 0.27M, 32 0.46M, 44 0.66M, 56 0.85M). He-normal initialisation.
    """
    if depth < 8 or (depth - 2) % 6:
        raise CifarkitError(f"ResNet depth {depth} is not 6n+2; use 20, 32, 44, 56, 110, ...")
    _check_common(num_classes, dropout)
    n = (depth - 2) // 6
    inputs = _image_input()
    x = _normalize(inputs)
    x = _conv_bn_relu(x, 16, "stem", "", l2)
    for stage, filters in enumerate((16, 32, 64), start=1):
        for block in range(1, n + 1):
            stride = 2 if stage > 1 and block == 1 else 1
            x = _basic_block(x, filters, stride, f"stage{stage}_block{block}", l2)
    x = layers.GlobalAveragePooling2D(name="head_pool")(x)
    if dropout > 0:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    return keras.Model(inputs, _logits(x, num_classes, l2), name=f"resnet{depth}")


def resnet_stage_outputs(model: keras.Model) -> list[str]:
    """Names of each stage's last post-addition ReLU, stages 1..3 (32x32x16, 16x16x32, 8x8x64)."""
    last: dict[int, tuple[int, str]] = {}
    for layer in model.layers:
        match = re.fullmatch(r"stage(\d+)_block(\d+)_out", layer.name)
        if match:
            stage, block = int(match[1]), int(match[2])
            if block > last.get(stage, (0, ""))[0]:
                last[stage] = (block, layer.name)
    if sorted(last) != [1, 2, 3]:
        raise CifarkitError(f"model {model.name!r} has no stage1..3 block outputs; pass a model built "
                            "by cifarkit.models.cifar_resnet")
    return [last[stage][1] for stage in (1, 2, 3)]


# --------------------------------------------------------------------------- backbones


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


def _resolve_weights(name: str, input_size: int, weights_path: str | os.PathLike[str] | None) -> Path:
    """Local ImageNet weights file; never downloads (the machines are offline)."""
    if name == "mobilenetv2" and input_size not in _MOBILENETV2_SIZES:
        raise CifarkitError(f"MobileNetV2 ImageNet weights exist only for input_size "
                            f"{', '.join(map(str, _MOBILENETV2_SIZES))}; set model.input_size to one "
                            f"of them (got {input_size}) or use weights: none")
    file_name = weights_file_name(name, input_size)
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise CifarkitError(f"weights_path {path} does not exist; point model.weights_path at "
                                f"the {name} ImageNet file {file_name}")
        return path
    path = keras_models_cache() / file_name
    if not path.is_file():
        raise CifarkitError(f"ImageNet weights for {name} not found: put {file_name} in "
                            f"{path.parent}/ (Keras' cache; KERAS_HOME moves it) or set "
                            f"model.weights_path to the file (no download is attempted offline)")
    return path


def _application(name: str, x: Any, size: int) -> keras.Model:
    """The keras.applications model built on tensor ``x`` (random weights, no top)."""
    builders = {
        "resnet50": keras.applications.ResNet50,
        "efficientnetb0": keras.applications.EfficientNetB0,
        "mobilenetv2": keras.applications.MobileNetV2,
    }
    return builders[name](include_top=False, weights=None, input_tensor=x,
                          input_shape=(size, size, 3), pooling=None)


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


def backbone_model(name: str, num_classes: int = 10, weights: str = "none",
                   weights_path: str | os.PathLike[str] | None = None, input_size: int = 32,
                   dropout: float = 0.0, l2: float = 0.0) -> keras.Model:
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
        raise CifarkitError(f"weights_path={weights_path} is set but weights is 'none'; "
                            "set weights: imagenet or drop weights_path")
    if not 32 <= input_size <= 512:
        raise CifarkitError(f"input_size={input_size} is out of range; use 32..512")
    _check_common(num_classes, dropout)
    _regularizer(l2)  # validates l2
    source = _resolve_weights(name, input_size, weights_path) if weights == "imagenet" else None

    inputs = _image_input()
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
            raise CifarkitError(f"cannot load {source} into {name} ({exc}); pass the include_top=False "
                                f"ImageNet file {weights_file_name(name, input_size)}") from None
        if name == "efficientnetb0":
            _effnet_imagenet_fix(app)

    x = layers.GlobalAveragePooling2D(name="head_pool")(app.output)
    x = layers.Dropout(dropout, name="head_dropout")(x)
    model = keras.Model(inputs, _logits(x, num_classes, l2), name=f"{name}_transfer")
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


# --------------------------------------------------------------------------- dispatch


def build_model(cfg: ModelConfig, num_classes: int = 10, l2: float = 0.0) -> keras.Model:
    """Build the model ``cfg.name`` names (``l2`` = coupled L2 on every conv/dense kernel)."""
    name = cfg.name
    if name in BACKBONES:
        return backbone_model(name, num_classes=num_classes, weights=cfg.weights,
                              weights_path=cfg.weights_path, input_size=cfg.input_size,
                              dropout=cfg.dropout, l2=l2)
    if cfg.input_size != INPUT_SHAPE[0]:
        raise CifarkitError(f"model.input_size={cfg.input_size} only applies to the backbones "
                            f"({', '.join(BACKBONES)}); use input_size: 32 for {name}")
    if cfg.weights != "none" or cfg.weights_path is not None:
        raise CifarkitError(f"{name} trains from scratch; remove model.weights/weights_path or "
                            f"choose one of: {', '.join(BACKBONES)}")
    if name == "baseline_cnn":
        return baseline_cnn(num_classes=num_classes, dropout=cfg.dropout, l2=l2)
    if name == "airbench":
        from cifarkit.fast import airbench_net  # fast builds on this module's helpers

        return airbench_net(cfg.airbench, num_classes=num_classes, dropout=cfg.dropout, l2=l2)
    match = re.fullmatch(r"resnet(\d+)", name)
    if match:
        return cifar_resnet(int(match[1]), num_classes=num_classes, dropout=cfg.dropout, l2=l2)
    raise CifarkitError(f"unknown model {name!r}; choose one of: baseline_cnn, resnet20, resnet32, "
                        f"resnet44, resnet56, airbench, {', '.join(BACKBONES)}")


def init_from_data(model: keras.Model, cfg: ModelConfig, images: Any) -> bool:
    """Data-dependent initialisation before training (airbench's whitening conv from training
    patches); a no-op returning False for models without such layers."""
    from cifarkit.fast import init_from_data as fast_init

    return fast_init(model, cfg, images)


def count_params(model: keras.Model) -> int:
    """All weights of the model (trainable + batch-norm statistics), independent of freezing."""
    return int(model.count_params())


# Registers the airbench layers (cifarkit.fast imports this module's helpers, so it comes last).
import cifarkit.fast  # noqa: E402, F401
