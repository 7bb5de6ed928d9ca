"""The CIFAR-10 data layer: sources, decoding, caching and splits.

``load_cifar10`` reads any supported source (official archive or folder, image-folder
tree or archive, or Keras' download) into uint8 arrays, caching the decoded arrays by the
source's content hash; ``make_splits`` turns them into a seeded stratified
train/val/test split. The tf.data input pipeline lives in ``cifarkit.data.pipeline``
(imported on its own, so importing this package does not import TensorFlow).
"""

from cifarkit.data.sources import (
    CLASS_NAMES,
    Cifar10,
    data_source_hash,
    load_cifar10,
    resolve_source,
)
from cifarkit.data.split import Splits, make_splits, splits_from_config

__all__ = [
    "CLASS_NAMES",
    "Cifar10",
    "Splits",
    "data_source_hash",
    "load_cifar10",
    "make_splits",
    "resolve_source",
    "splits_from_config",
]
