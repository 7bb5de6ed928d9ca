"""Grad-CAM speed: batched tf-keras-vis maps for a stored run or a fresh ResNet20."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class GradcamSpeed:
    source: str  # run folder name, or "fresh <model>" (random weights, random images)
    images: int
    batch_size: int
    layer: str
    seconds: float  # predictions (targets) + Grad-CAM maps, after one untimed warm-up batch

    @property
    def img_s(self) -> float:
        return self.images / self.seconds

    def as_dict(self) -> dict:
        return {**asdict(self), "img_s": self.img_s}


def gradcam_speed(
    experiment: str | None = None,
    profile: str = "cpu",
    *,
    seed: int = 0,
    n: int = 1000,
    batch_size: int = 200,
    layer: str | None = None,
) -> GradcamSpeed:
    """Time Grad-CAM (tf-keras-vis, batched) for ``n`` images, predicted class as target.

    With ``experiment`` the stored run of (experiment, profile, seed) and its first ``n``
    test images are used (the run is never trained here); without it a freshly built
    ResNet20 and seeded random images, which costs the same per image.
    """
    from cifarkit.core.errors import CifarkitError
    from cifarkit.interpret.cams import Explainer, predicted_classes

    if n < 1:
        raise CifarkitError(f"--n {n}: time at least one image")
    if experiment is None:
        from cifarkit.core.repro import set_seeds
        from cifarkit.models.resnet import cifar_resnet

        set_seeds(seed, deterministic=False)
        model = cifar_resnet(20)
        images = np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3)).astype(np.float32)
        source = "fresh resnet20"
    else:
        from cifarkit.core.config import load_config
        from cifarkit.data import splits_from_config
        from cifarkit.data.identity import data_hash_for
        from cifarkit.runs import locate

        cfg = load_config(experiment, profile)
        run = locate(cfg, seed, data_hash_for(cfg.data))
        if not run.complete:
            raise CifarkitError(
                f"no complete {cfg.name} run for profile {profile}, seed {seed}; train it with "
                f"`cifarkit train {experiment} --profile {profile} --seed {seed}` or omit "
                "--run-experiment to time a fresh model"
            )
        model = run.load_model()
        x_test = splits_from_config(cfg.data).x_test
        if n > len(x_test):
            raise CifarkitError(
                f"--n {n} exceeds the {len(x_test)} test images of profile {profile}"
            )
        images = x_test[:n].astype(np.float32)
        source = run.path.name
    explainer = Explainer(model, batch_size=batch_size)
    layer_name = explainer.resolve_layer(layer)
    warm = images[: min(8, n)]
    explainer.maps(
        warm, predicted_classes(model, warm), "gradcam", layer_name
    )  # graph building, untimed
    log.info("timing Grad-CAM at %s on %d images (batches of %d)...", layer_name, n, batch_size)
    started = time.perf_counter()
    maps = explainer.maps(images, predicted_classes(model, images), "gradcam", layer_name)
    seconds = time.perf_counter() - started
    if maps.shape != images.shape[:3]:  # pragma: no cover - a bug, not a user error
        raise RuntimeError(f"Grad-CAM returned {maps.shape} for {images.shape}")
    return GradcamSpeed(source, n, batch_size, layer_name, seconds)
