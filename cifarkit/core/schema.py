"""The experiment config's schema: one frozen pydantic model per section, and the content hash.

Unknown keys are forbidden, types and ranges are checked, and contradictory options are
rejected (:mod:`cifarkit.core.config` turns each failure into one line). The content hash
(:meth:`ExperimentConfig.content_hash`) is a SHA-256 of a canonical JSON dump (sorted
keys), so it is the same in every process and for any key order in the YAML. Fields that
do not change what a run computes (``description``, ``seeds``, ``data.source``: where the
data lives, which the run key covers by the data's content hash instead) are left out of it.
"""

from __future__ import annotations

import hashlib
import json
import typing
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

ModelName = Literal[
    "baseline_cnn",
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
    "resnet50",
    "efficientnetb0",
    "mobilenetv2",
    "airbench",
]

# Fields added after runs were stored: left out of the content hash while they hold their
# default, so every config written before them keeps its hash (and its runs).
_HASH_OMIT_AT_DEFAULT: tuple[tuple[str, ...], ...] = (
    ("model", "airbench"),
    ("train", "schedule", "triangle_start"),
    ("train", "schedule", "triangle_peak"),
    ("train", "augment", "mode"),
    ("train", "augment", "alternating_flip"),
    ("train", "ema"),
    ("train", "ema", "ramp"),
    ("data", "classes"),
    ("transfer",),
)


def model_class(annotation: Any) -> Any:
    """The pydantic model inside ``Model | None`` (or the annotation itself)."""
    if hasattr(annotation, "model_fields"):
        return annotation
    return next(arg for arg in typing.get_args(annotation) if hasattr(arg, "model_fields"))


#: The two switches train.precision replaced (stored configs spell out both).
_LEGACY_PRECISION_SWITCHES = ("bfloat16", "mixed_precision")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Strict):
    """Which data, and how the 50,000 training images are split."""

    source: str | None = Field(
        None, description="Path to the data; falls back to $CIFARKIT_DATA, then Keras' download."
    )
    val_per_class: int = Field(1000, ge=1, le=2500, description="Validation images per class.")
    split_seed: int = Field(0, ge=0, description="Seed of the stratified train/val split.")
    train_per_class: int | None = Field(
        None, ge=1, le=4999, description="Subsample the training split (smoke runs); None = all."
    )
    test_limit: int | None = Field(
        None, ge=10, le=10000, description="Evaluate on the first N test images (stratified)."
    )
    classes: tuple[str, ...] | None = Field(
        None,
        min_length=2,
        description="Keep only these classes (names), relabelled 0..k-1 in this order; None = all.",
    )

    @model_validator(mode="after")
    def _distinct_classes(self) -> DataConfig:
        if self.classes is not None and len(set(self.classes)) != len(self.classes):
            raise ValueError(
                f"data.classes {list(self.classes)} names a class twice; list each once"
            )
        return self


class AirbenchConfig(_Strict):
    """The airbench94-style network's switches (Jordan 2024); see :mod:`cifarkit.models.airbench`."""

    widths: tuple[int, int, int] = Field(
        (64, 256, 256), description="Channels of the three conv groups."
    )
    whiten: bool = Field(
        True, description="Frozen 2x2 whitening conv initialised from training patches."
    )
    whiten_images: int = Field(
        5000, ge=10, le=50000, description="Training images the whitening uses."
    )
    dirac: bool = Field(
        True, description="Identity (dirac) init of each conv's first in-channels filters."
    )
    activation: Literal["gelu", "relu"] = "gelu"
    bn_bias_lr: float = Field(
        64.0,
        ge=1.0,
        le=4096.0,
        description="Learning-rate multiplier of the BN biases (1 = plain).",
    )
    bn_momentum: float = Field(
        0.6, gt=0.0, lt=1.0, description="PyTorch convention: weight of the new batch."
    )
    logit_scale: float = Field(1 / 9, gt=0.0, le=1.0, description="Multiply the logits by this.")


class ModelConfig(_Strict):
    name: ModelName
    airbench: AirbenchConfig | None = Field(None, description="Switches of model 'airbench' only.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout before the classifier.")
    weights: Literal["none", "imagenet"] = Field(
        "none", description="Backbone weights for keras.applications models."
    )
    weights_path: str | None = Field(None, description="Local file with the backbone weights.")
    input_size: int = Field(32, ge=32, le=512, description="Resize inputs to this size.")
    batch_norm: Literal["fused", "keras"] = Field(
        "fused",
        description="Batch normalisation of the CIFAR models: 'fused' is TensorFlow's fused kernel "
        "(cifarkit.models.batchnorm), 'keras' is Keras' own layer (the engine's reference).",
    )

    @model_validator(mode="before")
    @classmethod
    def _airbench_defaults(cls, data: Any) -> Any:
        # One canonical form (and hash) whether or not the YAML spells out the defaults.
        if (
            isinstance(data, dict)
            and data.get("name") == "airbench"
            and data.get("airbench") is None
        ):
            return {**data, "airbench": {}}
        return data

    @model_validator(mode="after")
    def _weights_only_for_backbones(self) -> ModelConfig:
        if self.airbench is not None and self.name != "airbench":
            raise ValueError(
                f"the airbench options apply to model 'airbench' only, not {self.name!r}"
            )
        if self.cifar_native and self.weights != "none":
            raise ValueError(
                f"weights={self.weights!r} needs a keras.applications backbone, not {self.name!r}"
            )
        return self

    @property
    def cifar_native(self) -> bool:
        """A model built for 32x32 CIFAR inputs (not a keras.applications backbone)."""
        return (
            self.name in ("baseline_cnn", "airbench")
            or self.name.startswith("resnet")
            and self.name != "resnet50"
        )


class OptimizerConfig(_Strict):
    name: Literal["sgd", "adamw"] = "sgd"
    lr: float = Field(0.1, gt=0.0, le=10.0, description="Peak learning rate.")
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    nesterov: bool = True
    weight_decay: float = Field(
        5e-4,
        ge=0.0,
        lt=1.0,
        description="SGD: coupled L2 (gradient += wd * w, as in the papers); AdamW: decoupled.",
    )


class ScheduleConfig(_Strict):
    name: Literal["constant", "step", "cosine", "onecycle", "triangular"] = "cosine"
    warmup_epochs: float = Field(0.0, ge=0.0, description="Linear warmup before cosine decay.")
    step_epochs: tuple[int, ...] = Field((), description="Epochs at which a step schedule decays.")
    step_factor: float = Field(0.1, gt=0.0, lt=1.0)
    final_lr_fraction: float = Field(0.0, ge=0.0, le=1.0, description="End LR / peak LR.")
    triangle_start: float = Field(
        0.2, ge=0.0, le=1.0, description="triangular: start LR / peak LR."
    )
    triangle_peak: float = Field(
        0.23, gt=0.0, lt=1.0, description="triangular: fraction of training at the peak."
    )

    @model_validator(mode="after")
    def _step_needs_milestones(self) -> ScheduleConfig:
        if self.name != "triangular" and (self.triangle_start, self.triangle_peak) != (0.2, 0.23):
            raise ValueError(
                f"triangle_start/triangle_peak are only used by schedule 'triangular', not {self.name!r}"
            )
        if self.name == "step" and not self.step_epochs:
            raise ValueError("schedule 'step' needs step_epochs, e.g. [15, 25]")
        if self.name != "step" and self.step_epochs:
            raise ValueError(f"step_epochs is only used by schedule 'step', not {self.name!r}")
        if self.name != "cosine" and self.warmup_epochs:
            raise ValueError(
                f"warmup_epochs is only used by schedule 'cosine', not {self.name!r}"
                " (onecycle has its own warm-up phase)"
            )
        return self


class LossConfig(_Strict):
    name: Literal["crossentropy", "focal"] = "crossentropy"
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    focal_gamma: float = Field(2.0, ge=0.0, le=10.0)
    class_weighted: bool = Field(False, description="Weight classes by inverse frequency.")


class AugmentConfig(_Strict):
    enabled: bool = True
    crop_padding: int = Field(4, ge=0, le=16, description="Pad-and-random-crop margin in px.")
    flip: bool = True
    cutout: int = Field(0, ge=0, le=32, description="Cutout square side in px; 0 = off.")
    mode: Literal["per_image", "batch"] = Field(
        "per_image",
        description="per_image: tf.data map per image; batch: vectorised over each batch.",
    )
    alternating_flip: bool = Field(
        False,
        description="batch mode: odd epochs flip exactly the images even epochs did not (airbench).",
    )

    @model_validator(mode="after")
    def _batch_mode_options(self) -> AugmentConfig:
        if self.alternating_flip and (self.mode != "batch" or not self.flip):
            raise ValueError("alternating_flip needs mode: batch and flip: true")
        return self


class EmaConfig(_Strict):
    """Weight averaging. ``ramp: none`` is Keras' optimizer-level EMA (``use_ema``, fixed
    momentum); overwriting every few steps makes it lookahead. ``ramp: cubic`` is airbench's
    lookahead (:class:`cifarkit.training.averaging.Lookahead`), whose averaging grows as (step/total)^3."""

    momentum: float = Field(0.99, ge=0.0, lt=1.0)
    overwrite_every: int | None = Field(
        None,
        ge=1,
        description="Copy the average into the weights every N steps (None: at the end only).",
    )
    ramp: Literal["none", "cubic"] = Field(
        "none",
        description="none: Keras use_ema, fixed momentum; cubic: airbench lookahead, momentum^N x (t/T)^3.",
    )

    @model_validator(mode="after")
    def _cubic_needs_a_period(self) -> EmaConfig:
        if self.ramp == "cubic" and self.overwrite_every is None:
            raise ValueError(
                "train.ema.ramp 'cubic' is lookahead and needs train.ema.overwrite_every "
                "(airbench uses 5)"
            )
        return self


class TrainConfig(_Strict):
    epochs: int = Field(30, ge=1, le=1000)
    batch_size: int = Field(128, ge=1, le=8192)
    grad_accum_steps: int = Field(1, ge=1, le=256, description="Effective batch = batch x this.")
    optimizer: OptimizerConfig = OptimizerConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    loss: LossConfig = LossConfig()
    augment: AugmentConfig = AugmentConfig()
    ema: EmaConfig | None = Field(None, description="Weight EMA / lookahead (None = off).")
    snapshot_epochs: tuple[int, ...] = Field(
        (), description="Also save the model after these epochs."
    )
    validate_every: int = Field(
        1,
        ge=1,
        le=1000,
        description="Run the validation pass after every this many epochs (it must divide "
        "epochs, so the last epoch is always validated). A full validation pass "
        "costs as much as a fifth of a short subset run: studies that do not "
        "plot validation curves validate only at the end.",
    )
    deterministic: bool = Field(True, description="TF op determinism (same seed, same result).")
    precision: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description="Compute precision (weights stay float32). 'auto' is resolved when the config "
        "is loaded: float16 with a GPU, bfloat16 on a CPU with native bfloat16 "
        "(avx512_bf16, amx_bf16), float32 otherwise; see cifarkit.core.precision.",
    )

    @model_validator(mode="before")
    @classmethod
    def _resolve_precision(cls, data: Any) -> Any:
        # 'auto' never reaches the hash: the run key names the precision that will be computed.
        from cifarkit.core import precision

        if not isinstance(data, dict):
            return data
        for old in _LEGACY_PRECISION_SWITCHES:  # a stored config's pair is read by ExperimentConfig
            if old in data:
                raise ValueError(
                    f"train.{old} was replaced by train.precision; set train.precision to "
                    "one of auto, float32, bfloat16, float16"
                )
        if data.get("precision", "auto") == "auto":
            data = {**data, "precision": precision.resolve("auto")}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if self.schedule.warmup_epochs >= self.epochs:
            raise ValueError(
                f"schedule.warmup_epochs={self.schedule.warmup_epochs} must be below epochs={self.epochs}"
            )
        if self.epochs % self.validate_every:
            raise ValueError(
                f"validate_every={self.validate_every} must divide epochs={self.epochs}, so that "
                "the last epoch is validated; choose a divisor of epochs (1 validates every epoch)"
            )
        late = [e for e in self.snapshot_epochs if not 1 <= e <= self.epochs]
        if late:
            raise ValueError(f"snapshot_epochs {late} fall outside 1..epochs={self.epochs}")
        beyond = [e for e in self.schedule.step_epochs if not 1 <= e < self.epochs]
        if beyond:
            raise ValueError(
                f"schedule.step_epochs {beyond} fall outside 1..epochs-1={self.epochs - 1}"
            )
        return self


class TransferConfig(_Strict):
    """Initialise from another run (or the backbone's ImageNet weights); freeze/unfreeze layer groups.

    Layer groups run from the input to the head (CIFAR ResNets: stage 1 with the stem,
    stage 2, stage 3; keras.applications backbones: four resolution stages; see
    :func:`cifarkit.training.finetune.layer_groups`); the new ``logits`` layer always trains.
    """

    source_run: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.-]+-[0-9a-f]{12}$",
        description="Run folder (<experiment>-<hash12>) whose weights initialise every layer but the "
        "head; None = the model's own initialisation (e.g. its ImageNet weights).",
    )
    freeze_through: int = Field(
        0, ge=0, le=8, description="Freeze layer groups 1..k at the start; 0 = none."
    )
    unfreeze_every: int = Field(
        0,
        ge=0,
        le=1000,
        description="Progressive unfreezing: one more group (from the top) every N epochs; 0 = never.",
    )
    lr_group_decay: float = Field(
        1.0,
        gt=0.0,
        le=1.0,
        description="Differential LR: a group d groups below the head trains at lr * decay**d (SGD only).",
    )


class ExperimentConfig(_Strict):
    """A fully resolved experiment: experiment file + profile, validated."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    profile: str = "none"
    seeds: int = Field(3, ge=1, le=100, description="How many seeds headline numbers use.")
    data: DataConfig = DataConfig()
    model: ModelConfig
    train: TrainConfig = TrainConfig()
    transfer: TransferConfig | None = Field(
        None, description="Transfer learning (None = train from scratch)."
    )

    @model_validator(mode="before")
    @classmethod
    def _stored_before_precision(cls, data: Any) -> Any:
        # A config stored before train.precision and the fused batch norm spells out both old
        # switches: they read back as the one precision they chose, and its run used Keras'
        # batch norm. (One of them alone was written by hand: TrainConfig refuses it.)
        if not (isinstance(data, dict) and isinstance(data.get("train"), dict)):
            return data
        train = dict(data["train"])
        if not set(_LEGACY_PRECISION_SWITCHES) <= train.keys():
            return data
        bf16, fp16 = (train.pop(key) for key in _LEGACY_PRECISION_SWITCHES)
        train.setdefault("precision", "bfloat16" if bf16 else "float16" if fp16 else "float32")
        data = {**data, "train": train}
        if isinstance(data.get("model"), dict) and "batch_norm" not in data["model"]:
            data["model"] = {**data["model"], "batch_norm": "keras"}
        return data

    @model_validator(mode="after")
    def _transfer_consistent(self) -> ExperimentConfig:
        t = self.transfer
        if t is not None and t.lr_group_decay != 1.0 and self.train.optimizer.name != "sgd":
            # Differential LR scales gradients per group: exactly a per-group LR for SGD, but
            # Adam-type updates are invariant to a gradient's scale, so it would do nothing.
            raise ValueError(
                f"transfer.lr_group_decay={t.lr_group_decay} needs optimizer sgd (Adam-type "
                f"updates ignore gradient scale), not {self.train.optimizer.name!r}"
            )
        if t is not None and t.unfreeze_every and not t.freeze_through:
            raise ValueError(
                "transfer.unfreeze_every needs transfer.freeze_through >= 1 (groups to unfreeze)"
            )
        return self

    def identity(self) -> dict[str, Any]:
        """The fields that decide what a run computes (the hash's input)."""
        dumped = self.model_dump(mode="json")
        for key in ("description", "seeds", "profile", "name"):
            dumped.pop(key)
        dumped["data"].pop("source")
        for path in _HASH_OMIT_AT_DEFAULT:
            node: Any = dumped  # a section of the dump, or None under an omitted section
            owner: type[BaseModel] = ExperimentConfig
            for key in path[:-1]:
                node, owner = node.get(key), model_class(owner.model_fields[key].annotation)
                if node is None:  # an optional section that is off (or omitted): nothing to omit
                    break
            if node is not None and node.get(path[-1]) == owner.model_fields[path[-1]].default:
                node.pop(path[-1], None)
        return dumped

    def content_hash(self) -> str:
        """SHA-256 hex digest of the canonical JSON of :meth:`identity`."""
        canonical = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)
