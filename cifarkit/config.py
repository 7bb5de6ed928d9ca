"""Experiment configuration: YAML files validated by pydantic, merged with a profile, hashed.

An *experiment* (``configs/<name>.yaml``) states a recipe; a *profile*
(``configs/profiles/<profile>.yaml``: ``smoke``, ``cpu``, ``full``) scales it to a budget
(epochs, data subset, seeds) and is deep-merged over it. The merged mapping is validated
by :class:`ExperimentConfig`: unknown keys are forbidden, types and ranges are checked,
and contradictory options are rejected. Every failure becomes one :class:`ConfigError`
line naming the file, the key path, the bad value and what is allowed.

The content hash (:meth:`ExperimentConfig.content_hash`) is a SHA-256 of a canonical JSON
dump (sorted keys), so it is the same in every process and for any key order in the YAML.
Fields that do not change what a run computes (``description``, ``seeds``,
``data.source``: where the data lives, which the run key covers by the data's content
hash instead) are left out of it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cifarkit.errors import ConfigError
from cifarkit.paths import configs_dir

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
    ("train", "bfloat16"),
    ("data", "classes"),
    ("transfer",),
)


def _model_class(annotation: Any) -> Any:
    """The pydantic model inside ``Model | None`` (or the annotation itself)."""
    if hasattr(annotation, "model_fields"):
        return annotation
    return next(arg for arg in typing.get_args(annotation) if hasattr(arg, "model_fields"))


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
        None, min_length=2,
        description="Keep only these classes (names), relabelled 0..k-1 in this order; None = all.",
    )

    @model_validator(mode="after")
    def _distinct_classes(self) -> DataConfig:
        if self.classes is not None and len(set(self.classes)) != len(self.classes):
            raise ValueError(f"data.classes {list(self.classes)} names a class twice; list each once")
        return self


class AirbenchConfig(_Strict):
    """The airbench94-style network's switches (Jordan 2024); see :mod:`cifarkit.fast`."""

    widths: tuple[int, int, int] = Field((64, 256, 256), description="Channels of the three conv groups.")
    whiten: bool = Field(True, description="Frozen 2x2 whitening conv initialised from training patches.")
    whiten_images: int = Field(5000, ge=10, le=50000, description="Training images the whitening uses.")
    dirac: bool = Field(True, description="Identity (dirac) init of each conv's first in-channels filters.")
    activation: Literal["gelu", "relu"] = "gelu"
    bn_bias_lr: float = Field(64.0, ge=1.0, le=4096.0,
                              description="Learning-rate multiplier of the BN biases (1 = plain).")
    bn_momentum: float = Field(0.6, gt=0.0, lt=1.0, description="PyTorch convention: weight of the new batch.")
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

    @model_validator(mode="before")
    @classmethod
    def _airbench_defaults(cls, data: Any) -> Any:
        # One canonical form (and hash) whether or not the YAML spells out the defaults.
        if isinstance(data, dict) and data.get("name") == "airbench" and data.get("airbench") is None:
            return {**data, "airbench": {}}
        return data

    @model_validator(mode="after")
    def _weights_only_for_backbones(self) -> ModelConfig:
        if self.airbench is not None and self.name != "airbench":
            raise ValueError(f"the airbench options apply to model 'airbench' only, not {self.name!r}")
        if self.cifar_native and self.weights != "none":
            raise ValueError(f"weights={self.weights!r} needs a keras.applications backbone, not {self.name!r}")
        return self

    @property
    def cifar_native(self) -> bool:
        """A model built for 32x32 CIFAR inputs (not a keras.applications backbone)."""
        return self.name in ("baseline_cnn", "airbench") or self.name.startswith("resnet") and self.name != "resnet50"


class OptimizerConfig(_Strict):
    name: Literal["sgd", "adamw"] = "sgd"
    lr: float = Field(0.1, gt=0.0, le=10.0, description="Peak learning rate.")
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    nesterov: bool = True
    weight_decay: float = Field(
        5e-4, ge=0.0, lt=1.0,
        description="SGD: coupled L2 (gradient += wd * w, as in the papers); AdamW: decoupled.",
    )


class ScheduleConfig(_Strict):
    name: Literal["constant", "step", "cosine", "onecycle", "triangular"] = "cosine"
    warmup_epochs: float = Field(0.0, ge=0.0, description="Linear warmup before cosine decay.")
    step_epochs: tuple[int, ...] = Field((), description="Epochs at which a step schedule decays.")
    step_factor: float = Field(0.1, gt=0.0, lt=1.0)
    final_lr_fraction: float = Field(0.0, ge=0.0, le=1.0, description="End LR / peak LR.")
    triangle_start: float = Field(0.2, ge=0.0, le=1.0, description="triangular: start LR / peak LR.")
    triangle_peak: float = Field(0.23, gt=0.0, lt=1.0, description="triangular: fraction of training at the peak.")

    @model_validator(mode="after")
    def _step_needs_milestones(self) -> ScheduleConfig:
        if self.name != "triangular" and (self.triangle_start, self.triangle_peak) != (0.2, 0.23):
            raise ValueError(f"triangle_start/triangle_peak are only used by schedule 'triangular', not {self.name!r}")
        if self.name == "step" and not self.step_epochs:
            raise ValueError("schedule 'step' needs step_epochs, e.g. [15, 25]")
        if self.name != "step" and self.step_epochs:
            raise ValueError(f"step_epochs is only used by schedule 'step', not {self.name!r}")
        if self.name != "cosine" and self.warmup_epochs:
            raise ValueError(f"warmup_epochs is only used by schedule 'cosine', not {self.name!r}"
                             " (onecycle has its own warm-up phase)")
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
        "per_image", description="per_image: tf.data map per image; batch: vectorised over each batch.")
    alternating_flip: bool = Field(
        False, description="batch mode: odd epochs flip exactly the images even epochs did not (airbench).")

    @model_validator(mode="after")
    def _batch_mode_options(self) -> AugmentConfig:
        if self.alternating_flip and (self.mode != "batch" or not self.flip):
            raise ValueError("alternating_flip needs mode: batch and flip: true")
        return self


class EmaConfig(_Strict):
    """Weight averaging. ``ramp: none`` is Keras' optimizer-level EMA (``use_ema``, fixed
    momentum); overwriting every few steps makes it lookahead. ``ramp: cubic`` is airbench's
    lookahead (:class:`cifarkit.fast.Lookahead`), whose averaging grows as (step/total)^3."""

    momentum: float = Field(0.99, ge=0.0, lt=1.0)
    overwrite_every: int | None = Field(
        None, ge=1, description="Copy the average into the weights every N steps (None: at the end only).")
    ramp: Literal["none", "cubic"] = Field(
        "none", description="none: Keras use_ema, fixed momentum; cubic: airbench lookahead, momentum^N x (t/T)^3.")

    @model_validator(mode="after")
    def _cubic_needs_a_period(self) -> EmaConfig:
        if self.ramp == "cubic" and self.overwrite_every is None:
            raise ValueError("train.ema.ramp 'cubic' is lookahead and needs train.ema.overwrite_every "
                             "(airbench uses 5)")
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
    snapshot_epochs: tuple[int, ...] = Field((), description="Also save the model after these epochs.")
    deterministic: bool = Field(True, description="TF op determinism (same seed, same result).")
    mixed_precision: bool = Field(False, description="mixed_float16; only applied on a GPU.")
    bfloat16: bool = Field(
        False, description="mixed_bfloat16 (bfloat16 compute, float32 weights) on any device; airbench "
                           "trained 1.35x faster on a CPU with AVX-512 BF16; a CPU without native "
                           "bfloat16 emulates it (not measured here; expect it slower).")

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if self.bfloat16 and self.mixed_precision:
            raise ValueError("bfloat16 and mixed_precision (float16) exclude each other; set one of them")
        if self.schedule.warmup_epochs >= self.epochs:
            raise ValueError(
                f"schedule.warmup_epochs={self.schedule.warmup_epochs} must be below epochs={self.epochs}"
            )
        late = [e for e in self.snapshot_epochs if not 1 <= e <= self.epochs]
        if late:
            raise ValueError(f"snapshot_epochs {late} fall outside 1..epochs={self.epochs}")
        beyond = [e for e in self.schedule.step_epochs if not 1 <= e < self.epochs]
        if beyond:
            raise ValueError(f"schedule.step_epochs {beyond} fall outside 1..epochs-1={self.epochs - 1}")
        return self


class TransferConfig(_Strict):
    """Initialise from another run (or the backbone's ImageNet weights); freeze/unfreeze layer groups.

    Layer groups run from the input to the head (CIFAR ResNets: stage 1 with the stem,
    stage 2, stage 3; keras.applications backbones: four resolution stages; see
    :func:`cifarkit.finetune.layer_groups`); the new ``logits`` layer always trains.
    """

    source_run: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_.-]+-[0-9a-f]{12}$",
        description="Run folder (<experiment>-<hash12>) whose weights initialise every layer but the "
                    "head; None = the model's own initialisation (e.g. its ImageNet weights).",
    )
    freeze_through: int = Field(0, ge=0, le=8, description="Freeze layer groups 1..k at the start; 0 = none.")
    unfreeze_every: int = Field(
        0, ge=0, le=1000,
        description="Progressive unfreezing: one more group (from the top) every N epochs; 0 = never.",
    )
    lr_group_decay: float = Field(
        1.0, gt=0.0, le=1.0,
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
    transfer: TransferConfig | None = Field(None, description="Transfer learning (None = train from scratch).")

    @model_validator(mode="after")
    def _transfer_consistent(self) -> ExperimentConfig:
        t = self.transfer
        if t is not None and t.lr_group_decay != 1.0 and self.train.optimizer.name != "sgd":
            # Differential LR scales gradients per group: exactly a per-group LR for SGD, but
            # Adam-type updates are invariant to a gradient's scale, so it would do nothing.
            raise ValueError(f"transfer.lr_group_decay={t.lr_group_decay} needs optimizer sgd (Adam-type "
                             f"updates ignore gradient scale), not {self.train.optimizer.name!r}")
        if t is not None and t.unfreeze_every and not t.freeze_through:
            raise ValueError("transfer.unfreeze_every needs transfer.freeze_through >= 1 (groups to unfreeze)")
        return self

    def identity(self) -> dict[str, Any]:
        """The fields that decide what a run computes (the hash's input)."""
        dumped = self.model_dump(mode="json")
        for key in ("description", "seeds", "profile", "name"):
            dumped.pop(key)
        dumped["data"].pop("source")
        for path in _HASH_OMIT_AT_DEFAULT:
            node, owner = dumped, ExperimentConfig
            for key in path[:-1]:
                node, owner = node.get(key), _model_class(owner.model_fields[key].annotation)
                if node is None:  # an optional section that is off (or omitted): nothing inside to omit
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


# --------------------------------------------------------------------------- loading


def available(kind: Literal["experiments", "profiles"]) -> list[str]:
    folder = configs_dir() if kind == "experiments" else configs_dir() / "profiles"
    return sorted(p.stem for p in folder.glob("*.yaml"))


def _locate(name_or_path: str | Path, kind: Literal["experiments", "profiles"]) -> Path:
    text = str(name_or_path)
    as_path = Path(text).expanduser()
    if text.endswith((".yaml", ".yml")) or "/" in text:
        if not as_path.is_file():
            raise ConfigError(f"{text}: config file not found; pass an existing YAML file or one of: "
                              f"{', '.join(available(kind))}")
        return as_path
    folder = configs_dir() if kind == "experiments" else configs_dir() / "profiles"
    candidate = folder / f"{text}.yaml"
    if not candidate.is_file():
        label = "experiment" if kind == "experiments" else "profile"
        raise ConfigError(f"unknown {label} {text!r}; choose one of: {', '.join(available(kind)) or '(none)'}"
                          f" (files in {folder}) or pass a path to a YAML file")
    return candidate


def _duplicate_key(node: yaml.Node | None) -> tuple[str, yaml.Node, yaml.Node] | None:
    """The first key that a mapping in ``node`` repeats: (dotted path, first, repeat)."""
    seen_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, str]] = [(node, "")] if node is not None else []
    while stack:
        current, prefix = stack.pop()
        if id(current) in seen_nodes:  # aliases may share (or nest) nodes
            continue
        seen_nodes.add(id(current))
        if isinstance(current, yaml.MappingNode):
            first: dict[str, yaml.Node] = {}
            for key, value in current.value:
                if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                    continue
                dotted = f"{prefix}{key.value}"
                if key.value in first:
                    return dotted, first[key.value], key
                first[key.value] = key
                stack.append((value, dotted + "."))
        elif isinstance(current, yaml.SequenceNode):
            stack.extend((item, prefix) for item in current.value)
    return None


def read_yaml(path: Path) -> dict[str, Any]:
    """Parse a YAML mapping with ``yaml.safe_load`` (never the unsafe loader).

    Python tags (``!!python/object/apply:...``) are refused by ``safe_load`` and reported
    as such; a key given twice in one mapping (which YAML loaders resolve silently, the
    last one winning) is an error too.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config ({exc}); check the file") from None
    try:
        # compose() only builds the node graph (no objects), so it is safe for any input.
        duplicate = _duplicate_key(yaml.compose(text, Loader=yaml.SafeLoader))
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if isinstance(exc, yaml.constructor.ConstructorError):
            raise ConfigError(f"{path}: YAML tag not allowed{where}: {problem}; configs hold plain "
                              "data only (read with yaml.safe_load), remove the tag") from None
        raise ConfigError(f"{path}: malformed YAML{where}: {problem}; fix the syntax") from None
    if duplicate is not None:
        dotted, first, again = duplicate
        raise ConfigError(f"{path}: key {dotted} appears twice (lines {first.start_mark.line + 1} and "
                          f"{again.start_mark.line + 1}); keep one of them")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of keys, got {type(data).__name__}")
    return data


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` with ``override`` merged in; nested mappings merge, the rest replaces."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _has_path(mapping: Any, path: tuple[Any, ...]) -> bool:
    for key in path:
        if not isinstance(mapping, dict) or key not in mapping:
            return False
        mapping = mapping[key]
    return True


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] = ExperimentConfig
    for key in loc[:-1]:
        field = model.model_fields.get(str(key))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _describe(error: dict[str, Any], files: list[tuple[Path, dict[str, Any]]]) -> str:
    loc = tuple(error["loc"])
    key_path = ".".join(str(p) for p in loc) or "(top level)"
    # Name the file that set the bad key: the last one (profile) wins, as in the merge.
    source = files[0][0]
    for path, raw in files:
        if loc and _has_path(raw, loc):
            source = path
    if error["type"] == "extra_forbidden":
        allowed = ", ".join(_allowed_keys(loc))
        return f"{source}: {key_path}: unknown key; allowed keys here: {allowed}"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "missing":
        return f"{source}: {key_path}: required key is missing; add it"
    value = error.get("input")
    if isinstance(value, dict):
        return f"{source}: {key_path}: {message}"
    return f"{source}: {key_path} = {value!r}: {message}"


def dotted_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Turn ``{"train.epochs": 3, "data.train_per_class": 100}`` into a nested mapping."""
    nested: dict[str, Any] = {}
    for dotted, value in overrides.items():
        keys = str(dotted).split(".")
        if not all(keys):
            raise ConfigError(f"override {dotted!r}: empty key segment; write keys like train.epochs")
        node = nested
        for key in keys[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {dotted!r} conflicts with override {key!r} given as a value")
            node = child
        if isinstance(node.get(keys[-1]), dict) and not isinstance(value, dict):
            raise ConfigError(f"override {dotted!r} conflicts with a more specific override below it")
        node[keys[-1]] = value
    return nested


def overrides_between(base: ExperimentConfig, variant: ExperimentConfig) -> dict[str, Any]:
    """The dotted overrides that turn ``base`` into ``variant`` (leaf values that differ)."""

    def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
        if isinstance(node, dict):
            out: dict[str, Any] = {}
            for key, value in node.items():
                out.update(flatten(value, f"{prefix}{key}."))
            return out
        return {prefix[:-1]: node}

    skip = {"name", "profile", "description", "seeds"}
    a, b = flatten(base.model_dump(mode="json")), flatten(variant.model_dump(mode="json"))
    return {k: v for k, v in b.items() if k.split(".")[0] not in skip and a.get(k, object()) != v}


def load_config(experiment: str | Path, profile: str | Path | None = "cpu",
                overrides: Mapping[str, Any] | None = None) -> ExperimentConfig:
    """Load an experiment (name under ``configs/`` or a YAML path), merge a profile, validate.

    ``overrides`` (dotted keys, e.g. ``{"train.augment.enabled": False}``) are merged last,
    so chapters and ablations can derive variants of an experiment; a bad override fails
    like a bad file, naming the key.
    """
    exp_path = _locate(experiment, "experiments")
    raw_exp = read_yaml(exp_path)
    if not raw_exp:
        raise ConfigError(f"{exp_path}: the experiment file is empty; it needs at least "
                          "`model: {name: ...}` (see configs/resnet20.yaml)")
    files = [(exp_path, raw_exp)]
    merged = {"name": exp_path.stem, **raw_exp}
    if profile not in (None, "none"):
        prof_path = _locate(profile, "profiles")
        raw_prof = read_yaml(prof_path)
        if "name" in raw_prof:
            raise ConfigError(f"{prof_path}: name: a profile cannot rename the experiment; remove the key")
        files.append((prof_path, raw_prof))
        merged = deep_merge(merged, raw_prof)
        merged["profile"] = prof_path.stem
    if overrides:
        raw_over = dotted_overrides(overrides)
        if "name" in raw_over or "profile" in raw_over:
            raise ConfigError("overrides cannot set name or profile; pass them as arguments")
        files.append((Path("<overrides>"), raw_over))
        merged = deep_merge(merged, raw_over)
    try:
        cfg = ExperimentConfig.model_validate(merged)
    except ValidationError as exc:
        errors = exc.errors()
        first = _describe(errors[0], files)
        more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
        raise ConfigError(first + more) from None
    _check_model_options(cfg, files)
    return cfg


def _check_model_options(cfg: ExperimentConfig, files: list[tuple[Path, dict[str, Any]]]) -> None:
    """Backbone-only model options on a CIFAR-native model fail here, not at training time.

    (:class:`ModelConfig` itself stays constructible with them, so that
    :func:`cifarkit.models.build_model` can be tested on such configs.)
    """
    model = cfg.model
    if not model.cifar_native:
        return
    for key, bad in (("weights_path", model.weights_path is not None), ("input_size", model.input_size != 32)):
        if bad:
            source = next((path for path, raw in reversed(files) if _has_path(raw, ("model", key))), files[0][0])
            raise ConfigError(f"{source}: model.{key} = {getattr(model, key)!r}: only keras.applications "
                              f"backbones use it; {model.name!r} trains from scratch on 32x32 images, "
                              "remove the key")
