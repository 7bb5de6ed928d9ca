"""Crash-safe training checkpoints: model + optimizer state + epoch + history.

Why not ``keras.callbacks.BackupAndRestore``: it writes its weights file in place and its
epoch JSON afterwards, with no temp file or rename, so a SIGKILL between the two leaves a
mismatched pair; it keeps no RNG state. Here each checkpoint is a fresh folder
``epoch-NNN/`` holding ``model.keras`` (weights and optimizer variables) and ``state.json``;
only when both are on disk does an atomic rename of ``latest.json`` point at it. A kill at
any moment therefore leaves either the previous checkpoint or the new one, never a mix.

RNG state: data order and augmentation are pure functions of (seed, epoch) (see
:mod:`cifarkit.data.pipeline`), and :class:`EpochReseed` resets every layer's seed
generator from (seed, epoch) when an epoch begins, so restoring the epoch number restores
all randomness.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import keras

from cifarkit.atomic import atomic_path, write_json
from cifarkit.errors import CifarkitError

log = logging.getLogger(__name__)


class CheckpointManager:
    """Saves and restores the last finished epoch under ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    @property
    def pointer(self) -> Path:
        return self.folder / "latest.json"

    def save(self, model: keras.Model, epoch: int, state: dict[str, Any]) -> Path:
        """Write checkpoint for the finished ``epoch`` (1-based count of completed epochs)."""
        target = self.folder / f"epoch-{epoch:03d}"
        if target.exists():  # left over from a run killed before the pointer moved
            shutil.rmtree(target)
        staging = self.folder / f".epoch-{epoch:03d}.partial"
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        with atomic_path(staging / "model.keras", suffix=".keras") as tmp:
            model.save(tmp)
        write_json(staging / "state.json", {"epoch": epoch, **state})
        staging.rename(target)
        write_json(self.pointer, {"epoch": epoch, "folder": target.name})
        self._prune(keep=target.name)
        return target

    def _prune(self, keep: str) -> None:
        for child in self.folder.iterdir():
            if child.is_dir() and child.name != keep:
                shutil.rmtree(child, ignore_errors=True)

    def latest(self) -> dict[str, Any] | None:
        """The state of the last complete checkpoint, or None if there is none."""
        if not self.pointer.exists():
            return None
        try:
            pointer = json.loads(self.pointer.read_text())
            folder = self.folder / pointer["folder"]
            state = json.loads((folder / "state.json").read_text())
        except (OSError, ValueError, KeyError) as exc:
            raise CifarkitError(
                f"checkpoint in {self.folder} is unreadable ({exc}); delete that folder to restart the run"
            ) from None
        state["_model_path"] = str(folder / "model.keras")
        return state

    def restore(self, model: keras.Model) -> dict[str, Any] | None:
        """Load weights and optimizer variables of the last checkpoint into a compiled model."""
        state = self.latest()
        if state is None:
            return None
        path = state.pop("_model_path")
        try:
            model.optimizer.build(model.trainable_variables)
            # load_weights on a .keras file restores every saveable the model holds,
            # optimizer variables (iteration count, momenta) included.
            model.load_weights(path)
        except Exception as exc:  # noqa: BLE001 - any failure here means the file is not ours
            raise CifarkitError(
                f"checkpoint {path} does not fit this model ({type(exc).__name__}: {str(exc)[:120]}); "
                f"delete {self.folder} to restart the run"
            ) from None
        log.info("resuming after epoch %d from %s", state["epoch"], path)
        return state


def seed_generators(model: keras.Model) -> list[keras.random.SeedGenerator]:
    """Every SeedGenerator held by the model's layers (dropout, random layers)."""
    found = []
    for layer in model._flatten_layers(include_self=False):  # noqa: SLF001 - no public walker
        for value in vars(layer).values():
            if isinstance(value, keras.random.SeedGenerator):
                found.append(value)
    return found


class EpochReseed(keras.callbacks.Callback):
    """Set every seed generator's state from (seed, epoch) at the start of each epoch."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.seed = seed

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        for i, generator in enumerate(seed_generators(self.model)):
            generator.state.assign(
                keras.ops.convert_to_tensor([self.seed * 1_000_003 + epoch, i], dtype=generator.state.dtype))
