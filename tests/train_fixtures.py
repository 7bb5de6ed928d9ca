"""A tiny, learnable image-folder dataset and experiment configs for training tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def tiny_image_tree(root: Path, train_per_class: int = 24, test_per_class: int = 6, seed: int = 0) -> Path:
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


def tiny_experiment(folder: Path, data_root: Path, model: str = "baseline_cnn", epochs: int = 2,
                    extra: str = "") -> Path:
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
