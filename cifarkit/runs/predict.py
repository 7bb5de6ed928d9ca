"""Top-k classes of a user's image files, from a stored run or from an export.

Every file is read on its own (:func:`cifarkit.data.user_images.load_user_image`): a bad
file becomes a :class:`BadInput` with a one-line reason and the other files are still
classified, in one batch.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cifarkit.core.errors import CifarkitError, DataError
from cifarkit.data.user_images import MAX_PIXELS, RESIZE_METHOD, UserImage, load_user_image
from cifarkit.runs.run import Run

log = logging.getLogger(__name__)


@dataclass
class Classifier:
    """Probabilities for ``(N, 32, 32, 3)`` uint8 images, and where they come from."""

    source: str  # e.g. "run resnet20-1a2b3c4d5e6f" or "savedmodel export /path"
    class_names: tuple[str, ...]
    probabilities: Callable[[np.ndarray], np.ndarray]


@dataclass
class Prediction:
    """The top classes of one image, best first."""

    image: UserImage
    top: list[tuple[str, float]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "image": str(self.image.path),
            "ok": True,
            "size": list(self.image.size),
            "mode": self.image.mode,
            "format": self.image.file_format,
            "resize": self.image.resize,
            "notes": self.image.notes,
            "top": [{"class": name, "probability": round(p, 6)} for name, p in self.top],
        }


@dataclass
class BadInput:
    """A file that could not be classified, and why (one line naming the file and the fix)."""

    path: Path
    error: str

    def as_dict(self) -> dict[str, Any]:
        return {"image": str(self.path), "ok": False, "error": self.error}


def classifier_from_run(run: Run) -> Classifier:
    """The run's Keras model (``predict_logits``, then softmax).

    Raises
    ------
    CifarkitError
        If the run is not complete or its model does not load.
    """
    from cifarkit.models import predict_logits

    model = run.load_model()
    names = run.class_names()

    def probabilities(images: np.ndarray) -> np.ndarray:
        return _softmax(predict_logits(model, images))

    return Classifier(f"run {run.path.name}", names, probabilities)


def classifier_from_export(path: str | os.PathLike) -> Classifier:
    """An export folder written by ``cifarkit export`` (SavedModel or ONNX).

    Raises
    ------
    CifarkitError
        If ``path`` is not an export or does not load.
    """
    from cifarkit.runs.export import load_export

    exported = load_export(Path(path))
    run = exported.manifest.get("run")
    source = f"{exported.format} export {exported.path}" + (f" (run {run})" if run else "")
    return Classifier(source, exported.class_names, lambda x: exported.predict(x)["probabilities"])


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def predict_files(
    classifier: Classifier,
    paths: Sequence[str | os.PathLike],
    top: int = 3,
    max_pixels: int = MAX_PIXELS,
) -> list[Prediction | BadInput]:
    """Classify every file of ``paths``; bad files are reported, not raised.

    Parameters
    ----------
    classifier : Classifier
        From :func:`classifier_from_run` or :func:`classifier_from_export`.
    paths : sequence of path-like
        PNG or JPEG files of any size.
    top : int, default 3
        Classes per image, best first (at most the number of classes).
    max_pixels : int, default :data:`cifarkit.data.user_images.MAX_PIXELS`
        Larger images are refused before they are decoded.

    Returns
    -------
    list of Prediction or BadInput
        One entry per path, in the order given.

    Raises
    ------
    CifarkitError
        If ``top`` is below 1.
    """
    if top < 1:
        raise CifarkitError(f"top={top}: ask for at least one class")
    loaded: list[UserImage | BadInput] = []
    for path in paths:
        try:
            loaded.append(load_user_image(path, max_pixels=max_pixels))
        except DataError as exc:
            loaded.append(BadInput(Path(path), str(exc)))
    good = [item for item in loaded if isinstance(item, UserImage)]
    probs = (
        classifier.probabilities(np.stack([g.pixels for g in good])) if good else np.zeros((0, 0))
    )
    k = min(top, len(classifier.class_names))
    row = iter(probs)
    results: list[Prediction | BadInput] = []
    for item in loaded:
        if isinstance(item, BadInput):
            results.append(item)
            continue
        p = next(row)
        best = np.argsort(-p, kind="stable")[:k]
        results.append(Prediction(item, [(classifier.class_names[i], float(p[i])) for i in best]))
    return results


__all__ = [
    "RESIZE_METHOD",
    "BadInput",
    "Classifier",
    "Prediction",
    "classifier_from_export",
    "classifier_from_run",
    "predict_files",
]
