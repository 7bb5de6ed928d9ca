"""The data's identity for run keys, without decoding any image."""

from __future__ import annotations

from pathlib import Path

from cifarkit.config import DataConfig


def data_hash_for(data_cfg: DataConfig) -> str:
    """Content hash of the configured source: cheap for local sources (stat index), equal to
    ``load_cifar10(...).source_hash``; a Keras download has to be loaded to be hashed."""
    from cifarkit.data.sources import _hash_source, load_cifar10, resolve_source

    source = resolve_source(data_cfg.source)
    if source is None:
        return load_cifar10(None).source_hash
    return _hash_source(Path(source), use_index=True)
