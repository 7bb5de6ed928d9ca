"""Recipes: schedules, optimizers, losses and class weights built from config."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from cifarkit.core.config import TrainConfig
from cifarkit.training.recipe import (
    class_weights,
    coupled_l2,
    make_loss,
    make_metrics,
    make_optimizer,
    make_schedule,
)


def lr_at(schedule, step: int) -> float:
    if isinstance(schedule, float):
        return schedule
    return float(keras.ops.convert_to_numpy(schedule(step)))


def test_cosine_with_warmup_peaks_after_warmup_and_decays_to_alpha():
    cfg = TrainConfig(
        epochs=10,
        optimizer={"lr": 0.2},
        schedule={"name": "cosine", "warmup_epochs": 2, "final_lr_fraction": 0.01},
    )
    schedule = make_schedule(cfg, steps_per_epoch=100)
    assert lr_at(schedule, 0) == pytest.approx(0.002)
    assert lr_at(schedule, 200) == pytest.approx(0.2)
    assert lr_at(schedule, 100) == pytest.approx(0.101, rel=1e-3)
    assert lr_at(schedule, 1000) == pytest.approx(0.2 * 0.01, rel=1e-3)


def test_step_schedule_decays_at_milestones():
    cfg = TrainConfig(
        epochs=30,
        optimizer={"lr": 0.1},
        schedule={"name": "step", "step_epochs": (10, 20), "step_factor": 0.1},
    )
    schedule = make_schedule(cfg, steps_per_epoch=10)
    assert [lr_at(schedule, s) for s in (0, 99, 101, 201)] == pytest.approx([0.1, 0.1, 0.01, 0.001])


def test_onecycle_rises_then_falls():
    cfg = TrainConfig(epochs=10, optimizer={"lr": 0.4}, schedule={"name": "onecycle"})
    schedule = make_schedule(cfg, steps_per_epoch=10)
    values = [lr_at(schedule, s) for s in range(100)]
    peak = int(np.argmax(values))
    assert values[0] == pytest.approx(0.4 / 25)
    assert 25 <= peak <= 35 and max(values) == pytest.approx(0.4, rel=1e-3)
    assert values[-1] < 0.01


def test_constant_schedule_is_a_float():
    assert (
        make_schedule(TrainConfig(schedule={"name": "constant"}, optimizer={"lr": 0.3}), 5) == 0.3
    )


def test_optimizers_and_weight_decay_paths():
    sgd = make_optimizer(TrainConfig(optimizer={"name": "sgd", "weight_decay": 5e-4}), 10)
    assert isinstance(sgd, keras.optimizers.SGD) and sgd.nesterov
    assert coupled_l2(
        TrainConfig(optimizer={"name": "sgd", "weight_decay": 5e-4})
    ) == pytest.approx(2.5e-4)
    adamw = make_optimizer(
        TrainConfig(optimizer={"name": "adamw", "weight_decay": 0.05, "lr": 1e-3}), 10
    )
    assert isinstance(adamw, keras.optimizers.AdamW) and adamw.weight_decay == pytest.approx(0.05)
    assert coupled_l2(TrainConfig(optimizer={"name": "adamw", "lr": 1e-3})) == 0.0
    accumulating = make_optimizer(TrainConfig(grad_accum_steps=4), 10)
    assert accumulating.gradient_accumulation_steps == 4


def test_losses():
    focal = make_loss(TrainConfig(loss={"name": "focal", "focal_gamma": 3.0}).loss)
    assert isinstance(focal, keras.losses.CategoricalFocalCrossentropy) and focal.gamma == 3.0
    smooth = make_loss(TrainConfig(loss={"label_smoothing": 0.1}).loss)
    assert (
        isinstance(smooth, keras.losses.CategoricalCrossentropy) and smooth.label_smoothing == 0.1
    )
    # from_logits: a confident right logit gives a small loss
    y_true = np.eye(3, dtype=np.float32)[[0]]
    assert float(make_loss(TrainConfig().loss)(y_true, np.array([[10.0, 0.0, 0.0]]))) < 1e-3


def test_class_weights_inverse_frequency():
    weights = class_weights(np.array([0, 0, 0, 1]), 2)
    assert weights == pytest.approx([4 / 6, 2.0])
    assert class_weights(np.arange(10).repeat(5), 10) == pytest.approx(np.ones(10))


def test_class_weights_are_scikit_learns_balanced_ones_and_zero_for_an_empty_class():
    from sklearn.utils.class_weight import compute_class_weight

    labels = np.array([0, 0, 0, 1, 2, 2, 3, 3, 3, 3])
    assert class_weights(labels, 4) == pytest.approx(
        compute_class_weight("balanced", classes=np.arange(4), y=labels)
    )
    without_class_2 = np.array([0, 0, 1, 1, 1, 3])
    with pytest.raises(ValueError, match="classes should have valid labels that are in y"):
        compute_class_weight("balanced", classes=np.arange(4), y=without_class_2)
    assert class_weights(without_class_2, 4) == pytest.approx([6 / 8, 6 / 12, 0.0, 6 / 4])


def test_per_class_recall_is_per_class_accuracy():
    names = ("a", "b", "c")
    metrics = make_metrics(names)
    y_true = np.eye(3, dtype=np.float32)[[0, 0, 1, 2, 2, 2]]
    logits = np.array(
        [[3, 1, 0], [0, 2, 1], [0, 5, 1], [1, 0, 4], [4, 0, 1], [0, 1, 2]], np.float32
    )
    for metric in metrics:
        metric.update_state(y_true, logits)
    results = {m.name: float(m.result()) for m in metrics}
    assert results["accuracy"] == pytest.approx(4 / 6)
    assert results["acc_a"] == pytest.approx(0.5)
    assert results["acc_b"] == pytest.approx(1.0)
    assert results["acc_c"] == pytest.approx(2 / 3)


def test_a_compiled_model_traces_its_training_step_once():
    # Optimizer slots made inside the first step's trace make TensorFlow trace it again.
    from cifarkit.training.recipe import compile_model

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    compile_model(model, TrainConfig(epochs=1, optimizer={"momentum": 0.9}), steps_per_epoch=2)
    traced = []
    step = model.train_step
    model.train_step = lambda data: traced.append(1) or step(data)
    x, y = np.zeros((8, 4), "float32"), keras.utils.to_categorical(np.arange(8) % 3, 3)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert len(traced) == 1
