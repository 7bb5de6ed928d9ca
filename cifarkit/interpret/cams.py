"""Attribution maps through tf-keras-vis, with the target layer chosen by name.

Methods (:data:`METHODS`):

* class-activation maps at a named layer: ``gradcam`` (Grad-CAM), ``gradcam++``,
  ``layercam`` and ``scorecam`` (Faster Score-CAM: only the ``max_n`` channels with the
  largest spatial variance are scored);
* pixel-gradient maps: ``saliency`` (vanilla gradient, the largest absolute gradient over the colour channels)
  and ``smoothgrad`` (the same averaged over noisy copies);
* ``guided_backprop``, kept **only as a negative control**: Adebayo et al. (2018) showed it
  barely changes when the model's weights are randomised, so it recovers edges, not evidence.

Layer choice: :func:`target_layers` names the post-addition ReLU at the end of each ResNet
stage (32x32, 16x16, 8x8 on CIFAR-10) or the baseline CNN's conv-block outputs (same
resolutions). Note: **at the last stage of a global-average-pooled network Grad-CAM is
exactly CAM** (Zhou et al. 2016): the logit is ``W_c . mean(A)``, so the gradient of the
logit with respect to the last activation is ``W_c / HW`` at every position, and Grad-CAM's
channel weights are CAM's ``W_c`` up to a constant. With a spatially constant gradient,
LayerCAM (``relu(gradient)`` per position) and Grad-CAM++ (whose per-position ``alpha``
normalises to ``1/HW``) both reduce to CAM with only the *positive* ``W_c``: the same map,
which differs from Grad-CAM only where negative weights matter. At earlier stages the
gradient varies across positions and the methods genuinely differ.

Every map returned here is ``(N, 32, 32)`` float32, min-max normalised per image to
``[0, 1]`` (tf-keras-vis' ``normalize``; an all-zero map stays zero), upsampled bilinearly
from the layer's resolution by tf-keras-vis (``scipy.ndimage.zoom``, ``order=1``).
Scores are the model's **logits** (layer ``logits`` is linear), so no softmax swap is
needed; Score-CAM scores the softmax of the masked inputs' logits, as in its paper.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from cifarkit.core.errors import CifarkitError
from cifarkit.models.registry import predict_logits

log = logging.getLogger(__name__)

CAM_METHODS: tuple[str, ...] = ("gradcam", "gradcam++", "layercam", "scorecam")
PIXEL_METHODS: tuple[str, ...] = ("saliency", "smoothgrad", "guided_backprop")
METHODS: tuple[str, ...] = CAM_METHODS + PIXEL_METHODS
METHOD_LABELS: dict[str, str] = {
    "gradcam": "Grad-CAM",
    "gradcam++": "Grad-CAM++",
    "layercam": "LayerCAM",
    "scorecam": "Faster Score-CAM",
    "saliency": "Saliency",
    "smoothgrad": "SmoothGrad",
    "guided_backprop": "Guided Backprop (control)",
}
FUSED = "fused"
DEFAULT_BATCH = 200


# --------------------------------------------------------------------------- layer choice


def target_layers(model) -> dict[str, str]:
    """Short label -> layer name of the maps' candidate layers, from fine to coarse.

    ResNets: ``{"stage1": "stage1_block3_out", "stage2": ..., "stage3": ...}`` (32x32,
    16x16, 8x8 for ResNet20); the baseline CNN: ``{"block1": "block1_out", ...}``.
    """
    from cifarkit.models.cnn import baseline_conv_blocks
    from cifarkit.models.resnet import resnet_stage_outputs

    if any(layer.name.startswith("stage") for layer in model.layers):
        names = resnet_stage_outputs(model)
        return {f"stage{i}": name for i, name in enumerate(names, start=1)}
    if any(layer.name.startswith("block") for layer in model.layers):
        names = baseline_conv_blocks(model)
        return {name.split("_")[0]: name for name in names}
    raise CifarkitError(
        f"model {model.name!r} has neither ResNet stages nor baseline conv blocks; "
        "pass a model built by cifarkit.models (resnet20, baseline_cnn)"
    )


def last_layer(model) -> str:
    """The coarsest candidate layer (the usual Grad-CAM layer)."""
    return list(target_layers(model).values())[-1]


def layer_resolution(model, layer: str) -> int:
    """Spatial side length of ``layer``'s output (e.g. 8 for ResNet20's stage 3)."""
    try:
        shape = model.get_layer(layer).output.shape
    except ValueError:
        try:
            choices = ", ".join(target_layers(model).values())
        except CifarkitError:
            choices = "a layer with a (N, H, W, C) output"
        raise CifarkitError(
            f"model {model.name!r} has no layer {layer!r}; choose {choices}"
        ) from None
    if len(shape) != 4:
        raise CifarkitError(
            f"layer {layer!r} has output shape {tuple(shape)}; maps need a spatial "
            "(N, H, W, C) layer such as a stage or block output"
        )
    return int(shape[1])


# --------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def _quiet_keras() -> Iterator[None]:
    """Silence Keras' progress bars (Score-CAM calls ``model.predict`` with the default verbosity)."""
    import keras

    was_on = keras.config.is_interactive_logging_enabled()
    keras.config.disable_interactive_logging()
    try:
        yield
    finally:
        if was_on:
            keras.config.enable_interactive_logging()


@contextlib.contextmanager
def _numpy_seed(seed: int) -> Iterator[None]:
    """Seed NumPy's global RNG for one call and restore it after.

    tf-keras-vis' SmoothGrad draws its noise from ``np.random.normal`` (the global RNG) and
    takes no generator, so determinism needs the global state; restoring it keeps the
    rest of the process unaffected.
    """
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _guided_clone(model):
    """A copy of ``model`` whose ReLU layers back-propagate only positive gradients.

    tf-keras-vis' ``GuidedBackpropagation`` modifier swaps the ``activation`` attribute of
    layers; cifarkit's models use separate ``keras.layers.ReLU`` layers (named, so maps can
    pick them), which have no such attribute, so the same guided gradient is attached to
    those layers here. The original model is not touched.
    """
    import keras
    import tensorflow as tf

    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())

    @tf.custom_gradient
    def guided_relu(x):
        def grad(dy):
            return tf.cast(dy > 0, dy.dtype) * tf.cast(x > 0, dy.dtype) * dy

        return tf.nn.relu(x), grad

    for layer in clone.layers:
        if isinstance(layer, keras.layers.ReLU):
            if layer.max_value is not None or layer.negative_slope or layer.threshold:
                raise CifarkitError(
                    f"layer {layer.name} is not a plain ReLU; guided backprop "
                    "supports plain ReLU layers only"
                )
            layer.call = guided_relu
    return clone


class TargetScore:
    """Score for tf-keras-vis: output ``[i, targets[i]]`` of each image ``i`` (logits or softmax).

    Same values as tf-keras-vis' ``CategoricalScore(targets)``, which slices the output
    once per image in a Python loop; one ``gather`` keeps the tape (and SmoothGrad's
    repeated gradients) an order of magnitude cheaper on batches of hundreds.
    """

    def __init__(self, targets: np.ndarray) -> None:
        self.targets = np.asarray(targets, np.int64)

    def __call__(self, output):
        import tensorflow as tf

        return tf.gather(output, self.targets[:, None], axis=1, batch_dims=1)[:, 0]


def _batches(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def _as_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise CifarkitError(
            f"images must be (N, H, W, 3) with pixel values 0..255, got shape {images.shape}"
        )
    return images.astype(np.float32, copy=False)


def _as_targets(targets: Sequence[int] | np.ndarray | int, n: int, num_classes: int) -> np.ndarray:
    targets = np.asarray(targets, dtype=np.int64)
    if targets.ndim == 0:
        targets = np.full(n, int(targets), np.int64)
    if targets.shape != (n,):
        raise CifarkitError(
            f"targets must be one class index per image ({n}), got shape {targets.shape}"
        )
    if n and (targets.min() < 0 or targets.max() >= num_classes):
        raise CifarkitError(
            f"targets must be class indices 0..{num_classes - 1}, got "
            f"{targets.min()}..{targets.max()}"
        )
    return targets


# --------------------------------------------------------------------------- the explainer


class Explainer:
    """tf-keras-vis' map methods bound to one model, called in batches.

    ``Explainer(model).maps(images, targets, "gradcam", layer="stage2_block3_out")``
    returns ``(N, 32, 32)`` maps in ``[0, 1]`` for class ``targets[i]`` of image ``i``.
    Layers may be given by full name or by :func:`target_layers` label (``"stage2"``; pass
    ``layers={label: name}`` for a model cifarkit did not build),
    or ``"fused"`` (the mean of the per-layer maps of every candidate layer, renormalised).

    Parameters
    ----------
    model : keras.Model
        A flat cifarkit model (raw 0..255 pixels in, logits out).
    layers : mapping, optional
        Label -> layer name of the candidate layers (default: :func:`target_layers`).
    batch_size : int
        Images per tf-keras-vis call.
    seed : int, default 0
        Seed of the methods that sample (SmoothGrad noise, Score-CAM's subsets).
    scorecam_max_n, smooth_samples, smooth_noise
        Score-CAM's channel cap, SmoothGrad's sample count and noise level.

    Raises
    ------
    CifarkitError
        For an unknown method or layer, or images that are not ``(N, H, W, 3)``.

    Examples
    --------
    >>> from cifarkit.interpret import Explainer
    >>> explainer = Explainer(run.load_model())  # doctest: +SKIP
    >>> maps = explainer.maps(x_test[:8], y_test[:8], "gradcam", "stage3")  # doctest: +SKIP
    """

    def __init__(
        self,
        model,
        *,
        layers: Mapping[str, str] | None = None,
        batch_size: int = DEFAULT_BATCH,
        seed: int = 0,
        scorecam_max_n: int = 16,
        smooth_samples: int = 20,
        smooth_noise: float = 0.15,
    ) -> None:
        with warnings.catch_warnings():
            # tf-keras-vis 0.8.7 imports zoom from scipy.ndimage.interpolation (deprecated alias).
            warnings.filterwarnings("ignore", category=DeprecationWarning, module="tf_keras_vis")
            from tf_keras_vis.gradcam import Gradcam
            from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
            from tf_keras_vis.layercam import Layercam
            from tf_keras_vis.saliency import Saliency
            from tf_keras_vis.scorecam import Scorecam

        if batch_size < 1:
            raise CifarkitError(f"batch_size={batch_size} must be at least 1")
        self.model = model
        self.batch_size = batch_size
        self.seed = seed
        self.scorecam_max_n = scorecam_max_n
        self.smooth_samples = smooth_samples
        self.smooth_noise = smooth_noise
        self.layers = dict(layers) if layers is not None else target_layers(model)
        for name in self.layers.values():
            layer_resolution(model, name)  # fails clearly for a name the model does not have
        self.num_classes = int(model.output.shape[-1])
        # clone=False with no modifier: tf-keras-vis uses the model as it is (read-only).
        self._objects = {
            "gradcam": Gradcam(model, model_modifier=None, clone=False),
            "gradcam++": GradcamPlusPlus(model, model_modifier=None, clone=False),
            "layercam": Layercam(model, model_modifier=None, clone=False),
            "scorecam": Scorecam(model, model_modifier=None, clone=False),
            "saliency": Saliency(model, model_modifier=None, clone=False),
        }
        self._guided = None

    def resolve_layer(self, layer: str | None) -> str:
        """Full layer name for a label (``stage3``), a full name, or None (the coarsest layer)."""
        if layer is None:
            return list(self.layers.values())[-1]
        if layer in self.layers:
            return self.layers[layer]
        if layer in self.layers.values():
            return layer
        layer_resolution(self.model, layer)  # raises for unknown names
        return layer

    def maps(
        self,
        images: np.ndarray,
        targets: Sequence[int] | np.ndarray | int,
        method: str = "gradcam",
        layer: str | None = None,
    ) -> np.ndarray:
        """Maps of ``method`` for class ``targets`` of each image, ``(N, H, W)`` float32 in [0, 1]."""
        if method not in METHODS:
            raise CifarkitError(
                f"unknown map method {method!r}; choose one of: {', '.join(METHODS)}"
            )
        images = _as_images(images)
        targets = _as_targets(targets, len(images), self.num_classes)
        if layer == FUSED:
            return self.fused(images, targets, method)
        layer_name = self.resolve_layer(layer) if method in CAM_METHODS else None
        out = np.zeros(images.shape[:3], np.float32)
        for part in _batches(len(images), self.batch_size):
            if part.stop > part.start:
                out[part] = self._batch(images[part], targets[part], method, layer_name, part.start)
        return out

    def fused(
        self, images: np.ndarray, targets: np.ndarray, method: str = "layercam"
    ) -> np.ndarray:
        """Multi-layer map: the mean of the normalised maps of every candidate layer, renormalised.

        LayerCAM's paper fuses layers the same way in spirit (per-layer maps scaled, then
        combined); the mean keeps the coarse layer's extent and the fine layers' detail.
        """
        if method not in CAM_METHODS:
            raise CifarkitError(
                f"a fused map needs a layer method ({', '.join(CAM_METHODS)}), not {method!r}"
            )
        stack = np.stack(
            [self.maps(images, targets, method, name) for name in self.layers.values()]
        )
        return normalise_maps(stack.mean(axis=0))

    def _batch(
        self, images: np.ndarray, targets: np.ndarray, method: str, layer: str | None, offset: int
    ) -> np.ndarray:
        score = TargetScore(targets)
        with warnings.catch_warnings():
            # Keras warns that tf-keras-vis passes the single input as a list; harmless.
            warnings.filterwarnings("ignore", message="The structure of `inputs`")
            return self._call(images, score, method, layer, offset)

    def _call(
        self, images: np.ndarray, score: TargetScore, method: str, layer: str | None, offset: int
    ) -> np.ndarray:
        if method in ("gradcam", "gradcam++", "layercam"):
            result = self._objects[method](
                score, images, penultimate_layer=layer, seek_penultimate_conv_layer=False
            )
        elif method == "scorecam":
            max_n = min(self.scorecam_max_n, int(self.model.get_layer(layer).output.shape[-1]))
            with _quiet_keras():
                result = self._objects["scorecam"](
                    score,
                    images,
                    penultimate_layer=layer,
                    seek_penultimate_conv_layer=False,
                    max_N=max_n,
                    batch_size=256,
                )
        elif method == "saliency":
            result = self._objects["saliency"](score, images)
        elif method == "smoothgrad":
            with _numpy_seed(self.seed + offset):
                result = self._objects["saliency"](
                    score,
                    images,
                    smooth_samples=self.smooth_samples,
                    smooth_noise=self.smooth_noise,
                )
        else:  # guided_backprop
            from tf_keras_vis.saliency import Saliency

            if self._guided is None:
                self._guided = Saliency(_guided_clone(self.model), model_modifier=None, clone=False)
            else:  # follow the model's current weights (the randomisation check changes them)
                self._guided.model.set_weights(self.model.get_weights())
            result = self._guided(score, images)
        result = np.asarray(result, np.float32).reshape(images.shape[:3])
        return np.clip(np.nan_to_num(result, nan=0.0), 0.0, 1.0)


def normalise_maps(maps: np.ndarray) -> np.ndarray:
    """Min-max normalise each map to [0, 1] (tf-keras-vis' ``normalize``; constant maps -> 0)."""
    from tf_keras_vis.utils import normalize

    maps = np.asarray(maps, np.float32)
    return np.asarray(normalize(maps), np.float32) if len(maps) else maps


def predicted_classes(model, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """The model's top-1 class per image."""
    return predict_logits(model, images, batch_size).argmax(axis=1)
