"""The fast recipe (cifarkit.models.airbench), the batch augmentation path and the time-to-accuracy bench."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from train_fixtures import tiny_image_tree

from cifarkit.core.config import AirbenchConfig, AugmentConfig, load_config
from cifarkit.core.errors import CifarkitError, ConfigError
from cifarkit.models import airbench as fast
from cifarkit.studies import ladder
from cifarkit.training import averaging, schedules

TINY = AirbenchConfig(widths=(8, 16, 16), whiten_images=50)


def _tiny_yaml(
    folder: Path, data_root: Path, epochs: int = 2, extra: str = "", ramp: str = "none"
) -> Path:
    path = folder / "tiny_airbench.yaml"
    path.write_text(
        "model:\n  name: airbench\n  airbench: {widths: [8, 16, 16], whiten_images: 50}\n"
        f"data: {{source: {data_root}, val_per_class: 4}}\n"
        f"train:\n  epochs: {epochs}\n  batch_size: 64\n"
        "  optimizer: {name: sgd, lr: 0.5, momentum: 0.85, nesterov: true, weight_decay: 1.0e-3}\n"
        "  schedule: {name: triangular, final_lr_fraction: 0.07}\n"
        "  loss: {name: crossentropy, label_smoothing: 0.2}\n"
        "  augment: {crop_padding: 2, flip: true, mode: batch, alternating_flip: true}\n"
        f"  ema: {{momentum: 0.9, overwrite_every: 2, ramp: {ramp}}}\n"
        f"{extra}"
    )
    return path


# --------------------------------------------------------------------------- config


def test_new_fields_at_default_leave_existing_hashes_alone() -> None:
    for experiment, profile in (("resnet20", "cpu"), ("baseline_cnn", "smoke")):
        plain = load_config(experiment, profile)
        spelled = load_config(
            experiment,
            profile,
            {
                "train.augment.mode": "per_image",
                "train.augment.alternating_flip": False,
                "train.ema": None,
                "train.schedule.triangle_start": 0.2,
                "train.schedule.triangle_peak": 0.23,
            },
        )
        assert spelled.content_hash() == plain.content_hash()
        assert (
            "ema" not in plain.identity()["train"] and "airbench" not in plain.identity()["model"]
        )
        changed = load_config(experiment, profile, {"train.augment.mode": "batch"})
        assert changed.content_hash() != plain.content_hash()


def test_airbench_config_is_canonical_and_checked() -> None:
    cfg = load_config("airbench", "cpu")
    assert cfg.model.airbench == AirbenchConfig() and cfg.model.cifar_native
    bare = load_config("airbench", "cpu", {"model": {"name": "airbench"}})
    assert bare.model.airbench == AirbenchConfig()
    with pytest.raises(ConfigError, match="airbench options apply to model 'airbench' only"):
        load_config("resnet20", "cpu", {"model.airbench": {"dirac": False}})
    with pytest.raises(ConfigError, match="alternating_flip needs mode: batch"):
        load_config("resnet20", "cpu", {"train.augment.alternating_flip": True})
    assert (
        load_config("airbench", "cpu", {"train.augment.cutout": 8}).train.augment.cutout == 8
    )  # batch mode too
    with pytest.raises(ConfigError, match="only used by schedule 'triangular'"):
        load_config("resnet20", "cpu", {"train.schedule.triangle_peak": 0.5})


def test_ablation_ladder_configs_all_validate_and_differ() -> None:
    steps = ladder.ablation_overrides()
    hashes = {load_config("airbench", "smoke", over).content_hash() for _, over in steps}
    assert len(hashes) == len(steps) == len(ladder.ABLATION_LADDER)
    assert load_config("airbench", "smoke", steps[-1][1]).train.augment.alternating_flip


# --------------------------------------------------------------------------- network and tricks


def test_airbench_net_shapes_names_and_frozen_whitening() -> None:
    model = fast.airbench_net(TINY, num_classes=10, l2=1e-4)
    out = model(np.zeros((2, 32, 32, 3), np.float32))
    assert out.shape == (2, 10)
    assert model.layers[-1].name == "logits"
    assert fast.airbench_groups(model) == ["group1_out", "group2_out", "group3_out"]
    whiten = model.get_layer("whiten")
    assert whiten.kernel.shape == (2, 2, 3, 24)
    assert not whiten.kernel.trainable and whiten.bias.trainable
    assert all(w.name != "gamma" for w in model.trainable_weights)  # BN scale frozen at 1
    with pytest.raises(CifarkitError, match="no groupN_out"):
        fast.airbench_groups(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))


def test_whitening_kernel_whitens_training_patches() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(200, 32, 32, 3)).astype(np.float32)
    images = (
        base + 0.8 * np.roll(base, 1, axis=2) + 0.5 * base[..., :1]
    )  # correlated pixels/channels
    kernel = fast.whitening_kernel(images, eps=1e-8)
    assert kernel.shape == (2, 2, 3, 24)
    np.testing.assert_allclose(kernel[..., 12:], -kernel[..., :12])
    out = tf.nn.conv2d(images, kernel[..., :12], strides=1, padding="VALID").numpy().reshape(-1, 12)
    np.testing.assert_allclose(out.T @ out / len(out), np.eye(12), atol=1e-3)
    with pytest.raises(CifarkitError, match="NHWC images"):
        fast.whitening_kernel(np.zeros((3, 32, 32)))


def test_init_from_data_sets_whitening_and_survives_save(tmp_path: Path) -> None:
    from cifarkit.models import build_model, init_from_data

    cfg = load_config("airbench", "smoke", {"model.airbench": TINY.model_dump()}).model
    model = build_model(cfg, 10, l2=1e-4)
    images = np.random.default_rng(1).integers(0, 256, (60, 32, 32, 3)).astype(np.uint8)
    assert init_from_data(model, cfg, images)
    assert float(np.abs(model.get_layer("whiten").kernel.numpy()).sum()) > 0
    assert not init_from_data(
        keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]), cfg, images
    )
    path = tmp_path / "m.keras"
    model.save(path)
    again = keras.models.load_model(path, safe_mode=True, compile=False)
    x = images[:4].astype(np.float32)
    np.testing.assert_allclose(again(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-5)


def test_partial_dirac_is_identity_on_first_channels() -> None:
    kernel = np.asarray(fast.PartialDirac(seed=0)((3, 3, 4, 6)))
    x = np.random.default_rng(2).normal(size=(1, 5, 5, 4)).astype(np.float32)
    y = tf.nn.conv2d(x, kernel, strides=1, padding="SAME").numpy()
    np.testing.assert_allclose(y[..., :4], x, atol=1e-6)
    assert np.abs(kernel[..., 4:]).max() <= 1 / np.sqrt(9 * 4) + 1e-6
    assert np.abs(kernel[..., 4:]).max() > 0


def test_scaled_bias_multiplies_the_learning_rate() -> None:
    layer = fast.ScaledBias(scale=8.0)
    x = tf.zeros((1, 3))
    layer(x)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x))  # d loss / d bias = 1
    grads = tape.gradient(loss, layer.trainable_weights)
    keras.optimizers.SGD(learning_rate=0.01).apply_gradients(
        zip(grads, layer.trainable_weights, strict=True)
    )
    np.testing.assert_allclose(layer(x).numpy(), -0.01 * 64 * np.ones((1, 3)), rtol=1e-5)


def test_triangular_schedule_shape() -> None:
    sched = schedules.Triangular(1.5, total_steps=100, start=0.2, peak_at=0.25, end=0.07)
    values = [float(sched(step)) for step in (0, 25, 100, 200)]
    np.testing.assert_allclose(values, [0.3, 1.5, 1.5 * 0.07, 1.5 * 0.07], rtol=1e-5)
    assert float(sched(10)) > float(sched(0)) and float(sched(60)) < float(sched(25))
    assert (
        keras.optimizers.schedules.deserialize(
            keras.optimizers.schedules.serialize(sched)
        ).get_config()
        == sched.get_config()
    )


def test_ema_options() -> None:
    assert averaging.ema_options(None) == {}
    cfg = load_config("airbench", "smoke", {"train.ema.ramp": "none"}).train
    assert averaging.ema_options(cfg.ema) == {
        "use_ema": True,
        "ema_momentum": 0.95,
        "ema_overwrite_frequency": 5,
    }


def test_cubic_lookahead_is_a_callback_and_needs_a_period() -> None:
    cfg = load_config("airbench", "smoke").train  # the recipe uses airbench's ramp
    assert averaging.ema_options(cfg.ema) == {}
    (callback,) = averaging.lookahead_callbacks(cfg.ema, steps_per_epoch=10, epochs=3)
    assert (
        isinstance(callback, averaging.Lookahead)
        and callback.total_steps == 30
        and callback.every == 5
    )
    assert (
        averaging.lookahead_callbacks(
            load_config("airbench", "smoke", {"train.ema.ramp": "none"}).train.ema, 10, 3
        )
        == []
    )
    with pytest.raises(ConfigError, match="needs train.ema.overwrite_every"):
        load_config(
            "airbench", "smoke", {"train.ema.ramp": "cubic", "train.ema.overwrite_every": None}
        )


def test_lookahead_decay_ramps_cubically_to_airbench_end_value() -> None:
    assert averaging.lookahead_decay(0, 100, 0.95, 5) == 0.0
    assert averaging.lookahead_decay(50, 100, 0.95, 5) == pytest.approx(0.95**5 / 8)
    assert averaging.lookahead_decay(100, 100, 0.95, 5) == pytest.approx(0.7738, abs=1e-4)
    assert averaging.lookahead_decay(120, 100, 0.95, 5) == averaging.lookahead_decay(
        100, 100, 0.95, 5
    )


def test_lookahead_averages_every_period_and_at_each_epoch_end() -> None:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
    w = model.layers[0].kernel
    w.assign(np.zeros((2, 1), np.float32))
    callback = averaging.Lookahead(momentum=0.9, every=2, steps_per_epoch=3, epochs=2)
    callback.set_model(model)
    callback.on_epoch_begin(0)
    w.assign(np.ones((2, 1), np.float32))
    callback.on_train_batch_end(0)  # step 1: not a sync step, weights untouched
    np.testing.assert_allclose(w.numpy(), 1.0)
    callback.on_train_batch_end(1)  # step 2: average moves (1 - d) of the way, weights follow
    d = averaging.lookahead_decay(2, 6, 0.9, 2)
    np.testing.assert_allclose(w.numpy(), 1.0 - d, rtol=1e-6)
    w.assign(np.full((2, 1), 3.0, np.float32))
    callback.on_train_batch_end(2)  # step 3: last batch of the epoch syncs too
    d3 = averaging.lookahead_decay(3, 6, 0.9, 2)
    np.testing.assert_allclose(w.numpy(), (1.0 - d) + (1 - d3) * (3.0 - (1.0 - d)), rtol=1e-6)


# --------------------------------------------------------------------------- batch augmentation


def _epoch_batches(aug: AugmentConfig, epoch: int, x: np.ndarray, seed: int = 3) -> np.ndarray:
    from cifarkit.data.pipeline import train_dataset

    y = np.arange(len(x)) % 10
    ds = train_dataset(
        x, y, num_classes=10, batch_size=16, seed=seed, start_epoch=epoch, epochs=epoch + 1, aug=aug
    )
    return np.concatenate([b[0].numpy() for b in ds])


def test_batch_augmentation_is_seeded_and_translates_by_window() -> None:
    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, (40, 32, 32, 3)).astype(np.uint8)
    aug = AugmentConfig(crop_padding=2, flip=False, mode="batch")
    a, b = _epoch_batches(aug, 1, x), _epoch_batches(aug, 1, x)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, _epoch_batches(aug, 2, x))
    # every output image is one 32x32 window of its reflect-padded source (some source)
    padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")
    windows = {
        (i, dy, dx): padded[i, dy : dy + 32, dx : dx + 32]
        for i in range(len(x))
        for dy in range(5)
        for dx in range(5)
    }
    for image in a[:8]:
        assert any(np.array_equal(image, w) for w in windows.values())
    shifted = sum(not any(np.array_equal(image, x[i]) for i in range(len(x))) for image in a)
    assert shifted > len(a) // 2


def test_alternating_flip_flips_each_image_in_exactly_one_of_two_epochs() -> None:
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (48, 32, 32, 3)).astype(np.uint8)
    aug = AugmentConfig(crop_padding=0, flip=True, mode="batch", alternating_flip=True)
    source = {img.tobytes(): i for i, img in enumerate(x)}
    flipped_source = {img[:, ::-1].tobytes(): i for i, img in enumerate(x)}

    def flipped_ids(epoch: int) -> set[int]:
        out = set()
        for image in _epoch_batches(aug, epoch, x):
            if image.tobytes() in flipped_source:
                out.add(flipped_source[image.tobytes()])
            else:
                assert image.tobytes() in source
        return out

    e0, e1 = flipped_ids(0), flipped_ids(1)
    assert e0.isdisjoint(e1) and e0 | e1 == set(range(len(x)))
    assert 0 < len(e0) < len(x)


# --------------------------------------------------------------------------- training and the benchmark


@pytest.fixture(scope="module")
def tiny_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_image_tree(tmp_path_factory.mktemp("tree"), train_per_class=20, test_per_class=4)


@pytest.mark.slow
@pytest.mark.parametrize("ramp", ["none", "cubic"])
def test_airbench_trains_and_resumes_exactly(tmp_path: Path, tiny_tree: Path, ramp: str) -> None:
    from cifarkit.data import splits_from_config
    from cifarkit.models import float32_model, predict_logits
    from cifarkit.training.fit import train_run

    # Keras' EMA (ramp none) in float32, overwriting at a step count the run does not end on:
    # its final weights then differ from those of the last epoch's end.
    ema = {"train.precision": "float32", "train.ema.overwrite_every": 5} if ramp == "none" else None
    cfg = load_config(_tiny_yaml(tmp_path, tiny_tree, epochs=2, ramp=ramp), None, ema)
    splits = splits_from_config(cfg.data)
    straight = train_run(cfg, 0, tmp_path / "straight", splits)
    assert np.isfinite(straight.test_logits).all() and len(straight.history) == 2
    assert float(np.abs(straight.model.get_layer("whiten").kernel.numpy()).sum()) > 0
    # The run's model file is a copy of the last checkpoint's only when that holds the final
    # weights: not after Keras' EMA replaced them at the end.
    assert (straight.model_file is None) == (ramp == "none")
    # Both kept sets of logits are the final model's in float32: after Keras' EMA (ramp none)
    # has replaced the weights by their average at the end of fit, too.
    final = float32_model(straight.model)
    for logits, images in (
        (straight.val_logits, splits.x_val),
        (straight.test_logits, splits.x_test),
    ):
        np.testing.assert_allclose(logits, predict_logits(final, images), rtol=0, atol=1e-5)

    class Crash(Exception):
        pass

    def crash_after_first(epoch: int, row: dict) -> None:
        if epoch == 1:
            raise Crash  # after the epoch-1 checkpoint is written, like a kill

    with pytest.raises(Crash):
        train_run(cfg, 0, tmp_path / "resumed", splits, epoch_hooks=[crash_after_first])
    resumed = train_run(cfg, 0, tmp_path / "resumed", splits)
    assert resumed.resumed_from_epoch == 1
    np.testing.assert_array_equal(resumed.test_logits, straight.test_logits)


@pytest.mark.slow
def test_time_to_accuracy_cli_writes_json_and_headline(
    tmp_path: Path, tiny_tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cifarkit.cli import main

    yaml_path = _tiny_yaml(tmp_path, tiny_tree, epochs=3)
    out = tmp_path / "tta.json"
    code = main(
        [
            "bench",
            "time-to-accuracy",
            str(yaml_path),
            "--profile",
            "none",
            "--target",
            "5",
            "--seeds",
            "1",
            "--epochs",
            "2",
            "--tta-shift",
            "0",
            "--json",
            str(out),
            "--set",
            "train.batch_size=16",
            "--set",
            "train.precision=float32",
        ]
    )
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    # float32 asked for: the headline names no precision (bfloat16 would be named, on any CPU)
    assert (
        lines[-1].startswith("tiny_airbench (none, 1 seed): test ")
        and "reached by 1 of 1 seed, after" in lines[-1]
    )
    data = json.loads(out.read_text())
    assert data["target"] == pytest.approx(0.05) and data["tta_views"] == ["identity", "flip"]
    from cifarkit.core.config import (
        load_config,  # --set reaches the trained config (its hash says so)
    )

    assert (
        data["config_hash"]
        == load_config(
            str(yaml_path),
            None,
            {"train.epochs": 2, "train.batch_size": 16, "train.precision": "float32"},
        ).content_hash()
    )
    (seed,) = data["seeds"]
    assert (
        seed["seed"] == 0
        and seed["epochs"] == 2
        and 0 < seed["train_seconds"] < seed["total_seconds"]
    )
    assert seed["epoch_to_target"] == 1 and seed["time_to_target"] <= seed["train_seconds"]
    assert [row["epoch"] for row in seed["val_curve"]] == [1, 2]
    assert 0 <= seed["test_accuracy_tta"] <= 1
    assert data["summary"]["reached"] == 1
    assert (
        data["config"]["train"]["batch_size"] == 16
        and data["config"]["train"]["precision"] == "float32"
    )
    assert not list((out.parent).glob(".partial-*"))

    # A second call keeps seed 0 (no retraining), recomputes its target, and keeps the record of
    # the machine that measured it (this call measured nothing).
    from cifarkit.bench.time_to_accuracy import time_to_accuracy

    out.write_text(json.dumps({**data, "environment": {"cpu": "the measuring machine"}}))
    result, _ = time_to_accuracy(
        str(yaml_path),
        None,
        target=0.999,
        seeds=1,
        tta_shift=0,
        out=out,
        overrides={"train.epochs": 2, "train.batch_size": 16, "train.precision": "float32"},
    )
    assert (
        result.seeds[0].train_seconds == seed["train_seconds"]
        and result.seeds[0].time_to_target is None
    )
    assert json.loads(out.read_text())["environment"] == {"cpu": "the measuring machine"}


@pytest.mark.slow
def test_an_interrupted_seed_resumes_and_keeps_its_earlier_epochs_time(
    tmp_path: Path, tiny_tree: Path
) -> None:
    from cifarkit.bench.time_to_accuracy import TIMED_KEY, TrainClock, partial_dir, time_to_accuracy
    from cifarkit.core.paths import artifacts_dir
    from cifarkit.data import splits_from_config
    from cifarkit.training.fit import train_run

    cfg = load_config(_tiny_yaml(tmp_path, tiny_tree, epochs=2), None)
    scratch = partial_dir(artifacts_dir() / "bench", cfg.name, cfg.content_hash(), 0)

    class SessionEnd(Exception):
        pass

    def end_after_first(epoch: int, row: dict) -> None:
        assert row[TIMED_KEY] > 0  # the clock's figure reached the checkpointed history
        raise SessionEnd

    with pytest.raises(SessionEnd):
        train_run(
            cfg,
            0,
            scratch,
            splits_from_config(cfg.data),
            callbacks=[TrainClock()],
            epoch_hooks=[end_after_first],
        )
    result, _ = time_to_accuracy(
        str(_tiny_yaml(tmp_path, tiny_tree, epochs=2)),
        None,
        target=0.01,
        seeds=1,
        tta_shift=0,
        out=tmp_path / "r.json",
    )
    (seed,) = result.seeds
    assert (
        seed.resumed_from_epoch == 1
        and seed.epochs == 2
        and [r["epoch"] for r in seed.val_curve] == [1, 2]
    )
    assert 0 < seed.val_curve[0]["train_seconds"] < seed.train_seconds <= seed.total_seconds
    assert not scratch.exists() and seed.measured and seed.measured.endswith("+00:00")


def test_headline_reports_mean_spread_and_reached_seeds() -> None:
    from cifarkit.bench.time_to_accuracy import SeedTiming, TimeToAccuracy, headline

    def seed(i: int, tta: float, minutes: float, reached: float | None) -> SeedTiming:
        return SeedTiming(
            i, 10, minutes * 60, minutes * 60 + 30, reached, 9 if reached else None, tta - 0.01, tta
        )

    result = TimeToAccuracy(
        "airbench",
        "cpu",
        "h",
        0.907,
        ["identity"],
        [seed(0, 0.90, 35, 31 * 60), seed(1, 0.91, 36, 33 * 60), seed(2, 0.92, 37, None)],
        {},
    )
    # The target is named as the figure it is checked on; the seeds that reached it are listed
    # with their own times, never averaged (a mean over survivors is not "the time").
    assert headline(result) == (
        "airbench (cpu, 3 seeds): test 91.0 ± 1.0% (TTA, 1 view), 90.0 ± 1.0% plain "
        "(mean ± std over seeds), in 36.0 ± 1.0 min training (10 epochs); target 90.7% "
        "plain validation accuracy reached by 2 of 3 seeds, after 31.0 and 33.0 min of "
        "training (seeds 0, 1)"
    )
    assert result.summary()["reached"] == 2 and result.summary()["time_to_target"]["n"] == 2
    assert result.summary()["time_to_target"]["train_seconds"] == [31 * 60, 33 * 60]
    assert "mean" not in result.summary()["time_to_target"]


def test_time_to_accuracy_rejects_bad_input(tmp_path: Path, tiny_tree: Path) -> None:
    from cifarkit.bench.time_to_accuracy import time_to_accuracy
    from cifarkit.cli import main

    with pytest.raises(CifarkitError, match="not an accuracy"):
        time_to_accuracy(str(_tiny_yaml(tmp_path, tiny_tree)), None, target=1.5)
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "time-to-accuracy", "airbench", "--target", "abc"])
    assert exit_info.value.code == 2


def _result_json(path: Path, config_hash: str = "abc", seeds: int = 2, **extra: object) -> None:
    from cifarkit.bench.time_to_accuracy import SeedTiming, TimeToAccuracy

    rows = [
        SeedTiming(
            i,
            10,
            600.0 + i,
            660.0 + i,
            None,
            None,
            0.9,
            0.91,
            [
                {"epoch": 1, "train_seconds": 300.0, "val_accuracy": 0.8},
                {"epoch": 2, "train_seconds": 600.0 + i, "val_accuracy": 0.92},
            ],
        )
        for i in range(seeds)
    ]
    data = TimeToAccuracy(
        "airbench", "cpu", config_hash, 0.95, ["identity"], rows, {}, 1, 49000
    ).as_dict()
    path.write_text(json.dumps({**data, **extra}))


def test_finished_seeds_match_config_and_tta_and_recompute_the_target(tmp_path: Path) -> None:
    from cifarkit.bench.time_to_accuracy import finished_seeds, with_target

    path = tmp_path / "r.json"
    assert finished_seeds(path, "abc", 1) == {}
    _result_json(path)
    kept = finished_seeds(path, "abc", 1)
    assert sorted(kept) == [0, 1] and kept[1].train_seconds == 601.0
    assert finished_seeds(path, "other", 1) == {} and finished_seeds(path, "abc", 0) == {}
    hit = with_target(kept[0], 0.9)
    assert (hit.epoch_to_target, hit.time_to_target) == (2, 600.0)
    assert (
        with_target(kept[0], 0.5).epoch_to_target == 1
        and with_target(kept[0], 0.99).time_to_target is None
    )
    path.write_text("{not json")
    with pytest.raises(CifarkitError, match="not a time-to-accuracy result.*--fresh"):
        finished_seeds(path, "abc", 1)


def test_load_results_and_table(tmp_path: Path) -> None:
    from cifarkit.bench.time_to_accuracy import load_results, results_table

    _result_json(tmp_path / "time-to-accuracy-a.json")
    (tmp_path / "time-to-accuracy-broken.json").write_text("[]")
    results = load_results("cpu", tmp_path)
    assert len(results) == 1 and load_results("smoke", tmp_path) == []
    row = results_table(results).iloc[0]
    assert row["test % (TTA)"] == "91.00 ± 0.00" and row["train images"] == "49,000"
    assert row["train min"] == "10.0 ± 0.0" and row["reached"] == "0 of 2 seeds"
    assert row["TTA 95% CI"] == "[91.00, 91.00]"
    assert row["precision"] == "not recorded"  # a file written before the config was kept


def test_precision_comes_from_the_kept_config_and_a_bfloat16_headline_says_so(
    tmp_path: Path,
) -> None:
    from cifarkit.bench.time_to_accuracy import headline, load_results, results_table

    _result_json(tmp_path / "time-to-accuracy-a.json", config={"train": {"precision": "bfloat16"}})
    _result_json(
        tmp_path / "time-to-accuracy-b.json",
        config_hash="def",
        config={"train": {"bfloat16": False}},
    )
    by_hash = {r.config_hash: r for r in load_results("cpu", tmp_path)}
    bf16, fp32 = by_hash["abc"], by_hash["def"]
    assert list(results_table([bf16, fp32])["precision"]) == ["bfloat16", "float32"]
    assert headline(bf16).startswith("airbench (cpu, bfloat16, 2 seeds): ")
    assert headline(fp32).startswith("airbench (cpu, 2 seeds): ")


def test_results_table_names_what_the_measured_config_changed(tmp_path: Path) -> None:
    from cifarkit.bench.time_to_accuracy import config_changes, load_results, results_table
    from cifarkit.core.config import load_config

    wide = load_config("airbench", "cpu", {"model.airbench.widths": [128, 384, 384]})
    _result_json(tmp_path / "time-to-accuracy-a.json", config=wide.model_dump(mode="json"))
    _result_json(
        tmp_path / "time-to-accuracy-b.json",
        config_hash="def",
        config=load_config("airbench", "cpu").model_dump(mode="json"),
    )
    _result_json(
        tmp_path / "time-to-accuracy-c.json", config_hash="ghi", config={"train": {"epochs": "x"}}
    )
    by_hash = {r.config_hash: r for r in load_results("cpu", tmp_path)}
    assert config_changes(by_hash["abc"]) == "model.airbench.widths=[128, 384, 384]"
    assert config_changes(by_hash["def"]) == "none"
    assert config_changes(by_hash["ghi"]) == "not comparable"
    assert list(results_table([by_hash["def"]])["changes"]) == ["none"]


def test_bench_results_prints_the_kept_results_as_tables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    from cifarkit.cli import main

    bench = Path(os.environ["CIFARKIT_ARTIFACTS"]) / "bench"
    assert main(["bench", "results"]) == 1
    assert "no benchmark results" in capsys.readouterr().out
    bench.mkdir(parents=True, exist_ok=True)
    _result_json(bench / "time-to-accuracy-airbench-cpu-abc.json")
    assert main(["bench", "results", "--markdown"]) == 0
    out = capsys.readouterr().out
    assert "| airbench     | abc      |       2 |" in out  # the summary row, as markdown
    assert (
        "airbench abc (cpu), target 95.0%: per seed" in out and "|      1 |             91 |" in out
    )
    assert main(["bench", "results", "--profile", "smoke"]) == 1  # no smoke results


def test_results_table_interval_needs_two_seeds_and_seeds_table_shows_each(tmp_path: Path) -> None:
    from dataclasses import replace

    from cifarkit.bench.time_to_accuracy import load_results, results_table, seeds_table

    _result_json(tmp_path / "time-to-accuracy-a.json", seeds=1)
    (result,) = load_results("cpu", tmp_path)
    assert results_table([result]).iloc[0]["TTA 95% CI"] == "n/a (1 seed)"
    result.seeds.append(
        replace(
            result.seeds[0],
            seed=1,
            test_accuracy_tta=0.93,
            train_seconds=1200.0,
            epoch_to_target=2,
            measured="2026-11-29T11:04+00:00",
        )
    )
    table = seeds_table(result)
    assert list(table.index) == [0, 1]
    assert (
        table.loc[0, "measured"] == "not recorded"
        and table.loc[1, "measured"] == "2026-11-29 11:04 UTC"
    )
    assert table.loc[1, "test % (TTA)"] == 93.0 and table.loc[1, "s per epoch"] == 120
    assert (
        table.loc[1, "target at epoch"] == "2" and table.loc[0, "target at epoch"] == "not reached"
    )
    low, high = results_table([result]).iloc[0]["TTA 95% CI"].strip("[]").split(", ")
    assert float(low) < 92.0 < float(high)


@pytest.mark.slow
def test_throughput_cli_keeps_its_figures_named_by_experiment(
    tmp_path: Path, tiny_tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    from cifarkit.bench.throughput import load_throughputs
    from cifarkit.cli import main

    yaml_path = _tiny_yaml(tmp_path, tiny_tree)

    def bench(options: list[str]) -> list[str]:
        return [
            "bench",
            "throughput",
            str(yaml_path),
            "--profile",
            "none",
            "--steps",
            "2",
            "--batch-size",
            "8",
            *options,
        ]

    assert main(bench(["--precision", "float32"])) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith(
        "airbench batch 8 float32, median of 3 interleaved runs (range): (a) model alone "
    )
    kept = (
        Path(os.environ["CIFARKIT_ARTIFACTS"])
        / "bench"
        / "throughput-tiny_airbench-none-batch-b8.json"
    )
    assert kept.is_file()
    stored = json.loads(kept.read_text())
    assert len(stored["synthetic_runs"]) == len(stored["pipeline_runs"]) == 3
    assert stored["synthetic_img_s"] == sorted(stored["synthetic_runs"])[1]  # the median
    low, high = stored["ratio_range"]
    assert low <= high and f"({low:.2f}-{high:.2f})" in last
    (row,) = load_throughputs(kept.parent).to_dict("records")
    assert row["experiment"] == "tiny_airbench" and row["model"] == "airbench"
    assert (
        row["framework"].startswith("keras ")
        and row["cpu"] != "unknown"
        and row["model alone (img/s)"] > 0
    )

    import keras

    assert main(bench(["--precision", "bfloat16"])) == 0
    assert keras.mixed_precision.global_policy().name == "float32"  # the caller's policy is back
    table = load_throughputs(kept.parent)
    assert sorted(table["precision"]) == ["bfloat16", "float32"]
