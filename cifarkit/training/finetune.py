"""Transfer-learning mechanics for :mod:`cifarkit.training.fit`: layer groups, freezing, per-group LR.

* :func:`layer_groups` splits a model into groups from the input to the head (CIFAR
  ResNets: stage 1 with the stem, stage 2, stage 3; the baseline CNN: its three blocks;
  keras.applications backbones: their four resolution stages, /4, /8, /16, /32, so that
  "freeze through 2" leaves ResNet50's conv4 + conv5 trainable). The head (``head_*``,
  ``logits``) is never in a group: it always trains.
* :func:`frozen_groups` says how many groups are frozen during an epoch. It is a pure
  function of the epoch, so progressive unfreezing survives a resume from a checkpoint.
  Frozen layers get ``trainable = False``; for batch normalisation that also means
  inference mode (Keras 3), so frozen statistics stay as they were.
* :class:`GroupLRSGD` is SGD with a learning-rate factor per layer. Keras 3 has no
  per-variable learning rate, so the factor scales each variable's gradient before the
  update: for SGD with momentum, where the coupled L2 is part of the gradient, that is
  exactly a per-group learning rate. (For Adam-type optimizers it would not be, as their
  update ignores the gradient's scale; the config refuses that combination.)
* :func:`init_from_source` copies a trained model's weights, layer by layer by name,
  into every layer but the new head.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from cifarkit.core.config import TransferConfig
from cifarkit.core.errors import CifarkitError

log = logging.getLogger(__name__)

HEAD_PREFIXES: tuple[str, ...] = ("head_", "logits")
# Layers before the first stage that carry no learnable weights or belong with stage 1.
_INPUT_PREFIXES: tuple[str, ...] = ("image", "normalize", "resize", "preprocess_", "stem_")


def _resnet50_group(name: str) -> int | None:
    match = re.match(r"conv(\d)_|pool1_", name)
    if not match:
        return None
    return 1 if match[1] is None else max(1, int(match[1]) - 1)  # conv1+conv2, conv3, conv4, conv5


def _mobilenetv2_group(name: str) -> int | None:
    match = re.match(r"block_(\d+)_", name)
    if match:
        block = int(match[1])
        return 1 if block <= 2 else 2 if block <= 5 else 3 if block <= 12 else 4
    if re.match(r"(bn_)?Conv1|expanded_conv_", name):
        return 1
    if re.match(r"Conv_1|out_relu", name):
        return 4
    return None


def _efficientnet_group(name: str) -> int | None:
    match = re.match(r"block(\d)[a-z]_", name)
    if match:
        block = int(match[1])
        return 1 if block <= 2 else 2 if block == 3 else 3 if block <= 5 else 4
    return 4 if name.startswith("top_") else None


def _group_rule(model: keras.Model):
    name = model.name
    if re.fullmatch(r"resnet\d+", name):
        return lambda layer: int(m[1]) if (m := re.match(r"stage(\d+)_", layer)) else None
    if name == "baseline_cnn":
        return lambda layer: int(m[1]) if (m := re.match(r"block(\d+)_", layer)) else None
    rules = {
        "resnet50_transfer": _resnet50_group,
        "mobilenetv2_transfer": _mobilenetv2_group,
        "efficientnetb0_transfer": _efficientnet_group,
    }
    if name not in rules:
        raise CifarkitError(
            f"model {name!r} has no layer groups for transfer learning; use a CIFAR "
            f"ResNet, baseline_cnn or one of the backbones resnet50, efficientnetb0, mobilenetv2"
        )
    return rules[name]


def layer_groups(model: keras.Model) -> list[list[str]]:
    """Layer names of groups 1..n (input side first); the head's layers are in none of them."""
    rule = _group_rule(model)
    grouped: dict[int, list[str]] = {}
    for layer in model.layers:
        name = layer.name
        if name.startswith(HEAD_PREFIXES):
            continue
        group = rule(name)
        if group is None:
            if not name.startswith(_INPUT_PREFIXES) and layer.weights:
                raise CifarkitError(f"layer {name!r} of {model.name!r} falls in no layer group")
            group = 1
        grouped.setdefault(group, []).append(name)
    return [grouped[k] for k in sorted(grouped)]


def frozen_groups(transfer: TransferConfig, epoch: int, num_groups: int) -> int:
    """How many groups (from the input side) are frozen during 0-based ``epoch``."""
    if transfer.freeze_through > num_groups:
        raise CifarkitError(
            f"transfer.freeze_through={transfer.freeze_through} but the model has only "
            f"{num_groups} layer groups; use 0..{num_groups}"
        )
    if not transfer.unfreeze_every:
        return transfer.freeze_through
    return max(0, transfer.freeze_through - epoch // transfer.unfreeze_every)


def set_frozen(model: keras.Model, groups: list[list[str]], frozen: int) -> None:
    """Freeze groups 1..``frozen``, make every other layer trainable."""
    frozen_names = {name for group in groups[:frozen] for name in group}
    for layer in model.layers:
        layer.trainable = layer.name not in frozen_names


def lr_factors(groups: list[list[str]], decay: float) -> dict[str, float]:
    """Per-layer LR factor: ``decay ** d`` for a group ``d`` groups below the head (head: 1)."""
    n = len(groups)
    return {name: decay ** (n - i) for i, group in enumerate(groups) for name in group}


@keras.saving.register_keras_serializable(package="cifarkit")
class GroupLRSGD(keras.optimizers.SGD):
    """SGD whose learning rate is multiplied by ``lr_factors[layer name]`` per variable (default 1)."""

    def __init__(self, lr_factors: Mapping[str, float] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lr_factors = {str(k): float(v) for k, v in (lr_factors or {}).items()}

    def factor(self, variable: Any) -> float:
        """The factor of a model variable, found by its layer's name (``path`` = ``layer/var``)."""
        return self.lr_factors.get(variable.path.split("/")[0], 1.0)

    def apply(self, grads: Any, trainable_variables: Any = None) -> Any:
        variables = (
            self._trainable_variables if trainable_variables is None else list(trainable_variables)
        )
        scaled = [
            g if g is None or self.factor(v) == 1.0 else g * self.factor(v)
            for g, v in zip(grads, variables, strict=True)
        ]
        return super().apply(scaled, trainable_variables)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "lr_factors": dict(self.lr_factors)}


def init_from_source(model: keras.Model, source_path: Path) -> int:
    """Copy weights from the model in ``source_path`` into every same-named layer but the head.

    Returns the number of layers copied; a layer missing from the source or of another
    shape is an error (the source must be the same architecture).
    """
    try:
        stat = Path(source_path).stat()
        by_name = _source_weights(str(source_path), (stat.st_ino, stat.st_mtime_ns, stat.st_size))
    except Exception as exc:  # noqa: BLE001 - any failure means the file is not a usable model
        raise CifarkitError(
            f"cannot load the source model {source_path} ({type(exc).__name__}); "
            "delete that run and train it again"
        ) from None
    copied = 0
    for layer in model.layers:
        if layer.name.startswith(HEAD_PREFIXES) or not layer.weights:
            continue
        weights = by_name.get(layer.name)
        shapes = [tuple(w.shape) for w in layer.weights]
        if weights is None or [w.shape for w in weights] != shapes:
            raise CifarkitError(
                f"source model {source_path} does not match layer {layer.name!r} of "
                f"{model.name!r}; the source run must use the same architecture"
            )
        layer.set_weights(weights)
        copied += 1
    log.info("initialised %d layers of %s from %s", copied, model.name, source_path)
    return copied


@functools.lru_cache(maxsize=2)
def _source_weights(path: str, version: tuple[int, ...]) -> dict[str, list[np.ndarray]]:
    """Each layer's weights in the model file ``path``, read once per ``version`` of the file
    (its inode, modification time and size): a transfer grid starts every run from the same
    source model, and loading it cost each ResNet20 run 0.4-0.9 s (AVX-512 host)."""
    from cifarkit.models import load_model

    return {layer.name: layer.get_weights() for layer in load_model(path).layers}


class ProgressiveUnfreeze(keras.callbacks.Callback):
    """At each epoch start, freeze the groups :func:`frozen_groups` names; rebuild the train step if that changed."""

    def __init__(self, transfer: TransferConfig, groups: list[list[str]], frozen_now: int) -> None:
        super().__init__()
        self.transfer, self.groups, self.frozen_now = transfer, groups, frozen_now

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        wanted = frozen_groups(self.transfer, epoch, len(self.groups))
        if wanted != self.frozen_now:
            set_frozen(self.model, self.groups, wanted)
            # Keras traces the training step with the trainable variables of that moment (the
            # gradients taken, the loss's L2 terms over trainable kernels): a step traced while
            # more layers were frozen would go on training the old set.
            self.model.make_train_function(force=True)
            log.info("epoch %d: %d of %d layer groups frozen", epoch + 1, wanted, len(self.groups))
            self.frozen_now = wanted


@dataclass
class FineTuning:
    """What :func:`cifarkit.training.fit.train_run` needs for a transfer run: groups and LR factors."""

    transfer: TransferConfig
    groups: list[list[str]]
    lr_factors: dict[str, float] | None

    def start(self, model: keras.Model, start_epoch: int) -> ProgressiveUnfreeze:
        """Freeze for ``start_epoch`` (after any checkpoint restore); the callback does the rest.

        ``model`` was compiled by :func:`~cifarkit.training.recipe.compile_model`, which built
        the optimizer over every variable that may ever train, before anything is frozen, so
        its slots (and the checkpoint's optimizer variables) are the same in every epoch,
        whatever is frozen at the time.
        """
        frozen = frozen_groups(self.transfer, start_epoch, len(self.groups))
        set_frozen(model, self.groups, frozen)
        return ProgressiveUnfreeze(self.transfer, self.groups, frozen)


def prepare(
    transfer: TransferConfig | None, model: keras.Model, source_model: Path | None = None
) -> FineTuning | None:
    """Check the transfer settings against ``model`` and copy in the source model's weights.

    ``source_model`` is the ``model.keras`` of the run ``transfer.source_run`` names; the
    caller resolves it (training knows no run store).
    """
    if transfer is None:
        return None
    groups = layer_groups(model)
    frozen_groups(transfer, 0, len(groups))  # validates freeze_through against this model
    if transfer.source_run is not None:
        if source_model is None:
            raise CifarkitError(
                f"transfer.source_run={transfer.source_run!r} needs its model file; "
                "train through cifarkit.runs.get_or_train, which finds it in the run store"
            )
        init_from_source(model, source_model)
    factors = (
        lr_factors(groups, transfer.lr_group_decay) if transfer.lr_group_decay != 1.0 else None
    )
    return FineTuning(transfer, groups, factors)
