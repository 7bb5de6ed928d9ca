"""Experiment configuration: YAML files validated by pydantic, merged with a profile, hashed.

An *experiment* (``configs/<name>.yaml``) states a recipe; a *profile*
(``configs/profiles/<profile>.yaml``: ``smoke``, ``cpu``, ``full``) scales it to a budget
(epochs, data subset, seeds) and is deep-merged over it. The merged mapping is validated
by :class:`ExperimentConfig`: unknown keys are forbidden, types and ranges are checked,
and contradictory options are rejected. Every failure becomes one :class:`ConfigError`
line naming the file, the key path, the bad value and what is allowed.
The schema (and the content hash) lives in :mod:`cifarkit.core.schema`; its classes are
importable from here too.
"""

from __future__ import annotations

import copy
import json
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ValidationError

from cifarkit.core.errors import ConfigError
from cifarkit.core.paths import configs_dir
from cifarkit.core.schema import (  # noqa: F401 - re-exported: the config's public types
    AirbenchConfig,
    AugmentConfig,
    DataConfig,
    EmaConfig,
    ExperimentConfig,
    LossConfig,
    ModelConfig,
    ModelName,
    OptimizerConfig,
    ScheduleConfig,
    TrainConfig,
    TransferConfig,
    model_class,
)

# --------------------------------------------------------------------------- loading


def available(kind: Literal["experiments", "profiles"]) -> list[str]:
    folder = configs_dir() if kind == "experiments" else configs_dir() / "profiles"
    return sorted(p.stem for p in folder.glob("*.yaml"))


def _locate(name_or_path: str | Path, kind: Literal["experiments", "profiles"]) -> Path:
    text = str(name_or_path)
    as_path = Path(text).expanduser()
    if text.endswith((".yaml", ".yml")) or "/" in text:
        if not as_path.is_file():
            raise ConfigError(
                f"{text}: config file not found; pass an existing YAML file or one of: "
                f"{', '.join(available(kind))}"
            )
        return as_path
    folder = configs_dir() if kind == "experiments" else configs_dir() / "profiles"
    candidate = folder / f"{text}.yaml"
    if not candidate.is_file():
        label = "experiment" if kind == "experiments" else "profile"
        raise ConfigError(
            f"unknown {label} {text!r}; choose one of: {', '.join(available(kind)) or '(none)'}"
            f" (files in {folder}) or pass a path to a YAML file"
        )
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
            raise ConfigError(
                f"{path}: YAML tag not allowed{where}: {problem}; configs hold plain "
                "data only (read with yaml.safe_load), remove the tag"
            ) from None
        raise ConfigError(f"{path}: malformed YAML{where}: {problem}; fix the syntax") from None
    if duplicate is not None:
        dotted, first, again = duplicate
        raise ConfigError(
            f"{path}: key {dotted} appears twice (lines {first.start_mark.line + 1} and "
            f"{again.start_mark.line + 1}); keep one of them"
        )
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


def _describe(error: Mapping[str, Any], files: list[tuple[Path, dict[str, Any]]]) -> str:
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
            raise ConfigError(
                f"override {dotted!r}: empty key segment; write keys like train.epochs"
            )
        node = nested
        for key in keys[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(
                    f"override {dotted!r} conflicts with override {key!r} given as a value"
                )
            node = child
        if isinstance(node.get(keys[-1]), dict) and not isinstance(value, dict):
            raise ConfigError(
                f"override {dotted!r} conflicts with a more specific override below it"
            )
        node[keys[-1]] = value
    return nested


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level of dotted keys: ``{"train": {"epochs": 3}}`` gives
    ``{"train.epochs": 3}``; an empty nested dict leaves no key. The inverse of
    :func:`dotted_overrides` for a config dump, and the form MLflow params take."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def overrides_between(base: ExperimentConfig, variant: ExperimentConfig) -> dict[str, Any]:
    """The dotted overrides that turn ``base`` into ``variant`` (leaf values that differ)."""
    skip = {"name", "profile", "description", "seeds"}
    a, b = flatten(base.model_dump(mode="json")), flatten(variant.model_dump(mode="json"))
    return {k: v for k, v in b.items() if k.split(".")[0] not in skip and a.get(k, object()) != v}


def load_config(
    experiment: str | Path,
    profile: str | Path | None = "cpu",
    overrides: Mapping[str, Any] | None = None,
) -> ExperimentConfig:
    """Load an experiment, merge a profile over it, apply overrides, validate.

    Parameters
    ----------
    experiment : str or Path
        A name under ``configs/`` (``"resnet20"``) or a path to a YAML file.
    profile : str, Path or None, default "cpu"
        A profile under ``configs/profiles/`` (``"smoke"``, ``"cpu"``, ``"full"``), a path
        to one, or None (or ``"none"``) for the experiment as written.
    overrides : mapping, optional
        Dotted keys merged last, e.g. ``{"train.augment.enabled": False}``: how chapters
        and ablations derive variants. A variant has its own content hash, so its own runs.

    Returns
    -------
    ExperimentConfig
        The frozen, validated config; ``cfg.content_hash()`` identifies what it computes.

    Raises
    ------
    ConfigError
        One line naming the file, the key path, the bad value and what is allowed, for an
        unknown name, a malformed file, an unknown key, a wrong type or range, or
        contradictory options (a bad override fails the same way).

    Examples
    --------
    >>> from cifarkit.core.config import load_config
    >>> cfg = load_config("resnet20", "smoke", {"train.epochs": 5})
    >>> cfg.train.epochs
    5
    """
    exp_path = _locate(experiment, "experiments")
    raw_exp = read_yaml(exp_path)
    if not raw_exp:
        raise ConfigError(
            f"{exp_path}: the experiment file is empty; it needs at least "
            "`model: {name: ...}` (see configs/resnet20.yaml)"
        )
    files = [(exp_path, raw_exp)]
    merged = {"name": exp_path.stem, **raw_exp}
    if profile not in (None, "none"):
        prof_path = _locate(profile, "profiles")
        raw_prof = read_yaml(prof_path)
        if "name" in raw_prof:
            raise ConfigError(
                f"{prof_path}: name: a profile cannot rename the experiment; remove the key"
            )
        # A profile may add settings for one experiment only (``experiments: {resnet20: {...}}``),
        # e.g. the headline run's snapshots; they apply after the profile's general settings.
        raw_prof = dict(raw_prof)
        per_experiment = raw_prof.pop("experiments", None) or {}
        if not isinstance(per_experiment, dict) or not all(
            isinstance(v, dict) for v in per_experiment.values()
        ):
            raise ConfigError(
                f"{prof_path}: experiments must map experiment names to settings, e.g. "
                "`experiments: {resnet20: {train: {snapshot_epochs: [1]}}}`"
            )
        unknown = sorted(set(per_experiment) - set(available("experiments")))
        if unknown:
            raise ConfigError(
                f"{prof_path}: experiments: {', '.join(unknown)} not under configs/; choose "
                f"from {', '.join(available('experiments'))}"
            )
        files.append((prof_path, raw_prof))
        merged = deep_merge(merged, raw_prof)
        if exp_path.stem in per_experiment:
            files.append((prof_path, per_experiment[exp_path.stem]))
            merged = deep_merge(merged, per_experiment[exp_path.stem])
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
        more = (
            f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
            if len(errors) > 1
            else ""
        )
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
    for key, bad in (
        ("weights_path", model.weights_path is not None),
        ("input_size", model.input_size != 32),
    ):
        if bad:
            source = next(
                (path for path, raw in reversed(files) if _has_path(raw, ("model", key))),
                files[0][0],
            )
            raise ConfigError(
                f"{source}: model.{key} = {getattr(model, key)!r}: only keras.applications "
                f"backbones use it; {model.name!r} trains from scratch on 32x32 images, "
                "remove the key"
            )


def train_command(
    experiment: str, profile: str, seeds: Sequence[int], cfg: ExperimentConfig | None = None
) -> str:
    """The exact command that trains the given seeds (with ``--set`` for a variant ``cfg``)."""
    sets = ""
    if cfg is not None and Path(str(experiment)).suffix not in (".yaml", ".yml"):
        try:
            base = load_config(experiment, profile)
        except ConfigError:  # a profile given as a path is known by its stem only
            base = load_config(experiment, None)
        sets = "".join(
            f" --set {shlex.quote(f'{k}={json.dumps(v)}')}"
            for k, v in overrides_between(base, cfg).items()
        )
    return (
        f"cifarkit train {shlex.quote(str(experiment))} --profile {shlex.quote(str(profile))}{sets} "
        f"--seed {' '.join(str(s) for s in seeds)}"
    )
