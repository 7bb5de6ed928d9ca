"""Config validation, profile merging and the stability of the content hash."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cifarkit.core.config import ExperimentConfig, available, deep_merge, load_config
from cifarkit.core.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_shipped_experiments_validate_under_every_profile():
    for experiment in available("experiments"):
        for profile in [*available("profiles"), None]:
            cfg = load_config(experiment, profile)
            assert cfg.name == experiment
            assert len(cfg.content_hash()) == 64


def test_profile_merges_over_experiment():
    full = load_config("resnet20", None)
    smoke = load_config("resnet20", "smoke")
    assert smoke.train.epochs < full.train.epochs
    assert smoke.train.optimizer == full.train.optimizer  # untouched nested keys survive the merge
    assert smoke.data.train_per_class is not None
    assert smoke.profile == "smoke"


def test_deep_merge_nested_and_replace():
    base = {"a": {"b": 1, "c": 2}, "d": [1, 2]}
    merged = deep_merge(base, {"a": {"c": 3}, "d": [9]})
    assert merged == {"a": {"b": 1, "c": 3}, "d": [9]}
    assert base == {"a": {"b": 1, "c": 2}, "d": [1, 2]}


def test_hash_ignores_key_order_and_non_identity_fields(tmp_path):
    one = write(
        tmp_path / "one.yaml",
        "model: {name: resnet20}\ntrain: {epochs: 5, batch_size: 64}\n"
        "description: first\nseeds: 2\ndata: {source: /somewhere}\n",
    )
    two = write(
        tmp_path / "two.yaml",
        "train: {batch_size: 64, epochs: 5}\nmodel: {name: resnet20}\ndescription: second\n",
    )
    assert load_config(one, None).content_hash() == load_config(two, None).content_hash()
    three = write(
        tmp_path / "three.yaml", "train: {batch_size: 64, epochs: 6}\nmodel: {name: resnet20}\n"
    )
    assert load_config(three, None).content_hash() != load_config(two, None).content_hash()


def test_hash_is_stable_across_processes(tmp_path):
    code = "from cifarkit.core.config import load_config; print(load_config('resnet20', 'smoke').content_hash())"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed},
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert outputs == {load_config("resnet20", "smoke").content_hash()}


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        (
            "model: {name: resnet20}\ntrian: {epochs: 3}\n",
            "trian: unknown key; allowed keys here: name",
        ),
        ("model: {name: resnet20}\ntrain: {epochs: many}\n", "train.epochs = 'many'"),
        (
            "model: {name: resnet20}\ntrain: {optimizer: {lr: -0.1}}\n",
            "train.optimizer.lr = -0.1: Input should be greater than 0",
        ),
        ("model: {name: resnet21}\n", "model.name = 'resnet21': Input should be 'baseline_cnn'"),
        ("model: {name: resnet20}\ntrain: {optimizer: {name: rmsprop}}\n", "'sgd' or 'adamw'"),
        ("train: {epochs: 3}\n", "model: required key is missing"),
        (
            "model: {name: resnet20}\ntrain: {epochs: 2, schedule: {warmup_epochs: 5}}\n",
            "warmup_epochs=5.0 must be below epochs=2",
        ),
        (
            "model: {name: resnet20}\ntrain: {schedule: {name: step}}\n",
            "schedule 'step' needs step_epochs",
        ),
        ("model: {name: resnet20, weights: imagenet}\n", "needs a keras.applications backbone"),
        (
            "model: {name: resnet20}\ntrain: {epochs: 3, snapshot_epochs: [9]}\n",
            "snapshot_epochs [9] fall outside",
        ),
        ("model: [resnet20\n", "malformed YAML at line"),
        ("- just\n- a list\n", "top level must be a mapping"),
    ],
)
def test_bad_configs_give_one_line_naming_file_key_and_value(tmp_path, yaml_text, expected):
    path = write(tmp_path / "bad.yaml", yaml_text)
    with pytest.raises(ConfigError) as info:
        load_config(path, None)
    message = str(info.value)
    assert expected in message
    assert str(path) in message
    assert "\n" not in message


def test_profile_key_errors_name_the_profile_file(tmp_path):
    profile = write(tmp_path / "tiny.yaml", "train: {epohcs: 1}\n")
    with pytest.raises(ConfigError, match=rf"^{profile}: train.epohcs: unknown key"):
        load_config("resnet20", profile)


def test_unknown_experiment_and_profile_list_choices():
    with pytest.raises(ConfigError, match="unknown experiment 'nope'.*resnet20"):
        load_config("nope", None)
    with pytest.raises(ConfigError, match="unknown profile 'gpu'.*smoke"):
        load_config("resnet20", "gpu")
    with pytest.raises(ConfigError, match="config file not found"):
        load_config("missing/file.yaml", None)


def test_config_is_immutable():
    cfg = load_config("resnet20", "smoke")
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error type is an implementation detail
        cfg.train.epochs = 99  # type: ignore[misc]
    assert isinstance(cfg, ExperimentConfig)


def test_overrides_derive_a_variant_with_its_own_hash():
    base = load_config("resnet20", "smoke")
    variant = load_config(
        "resnet20", "smoke", overrides={"train.augment.enabled": False, "train.epochs": 4}
    )
    assert variant.train.augment.enabled is False and variant.train.epochs == 4
    assert variant.train.augment.flip == base.train.augment.flip  # siblings survive the merge
    assert variant.content_hash() != base.content_hash()
    assert load_config("resnet20", "smoke", overrides={}).content_hash() == base.content_hash()


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"train.epochs": 0}, "<overrides>: train.epochs = 0"),
        ({"train.nope": 1}, "train.nope: unknown key"),
        ({"name": "x"}, "cannot set name"),
        ({"train..epochs": 1}, "empty key segment"),
    ],
)
def test_bad_overrides_are_one_line_errors(overrides, fragment):
    with pytest.raises(ConfigError) as err:
        load_config("resnet20", "smoke", overrides=overrides)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_the_precision_is_one_setting_and_part_of_the_key():
    base = load_config("airbench", "smoke", overrides={"train.precision": "float32"})
    bf16 = load_config("airbench", "smoke", overrides={"train.precision": "bfloat16"})
    assert (
        bf16.identity()["train"]["precision"] == "bfloat16"
        and bf16.content_hash() != base.content_hash()
    )
    with pytest.raises(ConfigError, match="train.precision"):
        load_config("airbench", "smoke", overrides={"train.precision": "half"})


def test_a_profile_can_set_one_experiments_settings_only(tmp_path):
    profile = tmp_path / "p.yaml"
    profile.write_text(
        "train: {epochs: 4}\nexperiments:\n  resnet20: {train: {epochs: 3, snapshot_epochs: [1]}}\n"
    )
    resnet, cnn = load_config("resnet20", profile), load_config("baseline_cnn", profile)
    assert (resnet.train.epochs, resnet.train.snapshot_epochs) == (3, (1,))
    assert (cnn.train.epochs, cnn.train.snapshot_epochs) == (4, ())
    profile.write_text("experiments:\n  resnet2O: {train: {epochs: 2}}\n")
    with pytest.raises(ConfigError, match="experiments: resnet2O not under configs/"):
        load_config("resnet20", profile)
    profile.write_text("experiments:\n  resnet20: {train: {snapshot_epochs: [99]}}\n")
    with pytest.raises(ConfigError, match="snapshot_epochs"):
        load_config("resnet20", profile)
