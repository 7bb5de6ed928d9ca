"""Turn a validated :class:`~cifarkit.core.config.TrainConfig` into Keras objects.

Everything here is a Keras built-in: SGD/AdamW, ``CosineDecay`` with warmup,
``PiecewiseConstantDecay``, ``CategoricalCrossentropy`` with label smoothing,
``CategoricalFocalCrossentropy``, optimizer-level gradient accumulation, and per-class
validation accuracy as ``Recall(class_id=k, top_k=1)`` (the recall of class k under the
arg-max prediction is exactly that class's accuracy).
"""

from __future__ import annotations

import keras
import numpy as np

from cifarkit.core.config import LossConfig, TrainConfig
from cifarkit.core.errors import CifarkitError


def coupled_l2(cfg: TrainConfig) -> float:
    """The kernel L2 factor for the model builder.

    SGD uses the papers' coupled weight decay (gradient += wd * w), which is
    ``L2(wd / 2)`` on the kernels; Keras' own ``weight_decay`` argument is decoupled and,
    with momentum 0.9, about ten times weaker. AdamW decays in the optimizer instead.
    """
    return cfg.optimizer.weight_decay / 2 if cfg.optimizer.name == "sgd" else 0.0


def make_schedule(
    cfg: TrainConfig, steps_per_epoch: int
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The learning rate as a function of the optimizer step (one step per batch)."""
    opt, sched = cfg.optimizer, cfg.schedule
    total = cfg.epochs * steps_per_epoch
    if sched.name == "constant":
        return opt.lr
    if sched.name == "step":
        boundaries = [e * steps_per_epoch for e in sched.step_epochs]
        values = [opt.lr * sched.step_factor**i for i in range(len(boundaries) + 1)]
        return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    if sched.name == "cosine":
        warmup = round(sched.warmup_epochs * steps_per_epoch)
        if warmup == 0:
            return keras.optimizers.schedules.CosineDecay(
                opt.lr, total, alpha=sched.final_lr_fraction
            )
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=opt.lr / 100,
            decay_steps=total - warmup,
            alpha=sched.final_lr_fraction,
            warmup_target=opt.lr,
            warmup_steps=warmup,
        )
    if sched.name == "triangular":
        from cifarkit.training.schedules import triangular_schedule

        return triangular_schedule(opt.lr, total, sched)
    # onecycle (Smith & Topin 2019), cosine-annealed variant: 30% linear rise from lr/25 to
    # lr, then cosine down; expressed with the built-in CosineDecay's warmup. No momentum cycling.
    warmup = max(1, round(0.3 * total))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=opt.lr / 25,
        decay_steps=total - warmup,
        alpha=sched.final_lr_fraction / 25 if sched.final_lr_fraction else 1e-4,
        warmup_target=opt.lr,
        warmup_steps=warmup,
    )


def make_optimizer(
    cfg: TrainConfig, steps_per_epoch: int, lr_factors: dict[str, float] | None = None
) -> keras.optimizers.Optimizer:
    """``lr_factors`` (layer name -> LR factor; transfer learning's differential LR) needs SGD."""
    opt = cfg.optimizer
    lr = make_schedule(cfg, steps_per_epoch)
    accumulate = cfg.grad_accum_steps if cfg.grad_accum_steps > 1 else None
    from cifarkit.training.averaging import ema_options

    ema = ema_options(cfg.ema)  # Keras' own weight EMA / lookahead; {} when off
    if lr_factors and opt.name != "sgd":
        raise CifarkitError(
            f"per-group learning rates need optimizer sgd, not {opt.name!r} (Adam-type "
            "updates ignore a gradient's scale); set train.optimizer.name: sgd"
        )
    if opt.name == "sgd" and lr_factors and any(f != 1.0 for f in lr_factors.values()):
        from cifarkit.training.finetune import GroupLRSGD

        return GroupLRSGD(
            lr_factors=lr_factors,
            learning_rate=lr,
            momentum=opt.momentum,
            nesterov=opt.nesterov,
            gradient_accumulation_steps=accumulate,
            **ema,
        )
    if opt.name == "sgd":
        return keras.optimizers.SGD(
            learning_rate=lr,
            momentum=opt.momentum,
            nesterov=opt.nesterov,
            gradient_accumulation_steps=accumulate,
            **ema,
        )
    optimizer = keras.optimizers.AdamW(
        learning_rate=lr,
        weight_decay=opt.weight_decay,
        gradient_accumulation_steps=accumulate,
        **ema,
    )
    # Decay kernels only, as with the coupled L2 of the SGD path.
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer


def make_loss(cfg: LossConfig) -> keras.losses.Loss:
    if cfg.name == "focal":
        return keras.losses.CategoricalFocalCrossentropy(
            gamma=cfg.focal_gamma, from_logits=True, label_smoothing=cfg.label_smoothing
        )
    return keras.losses.CategoricalCrossentropy(
        from_logits=True, label_smoothing=cfg.label_smoothing
    )


# Not scikit-learn's compute_class_weight('balanced'): it refuses a class with no training
# images, which this weights 0 (the same n/(k·count) otherwise).
def class_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Inverse-frequency weights normalised so a balanced set gets 1.0 everywhere."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, len(labels) / (num_classes * np.maximum(counts, 1)), 0.0)
    return weights.astype(np.float32)


def per_class_metric_name(class_name: str) -> str:
    return f"acc_{class_name}"


def make_metrics(class_names: tuple[str, ...]) -> list[keras.metrics.Metric]:
    """The validation's metrics: accuracy and each class's recall (its per-class accuracy)."""
    metrics: list[keras.metrics.Metric] = [keras.metrics.CategoricalAccuracy(name="accuracy")]
    metrics += [
        keras.metrics.Recall(class_id=k, top_k=1, name=per_class_metric_name(name))
        for k, name in enumerate(class_names)
    ]
    return metrics


def compile_model(
    model: keras.Model,
    cfg: TrainConfig,
    steps_per_epoch: int,
    lr_factors: dict[str, float] | None = None,
    steps_per_execution: int = 1,
    jit_compile: bool = False,
) -> None:
    # steps_per_execution > 1 (several steps per tf.function call) and XLA are offered to the
    # throughput benchmarks only: training keeps one step per call, so that per-step callbacks
    # see every step, and no XLA, which trained slower on these CPUs (cifarkit bench engine
    # --negatives measures it).
    # The training step computes accuracy only: the per-class recalls are the validation's
    # (cifarkit.training.fit computes them from the validation logits); compiled in, they
    # were ten more metrics every step and 1.0-1.3 s more tracing for ResNet20.
    model.compile(
        optimizer=make_optimizer(cfg, steps_per_epoch, lr_factors),
        loss=make_loss(cfg.loss),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        jit_compile=jit_compile,
        steps_per_execution=steps_per_execution,
    )
    # The optimizer's slots (momenta) are made now rather than in the first training step: a
    # tf.function that creates variables while tracing is traced a second time, and Keras only
    # builds the optimizer ahead under a distribution strategy. Same slots, same zeros, one
    # trace fewer (ResNet20's first fit call 3.3 -> 1.8 s, AVX-512 host). A transfer run builds
    # it here too, before any layer is frozen, over every variable that may ever train.
    model.optimizer.build(model.trainable_variables)
