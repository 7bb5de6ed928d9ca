"""The training engine: the fused batch norm against Keras' own layer, the precision a run resolves to,
and the last epoch's validation computed from the kept logits.
Known answers: the same input through both layers in training mode for k steps must give the
same outputs, input and parameter gradients (to float rounding) and the same moving mean and
moving variance (Keras' convention: the biased batch variance, while TensorFlow's fused kernel
returns the Bessel-corrected one); the same in inference mode; and the same weights, so a model
saved with one layer loads into the other.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from cifarkit.core import precision
from cifarkit.core.config import load_config
from cifarkit.core.errors import CifarkitError
from cifarkit.core.precision import Machine, use_machine
from cifarkit.models import build_model, load_model
from cifarkit.models.batchnorm import FusedBatchNormalization


@pytest.fixture
def policy():
    """Set a Keras dtype policy for one test and restore float32 afterwards."""
    yield keras.mixed_precision.set_global_policy
    keras.mixed_precision.set_global_policy("float32")


def _steps(layer: layers.BatchNormalization, x: np.ndarray, k: int) -> tuple:
    """k training steps on shifted copies of x; the last step's output and gradients."""
    weights = tf.constant(np.random.default_rng(7).normal(size=x.shape).astype(np.float32))
    for step in range(k):
        xt = tf.constant(x + step, dtype=layer.compute_dtype)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = tf.cast(layer(xt, training=True), tf.float32)
            loss = tf.reduce_sum(
                weights * y + y**3 / 6
            )  # an upstream gradient that does not cancel
        grads = tape.gradient(loss, [xt, *layer.trainable_weights])
    assert layer(xt, training=False).dtype == xt.dtype  # the policy's compute dtype comes out
    return y, grads


@pytest.mark.parametrize(("dtype_policy", "rtol"), [("float32", 1e-5), ("mixed_bfloat16", 2e-2)])
@pytest.mark.parametrize(
    "options",
    [
        {"momentum": 0.9, "epsilon": 1e-5},
        {"momentum": 0.4, "epsilon": 1e-5, "scale": False, "center": True},
    ],
)
def test_the_fused_layer_matches_keras_in_outputs_gradients_and_moving_statistics(
    policy, dtype_policy, rtol, options
):
    policy(dtype_policy)
    x = np.random.default_rng(0).normal(2.0, 3.0, size=(16, 6, 6, 5)).astype(np.float32)
    ours, theirs = FusedBatchNormalization(**options), layers.BatchNormalization(**options)
    for layer in (ours, theirs):
        layer.build(x.shape)
    y_ours, g_ours = _steps(ours, x, 3)
    y_theirs, g_theirs = _steps(theirs, x, 3)
    scale = float(np.abs(np.float32(y_theirs)).max())
    np.testing.assert_allclose(np.float32(y_ours), np.float32(y_theirs), rtol=0, atol=rtol * scale)
    # A parameter's gradient sums the upstream gradient over the batch (for beta it cancels to
    # about zero), so its rounding is measured against that sum of magnitudes.
    upstream = (np.abs(np.float32(y_theirs)) ** 2 / 2 + 3).sum(axis=(0, 1, 2)).max()
    np.testing.assert_allclose(
        np.float32(g_ours[0]),
        np.float32(g_theirs[0]),
        rtol=0,
        atol=rtol * float(np.abs(np.float32(g_theirs[0])).max()),
    )
    for a, b in zip(g_ours[1:], g_theirs[1:], strict=True):
        np.testing.assert_allclose(np.float32(a), np.float32(b), rtol=0, atol=rtol * upstream)
    # Moving statistics after three steps: 1e-5 relative in float32 (bfloat16 rounds the input).
    stat_tol = 1e-5 if dtype_policy == "float32" else 1e-2
    np.testing.assert_allclose(ours.moving_mean.numpy(), theirs.moving_mean.numpy(), rtol=stat_tol)
    np.testing.assert_allclose(
        ours.moving_variance.numpy(), theirs.moving_variance.numpy(), rtol=stat_tol
    )
    # The moving variance is the biased one: with a fresh layer and momentum m after one step,
    # it is m * 1 + (1 - m) * var(x) with var's divisor n, not n - 1.
    fresh = FusedBatchNormalization(**options)
    fresh(tf.constant(x, dtype=fresh.compute_dtype), training=True)
    m = options["momentum"]
    expected = m + (1 - m) * np.float32(
        tf.cast(tf.constant(x, dtype=fresh.compute_dtype), tf.float32)
    ).var(axis=(0, 1, 2))
    np.testing.assert_allclose(fresh.moving_variance.numpy(), expected, rtol=stat_tol)
    # Inference uses the moving statistics in both.
    xt = tf.constant(x, dtype=ours.compute_dtype)
    np.testing.assert_allclose(
        np.float32(ours(xt, training=False)),
        np.float32(theirs(xt, training=False)),
        rtol=0,
        atol=rtol * scale,
    )


def test_a_frozen_fused_layer_runs_in_inference_mode_and_leaves_its_statistics_alone():
    x = tf.constant(np.random.default_rng(1).normal(size=(4, 3, 3, 2)).astype(np.float32))
    layer = FusedBatchNormalization()
    layer.build(x.shape)
    layer.trainable = False
    layer(x, training=True)
    np.testing.assert_array_equal(layer.moving_mean.numpy(), np.zeros(2, np.float32))


def test_a_mask_or_a_two_dimensional_input_falls_back_to_keras():
    x = tf.constant(np.random.default_rng(2).normal(size=(8, 3)).astype(np.float32))
    ours, theirs = FusedBatchNormalization(), layers.BatchNormalization()
    np.testing.assert_allclose(ours(x, training=True), theirs(x, training=True), atol=1e-6)


@pytest.mark.parametrize("name", ["resnet20", "baseline_cnn", "airbench"])
def test_every_cifar_family_uses_the_fused_layer_and_a_saved_model_round_trips(
    tmp_path: Path, name: str
):
    cfg = load_config(name, "smoke", {"train.precision": "float32"})
    model = build_model(cfg.model)
    norms = [layer for layer in model.layers if isinstance(layer, layers.BatchNormalization)]
    assert norms and all(isinstance(layer, FusedBatchNormalization) for layer in norms)
    x = np.random.default_rng(3).uniform(0, 255, size=(4, 32, 32, 3)).astype(np.float32)
    model(x, training=True)  # moves the statistics away from their initial values
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    assert type(loaded.get_layer(norms[0].name)) is FusedBatchNormalization
    np.testing.assert_array_equal(loaded(x, training=False), model(x, training=False))
    # Same weights, same order as Keras' layer: the reference model takes them unchanged.
    reference = build_model(
        load_config(
            name, "smoke", {"train.precision": "float32", "model.batch_norm": "keras"}
        ).model
    )
    assert not any(isinstance(layer, FusedBatchNormalization) for layer in reference.layers)
    reference.set_weights(model.get_weights())
    np.testing.assert_allclose(
        reference(x, training=False), model(x, training=False), rtol=1e-4, atol=1e-4
    )


def test_the_batch_norm_and_the_precision_are_in_the_run_key():
    fused = load_config("resnet20", "smoke", {"train.precision": "float32"})
    keras_bn = load_config(
        "resnet20", "smoke", {"train.precision": "float32", "model.batch_norm": "keras"}
    )
    bf16 = load_config("resnet20", "smoke", {"train.precision": "bfloat16"})
    assert fused.identity()["model"]["batch_norm"] == "fused"
    assert fused.identity()["train"]["precision"] == "float32"
    assert len({fused.content_hash(), keras_bn.content_hash(), bf16.content_hash()}) == 3


def test_a_config_stored_before_the_precision_setting_reads_back_as_what_it_ran():
    from cifarkit.core.schema import ExperimentConfig

    stored = load_config("resnet20", "smoke", {"train.precision": "float32"}).model_dump(
        mode="json"
    )
    stored["train"].pop("precision")
    stored["model"].pop("batch_norm")
    stored["train"].update(bfloat16=True, mixed_precision=False)
    old = ExperimentConfig.model_validate(stored)
    assert old.train.precision == "bfloat16" and old.model.batch_norm == "keras"
    with pytest.raises(CifarkitError, match=r"train.bfloat16 was replaced by train.precision"):
        load_config("resnet20", "smoke", {"train.bfloat16": True})


def test_auto_resolves_per_machine_before_the_key_is_taken():
    plain = Machine(cpu_bfloat16=False)
    native = Machine(cpu_bfloat16=True)
    gpu = Machine(gpus=("Fake GPU",), cpu_bfloat16=True)
    assert precision.resolve("auto", plain) == "float32"
    assert precision.resolve("auto", native) == "bfloat16"
    assert precision.resolve("auto", gpu) == "float16"
    assert precision.resolve("float32", gpu) == "float32"
    with use_machine(plain):
        assert load_config("resnet20", "smoke").train.precision == "float32"
    with use_machine(native):
        assert load_config("resnet20", "smoke").train.precision == "bfloat16"
    with use_machine(gpu):
        cfg = load_config("resnet20", "smoke")
        assert cfg.train.precision == "float16" and "float16" in cfg.to_yaml()


def test_float16_without_a_gpu_is_refused_with_the_fix_and_allowed_with_one(policy):
    from cifarkit.training.fit import configure_precision

    cfg = load_config("resnet20", "full")
    assert cfg.train.precision == "float16"
    with use_machine(Machine()), pytest.raises(CifarkitError) as error:
        configure_precision(cfg)
    message = str(error.value)
    assert (
        "\n" not in message
        and "make venv GPU=1" in message
        and "--set train.precision=float32" in message
    )
    with use_machine(Machine(gpus=("Fake GPU",))):
        assert configure_precision(cfg) == "mixed_float16"
        assert keras.mixed_precision.global_policy().name == "mixed_float16"


@pytest.mark.parametrize("loss", [{"label_smoothing": 0.1}, {"name": "focal", "focal_gamma": 2.0}])
def test_the_validation_from_logits_equals_keras_own_pass(loss):
    from cifarkit.core.schema import LossConfig, TrainConfig
    from cifarkit.data.pipeline import eval_dataset
    from cifarkit.models import predict_logits
    from cifarkit.training.fit import validation_epochs, validation_logs
    from cifarkit.training.recipe import make_loss, make_metrics

    names = ("a", "b", "c")
    cfg = TrainConfig(epochs=4, validate_every=2, precision="float32", loss=LossConfig(**loss))
    assert validation_epochs(cfg) == [2, 4]
    model = build_model(
        load_config("baseline_cnn", "smoke", {"train.precision": "float32"}).model,
        num_classes=3,
        l2=1e-3,
    )
    # Keras' own evaluation of the same loss and metrics, compiled in as a validation pass would be.
    model.compile(optimizer="sgd", loss=make_loss(cfg.loss), metrics=make_metrics(names))
    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, size=(70, 32, 32, 3)).astype(np.uint8)
    y = rng.integers(0, 3, size=70)
    theirs = model.evaluate(
        eval_dataset(x, y, num_classes=3, batch_size=32), return_dict=True, verbose=0
    )
    ours = validation_logs(model, predict_logits(model, x), y, 3, names)
    assert set(ours) == {f"val_{k}" for k in theirs}
    for key, value in theirs.items():
        assert ours[f"val_{key}"] == pytest.approx(value, rel=1e-5, abs=1e-6), key


def test_the_engine_table_gives_each_arm_its_median_range_and_ratios(tmp_path):
    from cifarkit.bench import engine

    plan = engine.arms(["resnet20"], ["float32", "bfloat16"], torch=True, negatives=True)
    assert [a.label for a in plan][:2] == [
        "cifarkit resnet20, Keras batch norm, float32",
        "cifarkit resnet20, fused batch norm, float32",
    ]
    assert (
        sum(a.framework == "torch" for a in plan) == 2 and sum(bool(a.variant) for a in plan) == 2
    )
    figures = {
        ("keras", "float32"): [100, 110, 90],
        ("fused", "float32"): [150, 160, 140],
        ("keras", "bfloat16"): [120, 120, 120],
        ("fused", "bfloat16"): [220, 200, 240],
    }
    arms = []
    for a in plan:
        model = (
            [200.0, 210.0, 190.0]
            if a.framework == "torch"
            else figures.get((a.batch_norm, a.precision), [50, 50, 50])
        )
        pipeline = [] if a.framework == "torch" else [x * 0.9 for x in model]
        arms.append(
            {
                "model": a.model,
                "precision": a.precision,
                "batch_norm": a.batch_norm,
                "framework": a.framework,
                "variant": a.variant,
                "label": a.label,
                "model_alone": [float(x) for x in model],
                "pipeline": pipeline,
            }
        )
    result = {
        "machine": {
            "cpu": "Test CPU",
            "cpu_isa": "avx512f",
            "cpu_bfloat16": True,
            "cpu_count": 2,
            "packages": {},
        },
        "recorded_at": "2026-12-07T12:00:00+00:00",
        "repeats": 3,
        "steps": 40,
        "batch_size": 128,
        "arms": arms,
    }
    table = engine.engine_table(result).set_index("arm")
    fused = table.loc["cifarkit resnet20, fused batch norm, float32"]
    assert fused["model alone img/s"] == "150 (140-160)"
    assert (
        fused["× Keras BN float32 (pipeline)"] == "1.50 (1.45-1.56)"
    )  # per-repeat ratios: 1.5, 1.45, 1.56
    assert fused["× PyTorch same precision (model alone)"] == "0.75 (0.74-0.76)"
    bf16 = table.loc["cifarkit resnet20, fused batch norm, bfloat16"]
    assert (
        bf16["× PyTorch same precision (model alone)"] == "1.10 (0.95-1.26)"
    )  # against torch bfloat16
    assert table.loc["PyTorch resnet20, channels_last, float32", "real pipeline img/s"] == "-"
    assert "native bfloat16" in engine.machine_text(result)
    none, note = engine.chapter_view(tmp_path)
    assert none is None and "cifarkit bench engine" in note
    (tmp_path / "engine-avx512f-bf16-resnet20.json").write_text(__import__("json").dumps(result))
    shown, note = engine.chapter_view(tmp_path)
    assert len(shown) == len(plan) and note.startswith("Measured on Test CPU, 2 cores")
