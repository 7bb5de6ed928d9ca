"""Transfer learning: freezing, progressive unfreezing, differential LR, source/ImageNet weights, configs."""

from __future__ import annotations

from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from cifarkit.core.config import ConfigError, ModelConfig, TransferConfig, load_config
from cifarkit.core.errors import CifarkitError
from cifarkit.models import build_model
from cifarkit.models.backbones import backbone_model, weights_file_name
from cifarkit.models.resnet import cifar_resnet
from cifarkit.studies import transfer
from cifarkit.training import finetune
from cifarkit.training.recipe import compile_model, make_optimizer


def _batch(n: int = 16, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, size=(n, 32, 32, 3)).astype("float32")
    return x, keras.utils.to_categorical(rng.integers(0, classes, n), classes)


def _weights(model: keras.Model, names: list[str]) -> dict[str, list[np.ndarray]]:
    return {
        name: [w.copy() for w in model.get_layer(name).get_weights()]
        for name in names
        if model.get_layer(name).weights
    }


def _changed(before: dict[str, list[np.ndarray]], model: keras.Model) -> set[str]:
    return {
        name
        for name, ws in before.items()
        if any(
            not np.array_equal(a, b)
            for a, b in zip(ws, model.get_layer(name).get_weights(), strict=True)
        )
    }


def _compiled_resnet8(
    cfg_overrides: dict | None = None, lr_factors=None
) -> tuple[keras.Model, object]:
    cfg = load_config(
        "resnet20", "smoke", {"train.schedule.warmup_epochs": 0, **(cfg_overrides or {})}
    )
    model = cifar_resnet(8, num_classes=3, l2=1e-4)
    compile_model(model, cfg.train, steps_per_epoch=2, lr_factors=lr_factors)
    return model, cfg


def test_resnet_layer_groups_are_the_three_stages_and_exclude_the_head() -> None:
    groups = finetune.layer_groups(cifar_resnet(8, num_classes=3))
    assert len(groups) == 3
    assert "stem_conv" in groups[0] and "stage1_block1_conv1" in groups[0]
    assert all(n.startswith("stage2_") for n in groups[1]) and all(
        n.startswith("stage3_") for n in groups[2]
    )
    assert not any(n == "logits" or n.startswith("head_") for g in groups for n in g)


def test_frozen_layers_do_not_change_after_a_training_step() -> None:
    model, _ = _compiled_resnet8()
    groups = finetune.layer_groups(model)
    plan = finetune.FineTuning(TransferConfig(freeze_through=2), groups, None)
    plan.start(model, start_epoch=0)
    frozen = [n for g in groups[:2] for n in g]
    trained = groups[2] + ["logits"]
    before = _weights(model, frozen + trained)
    x, y = _batch()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    changed = _changed(before, model)
    assert not changed & set(frozen), "frozen layers (weights or BN statistics) changed"
    assert (
        "logits" in changed and "stage3_block1_conv1" in changed and "stage3_block1_bn1" in changed
    )


def test_progressive_unfreezing_is_a_function_of_the_epoch() -> None:
    t = TransferConfig(freeze_through=3, unfreeze_every=2)
    assert [finetune.frozen_groups(t, e, 3) for e in range(8)] == [3, 3, 2, 2, 1, 1, 0, 0]
    with pytest.raises(CifarkitError, match="only 3 layer groups"):
        finetune.frozen_groups(TransferConfig(freeze_through=4), 0, 3)


@pytest.mark.slow  # two traced train steps: ~25 s on a busy 2-core machine
def test_progressive_unfreezing_trains_more_groups_in_later_epochs() -> None:
    model, _ = _compiled_resnet8()
    groups = finetune.layer_groups(model)
    plan = finetune.FineTuning(TransferConfig(freeze_through=1, unfreeze_every=1), groups, None)
    callback = plan.start(model, start_epoch=0)
    stage1 = groups[0]
    seen: list[set[str]] = []

    class Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.before = _weights(model, stage1)

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            seen.append(_changed(self.before, model))

    x, y = _batch()
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[callback, Record()])
    assert not seen[0], "stage 1 trained in epoch 1 although frozen"
    assert "stage1_block1_conv1" in seen[1], "stage 1 did not train after being unfrozen"


def test_differential_lr_applies_each_groups_factor() -> None:
    groups = finetune.layer_groups(cifar_resnet(8, num_classes=3))
    factors = finetune.lr_factors(groups, 0.5)
    assert factors["stage3_block1_conv1"] == 0.5 and factors["stage2_block1_conv1"] == 0.25
    assert factors["stem_conv"] == 0.125 and "logits" not in factors
    cfg = load_config(
        "resnet20",
        "smoke",
        {
            "train.schedule.name": "constant",
            "train.schedule.warmup_epochs": 0,
            "train.optimizer.lr": 0.1,
            "train.optimizer.momentum": 0.0,
        },
    )
    optimizer = make_optimizer(cfg.train, steps_per_epoch=1, lr_factors=factors)
    assert isinstance(optimizer, finetune.GroupLRSGD)
    model = cifar_resnet(8, num_classes=3)
    names = [
        "stem_conv",
        "stage1_block1_conv1",
        "stage2_block1_conv1",
        "stage3_block1_conv1",
        "logits",
    ]
    variables = [model.get_layer(n).kernel for n in names]
    before = [v.numpy() for v in variables]
    optimizer.apply([keras.ops.ones(v.shape) for v in variables], variables)
    steps = [float(np.mean(b - v.numpy())) for b, v in zip(before, variables, strict=True)]
    np.testing.assert_allclose(
        steps, [0.1 * 0.125, 0.1 * 0.125, 0.1 * 0.25, 0.1 * 0.5, 0.1], rtol=1e-5
    )


def test_differential_lr_with_adamw_is_refused() -> None:
    with pytest.raises(ConfigError, match="needs optimizer sgd"):
        load_config(
            "transfer_target",
            "smoke",
            {"train.optimizer.name": "adamw", "transfer.lr_group_decay": 0.5},
        )


def test_optional_sections_keep_existing_hashes_and_source_changes_the_key() -> None:
    base = load_config("resnet20", "smoke")
    assert "transfer" not in base.identity() and "classes" not in base.identity()["data"]
    a = load_config(
        "transfer_target", "smoke", {"transfer.source_run": "transfer_source-0123456789ab"}
    )
    b = load_config(
        "transfer_target", "smoke", {"transfer.source_run": "transfer_source-ba9876543210"}
    )
    assert a.content_hash() != b.content_hash()


def test_class_subset_relabels_and_keeps_each_class_split(tmp_path: Path) -> None:
    from train_fixtures import tiny_image_tree

    from cifarkit.data import load_cifar10, make_splits

    data = load_cifar10(tiny_image_tree(tmp_path / "tree", train_per_class=12, test_per_class=4))
    full = make_splits(data, val_per_class=4, seed=1)
    sub = make_splits(data, val_per_class=4, seed=1, classes=["truck", "cat"])
    assert sub.class_names == ("truck", "cat") and set(sub.y_train) == {0, 1}
    cat = full.class_names.index("cat")
    np.testing.assert_array_equal(sub.val_idx[sub.y_val == 1], full.val_idx[full.y_val == cat])
    assert len(sub.y_test) == 8
    with pytest.raises(CifarkitError, match="unknown class"):
        make_splits(data, classes=["cat", "unicorn"])


def test_source_weights_initialise_all_but_the_head(tmp_path: Path) -> None:
    source = cifar_resnet(8, num_classes=5)
    path = tmp_path / "model.keras"
    source.save(path)
    target = cifar_resnet(8, num_classes=3)
    finetune.init_from_source(target, path)
    np.testing.assert_array_equal(
        target.get_layer("stage2_block1_conv1").kernel,
        source.get_layer("stage2_block1_conv1").kernel,
    )
    assert target.get_layer("logits").kernel.shape == (64, 3)
    with pytest.raises(CifarkitError, match="same architecture"):
        finetune.init_from_source(cifar_resnet(14, num_classes=3), path)
    # The source's weights are read once per version of its file: a new file is read anew.
    other = cifar_resnet(8, num_classes=5)
    other.save(path)
    finetune.init_from_source(target, path)
    np.testing.assert_array_equal(
        target.get_layer("stage2_block1_conv1").kernel,
        other.get_layer("stage2_block1_conv1").kernel,
    )


# --------------------------------------------------------------------------- ImageNet path


def _write_legacy_h5(model: keras.Model, path: Path) -> None:
    from keras.src.legacy.saving import legacy_h5_format

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)


def test_backbone_weights_from_a_local_file_and_clear_errors(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty-keras-home"))
    plan = transfer.study_plan("smoke")
    missing = transfer.imagenet_availability(["mobilenetv2"], 96)
    assert not missing.available[0] and missing.file[0] == weights_file_name("mobilenetv2", 96)
    probe = transfer.imagenet_probe(plan, missing)
    assert (
        probe["imagenet val"][0] == "not run"
        and "missing" in probe.status[0]
        and not probe.fine_tune[0]
    )

    # A "pretrained" file written from a randomly initialised backbone (no network here).
    keras.utils.set_random_seed(3)
    app = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(96, 96, 3))
    path = tmp_path / "weights" / weights_file_name("mobilenetv2", 96)
    _write_legacy_h5(app, path)
    found = transfer.imagenet_availability(["mobilenetv2"], 96, weights_path=str(path))
    assert found.available[0]
    cfg = transfer.imagenet_config(
        plan, "mobilenetv2", imagenet=True, freeze_through=4, weights_path=str(path)
    )
    model = build_model(cfg.model, num_classes=5)
    np.testing.assert_array_equal(
        model.get_layer("block_16_project").kernel, app.get_layer("block_16_project").kernel
    )
    assert len(finetune.layer_groups(model)) == 4

    path.write_bytes(b"not an hdf5 file")
    with pytest.raises(CifarkitError, match="cannot load"):
        backbone_model("mobilenetv2", weights="imagenet", weights_path=path, input_size=96)
    with pytest.raises(CifarkitError, match="does not exist"):
        build_model(
            ModelConfig(
                name="mobilenetv2",
                weights="imagenet",
                input_size=96,
                weights_path=str(tmp_path / "nowhere.h5"),
            )
        )


def test_backbone_groups_put_resnet50_conv4_and_conv5_on_top() -> None:
    groups = finetune.layer_groups(backbone_model("resnet50", num_classes=5))
    assert len(groups) == 4
    assert all(n.startswith("conv5_") for n in groups[3] if "conv" in n)
    assert any(n.startswith("conv4_") for n in groups[2]) and "conv1_conv" in groups[0]


# --------------------------------------------------------------------------- study plumbing


def test_study_plan_defaults_and_target_configs() -> None:
    plan = transfer.study_plan("cpu")
    assert (
        set(transfer.TASK_A).isdisjoint(transfer.TASK_B)
        and len(transfer.TASK_A + transfer.TASK_B) == 10
    )
    cfg = transfer.target_config(plan, "progressive", 500, "transfer_source-0123456789ab")
    assert cfg.data.classes == transfer.TASK_B and cfg.data.train_per_class == 100
    assert cfg.transfer.freeze_through == 3 and cfg.transfer.unfreeze_every >= 1
    assert transfer.target_config(plan, "scratch", 500, None).transfer is None
    with pytest.raises(CifarkitError, match="multiples of 5"):
        transfer.study_plan("cpu", sizes=[12])
    with pytest.raises(CifarkitError, match="unknown strategies"):
        transfer.study_plan("cpu", strategies=["bogus"])
    assert "left out" in transfer.grid_cells_note(plan)


class _Crash(RuntimeError):
    pass


@pytest.mark.slow  # three short ResNet20 trainings on the tiny tree (~1 min)
def test_transfer_run_from_the_store_resumes_to_the_same_result(tmp_path: Path) -> None:
    """Source run via the run store; a progressive + differential-LR target killed after epoch 1
    and resumed ends exactly like an uninterrupted one (freezing is a function of the epoch)."""
    from train_fixtures import tiny_experiment, tiny_image_tree

    from cifarkit.data import splits_from_config
    from cifarkit.runs import get_or_train
    from cifarkit.training.fit import train_run

    data = tiny_image_tree(tmp_path / "tree", train_per_class=16, test_per_class=4)
    source_yaml = tiny_experiment(tmp_path, data, model="resnet20", epochs=1)
    source = get_or_train(
        load_config(source_yaml, None, {"data.classes": list(transfer.TASK_A)}), 0
    )
    cfg = load_config(
        source_yaml,
        None,
        {
            "data.classes": list(transfer.TASK_B),
            "train.epochs": 3,
            "model.dropout": 0.0,
            "transfer.source_run": source.path.name,
            "transfer.freeze_through": 2,
            "transfer.unfreeze_every": 1,
            "transfer.lr_group_decay": 0.5,
        },
    )
    splits = splits_from_config(cfg.data)
    assert splits.class_names == transfer.TASK_B

    def crash_after_first(epoch: int, row: dict) -> None:
        if epoch == 1:
            raise _Crash

    with pytest.raises(_Crash):
        train_run(
            cfg,
            0,
            tmp_path / "killed",
            splits,
            epoch_hooks=[crash_after_first],
            source_model=source.model_path,
        )
    resumed = train_run(cfg, 0, tmp_path / "killed", splits, source_model=source.model_path)
    reference = train_run(cfg, 0, tmp_path / "reference", splits, source_model=source.model_path)
    assert resumed.resumed_from_epoch == 1
    np.testing.assert_array_equal(resumed.test_logits, reference.test_logits)


# --------------------------------------------------------------------------- statistics of the study


class _FakeRun:
    """Just what the study's statistics read from a run: metrics and validation logits."""

    def __init__(self, test: float, val: float = 0.5) -> None:
        self._test, self._val = test, val

    def metrics(self) -> dict:
        return {"test_accuracy": self._test}

    def predictions(self, split: str = "test"):
        labels = np.zeros(100, np.int64)
        logits = np.zeros((100, 2), np.float32)
        logits[: round(self._val * 100), 0] = 1.0  # right on the first val * 100 images
        logits[round(self._val * 100) :, 1] = 1.0
        return logits, labels


def _grid(values: dict[tuple[str, int], list[float]]) -> list:
    return [
        transfer.GridRun(strategy, size, seed, _FakeRun(acc))
        for (strategy, size), accs in values.items()
        for seed, acc in enumerate(accs)
    ]


def test_gains_are_exploratory_holm_adjusted_and_never_the_largest_of_many() -> None:
    runs = _grid(
        {
            ("scratch", 500): [0.60, 0.62, 0.61],
            ("finetune", 500): [0.70, 0.725, 0.715],
            ("frozen3", 500): [0.61, 0.60, 0.63],
            ("difflr", 500): [0.63, 0.62, 0.62],
        }
    )
    gains = transfer.gains_over_scratch(runs)
    assert list(gains["strategy"]) == ["finetune", "frozen3", "difflr"]
    from cifarkit.evaluation import stats

    assert list(gains["p_holm"]) == pytest.approx(stats.holm(list(gains["p"])))
    finetune = gains.set_index("strategy").loc["finetune"]
    assert (
        finetune["mean_diff"] == pytest.approx(np.mean([0.10, 0.105, 0.105])) and finetune["n"] == 3
    )
    # Three seeds, not decisive after Holm: described, not claimed; no "largest gain" is picked.
    assert set(gains["verdict"]) <= {"descriptive", "not distinguishable", "claimed", "no spread"}
    sentence = transfer.gains_sentence(gains)
    assert "exploratory" in sentence and "Holm-adjusted over the 3" in sentence
    assert "largest" not in sentence and "smallest" not in sentence
    shown = transfer.gains_display(gains)
    assert {"gain (points)", "95% CI", "p (paired t)", "p (Holm)", "verdict"} <= set(shown.columns)
    assert transfer.gains_sentence(gains.iloc[0:0]).startswith("No strategy has runs")


def test_transfer_check_is_the_primary_comparison_through_the_verdict_rule() -> None:
    assert transfer.PRIMARY == ("random_frozen3", "frozen3")
    runs = _grid(
        {("frozen3", 500): [0.70, 0.72, 0.71], ("random_frozen3", 500): [0.50, 0.51, 0.505]}
    )
    check = transfer.transfer_check(runs, 500)
    assert (
        check["ran"] and check["verdict"].kind == "claimed" and check["transfers"]
    )  # decisive with 3 seeds
    assert transfer.probe_verdict(check).startswith(
        "The probe on A's features beats the probe on random features by 20.5 points"
    )
    noisy = transfer.transfer_check(
        _grid({("frozen3", 500): [0.70, 0.60, 0.66], ("random_frozen3", 500): [0.65, 0.66, 0.60]}),
        500,
    )
    assert not noisy["transfers"] and "not distinguishable" in transfer.probe_verdict(noisy)
    assert transfer.probe_verdict({"ran": False}) == "The linear probe did not run in this build."
    one = transfer.transfer_check(
        _grid({("frozen3", 500): [0.7], ("random_frozen3", 500): [0.5]}), 500
    )
    assert not one["transfers"] and "cannot be compared" in transfer.probe_verdict(one)


def test_imagenet_fine_tuning_is_decided_on_validation_not_test(monkeypatch) -> None:
    import pandas as pd

    from cifarkit import runs as runs_module

    # ImageNet features: better on test, worse on validation -> no fine-tuning.
    made = iter([_FakeRun(test=0.9, val=0.40), _FakeRun(test=0.5, val=0.60)])
    monkeypatch.setattr(runs_module, "get_or_train", lambda cfg, seed, label="": next(made))
    availability = pd.DataFrame(
        [
            {
                "backbone": "mobilenetv2",
                "input_size": 96,
                "file": "f.h5",
                "looked_in": "",
                "available": True,
                "path": "f.h5",
                "problem": "",
            }
        ]
    )
    monkeypatch.setattr(transfer, "imagenet_config", lambda *a, **k: None)
    probe = transfer.imagenet_probe(transfer.study_plan("smoke"), availability)
    row = probe.iloc[0]
    assert not row["fine_tune"] and row["imagenet val"] == "40.0" and row["imagenet test"] == "90.0"
    assert "validation" in row["status"] and "fine-tuning skipped" in row["status"]
    table = transfer.imagenet_finetune(transfer.study_plan("smoke"), availability, probe)
    assert set(table["test accuracy (%)"]) == {"not run"} and "on validation" in table["status"][0]
