"""The data's identity for run keys, without decoding any image."""

from __future__ import annotations

from cifarkit.core.config import DataConfig


def data_hash_for(data_cfg: DataConfig) -> str:
    """Content hash of the configured source, equal to ``load_cifar10(...).source_hash``.

    Cheap for local sources (a stat index avoids re-reading unchanged files); a Keras
    download has to be loaded to be hashed.
    """
    from cifarkit.data import data_source_hash

    return data_source_hash(data_cfg.source)
