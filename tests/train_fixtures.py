"""A tiny, learnable image-folder dataset and experiment configs for training tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from cifarkit.core.atomic import write_json, write_text
from cifarkit.data.identity import data_hash_for
from cifarkit.runs import locate

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def tiny_image_tree(
    root: Path, train_per_class: int = 24, test_per_class: int = 6, seed: int = 0
) -> Path:
    """PNG tree whose classes differ in mean colour, so a few epochs learn something."""
    rng = np.random.default_rng(seed)
    palette = rng.integers(30, 225, size=(len(CLASSES), 3))
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        for k, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                noise = rng.normal(0, 40, size=(32, 32, 3))
                pixels = np.clip(palette[k] + noise, 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:04d}.png")
    return root


def tiny_experiment(
    folder: Path, data_root: Path, model: str = "baseline_cnn", epochs: int = 2, extra: str = ""
) -> Path:
    """Write an experiment YAML that trains ``model`` on the tiny tree."""
    path = folder / f"tiny_{model}.yaml"
    path.write_text(
        f"model: {{name: {model}, dropout: 0.1}}\n"
        f"data: {{source: {data_root}, val_per_class: 4}}\n"
        f"train:\n  epochs: {epochs}\n  batch_size: 32\n"
        f"  optimizer: {{name: sgd, lr: 0.05}}\n"
        f"  schedule: {{name: cosine, warmup_epochs: 0.5}}\n"
        f"{extra}"
    )
    return path


def _logits(labels: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    logits = rng.normal(0, 1, (len(labels), 10))
    logits[np.arange(len(labels)), labels] += strength
    return (logits * 2).astype(np.float32)  # over-confident, so temperature scaling has work to do


def write_fake_run(cfg, splits, seed, *, with_val=True):
    """A complete run folder laid out like runs._train_into writes it."""
    run = locate(cfg, seed, data_hash_for(cfg.data))
    run.path.mkdir(parents=True)
    rng = np.random.default_rng(100 + seed)
    arrays = {
        "logits": _logits(splits.y_test, rng, 1.0 + 0.3 * seed),
        "labels": splits.y_test.astype(np.int64),
    }
    if with_val:
        arrays.update(
            val_logits=_logits(splits.y_val, rng, 1.0 + 0.3 * seed),
            val_labels=splits.y_val.astype(np.int64),
        )
    np.savez(run.predictions_path, **arrays)
    history = [
        {
            "epoch": e,
            "loss": 2.3 / e + 0.01 * seed,
            "accuracy": 0.2 * e,
            "val_loss": 2.4 / e,
            "val_accuracy": 0.15 * e + 0.01 * seed,
            **{f"val_acc_{c}": 0.1 * e + 0.01 * k for k, c in enumerate(splits.class_names)},
        }
        for e in (1, 2, 3)
    ]
    write_json(run.history_json_path, history)
    correct = arrays["logits"].argmax(1) == splits.y_test
    per_class = {
        c: float(correct[splits.y_test == k].mean()) for k, c in enumerate(splits.class_names)
    }
    write_json(
        run.metrics_path,
        {
            "test_accuracy": float(correct.mean()),
            "test_accuracy_per_class": per_class,
            "train_seconds": 60.0 + seed,
        },
    )
    write_text(run.config_path, cfg.to_yaml())
    write_json(
        run.status_path,
        {
            "status": "complete",
            "experiment": cfg.name,
            "profile": cfg.profile,
            "seed": seed,
            "test_accuracy": float(correct.mean()),
            "train_seconds": 60.0 + seed,
            "config_hash": cfg.content_hash(),
            "mlflow_run_id": f"fake{seed}",
        },
    )
    return arrays


def write_model_run(cfg, splits, seed=0, *, logits=None):
    """A complete run folder holding a freshly built (untrained) model of ``cfg`` and, unless
    ``logits`` are given, that model's own test logits: what an export must reproduce."""
    from cifarkit.models import build_model, predict_logits

    model = build_model(cfg.model, num_classes=len(splits.class_names))
    arrays = write_fake_run(cfg, splits, seed)
    run = locate(cfg, seed, data_hash_for(cfg.data))
    model.save(run.model_path)
    test_logits = predict_logits(model, splits.x_test) if logits is None else logits
    np.savez(run.predictions_path, **{**arrays, "logits": test_logits})
    return run, model
