"""The fast recipe's benchmark goals, written once in ``configs/goals/<name>.yaml``.

A goals file lists, in order, what ``cifarkit bench goals NAME`` measures (``make fast-goals``
runs ``fast``, ``make fast-goals-bf16`` runs ``fast_bf16``). Each entry is one benchmark:

* ``bench: time-to-accuracy`` — an ``experiment``, the validation accuracy to reach
  (``target``, percent), the ``seeds`` and the overrides (``set``) of the measured config, as
  ``cifarkit bench time-to-accuracy`` takes them;
* ``bench: ladder`` — the ``seeds`` per step, the 1-based ``steps`` to train (none: every
  step) and the overrides of every step, as ``cifarkit bench ladder`` takes them.

The targets, budgets and recipe changes live there, beside the configs, and
:meth:`Goal.command` gives the equivalent single command.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cifarkit.core.errors import ConfigError


class Goal(BaseModel):
    """One benchmark of a goals file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bench: Literal["time-to-accuracy", "ladder"]
    experiment: str | None = None
    target: float | None = Field(
        None, gt=0.0, lt=100.0, description="Validation accuracy to reach, percent."
    )
    seeds: int = Field(1, ge=1)
    steps: list[int] = Field(
        default_factory=list, description="Ladder steps to train, 1-based; none: every one."
    )
    profile: str = "cpu"
    set: dict[str, Any] = Field(
        default_factory=dict, description="Dotted config overrides, as --set."
    )

    @model_validator(mode="after")
    def _fields_of_its_bench(self) -> Goal:
        if self.bench == "time-to-accuracy" and (self.experiment is None or self.target is None):
            raise ValueError("a time-to-accuracy goal names an experiment and a target (percent)")
        if self.bench == "ladder" and (
            self.experiment is not None
            or self.target is not None
            or not all(step >= 1 for step in self.steps)
        ):
            raise ValueError(
                "a ladder goal has seeds, steps (1-based) and set, no experiment or target"
            )
        if self.bench == "time-to-accuracy" and self.steps:
            raise ValueError("steps belong to a ladder goal")
        return self

    @property
    def target_fraction(self) -> float:
        """:attr:`target` as a fraction (90.7 -> 0.907)."""
        if self.target is None:
            raise ConfigError(f"a {self.bench} goal has no target")
        return self.target / 100

    def command(self) -> str:
        """The single ``cifarkit bench`` command this goal runs."""
        sets = "".join(
            f" --set {shlex.quote(f'{key}={_text(value)}')}" for key, value in self.set.items()
        )
        if self.bench == "ladder":
            steps = "".join(f" --step {step}" for step in self.steps)
            return (
                f"cifarkit bench ladder --profile {self.profile} --seeds {self.seeds}{steps}{sets}"
            )
        return (
            f"cifarkit bench time-to-accuracy {self.experiment} --profile {self.profile} "
            f"--target {self.target:g} --seeds {self.seeds}{sets}"
        )


def _text(value: Any) -> str:
    """A ``--set`` value as the command line writes it: strings bare, the rest as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def goals_path(name: str | Path) -> Path:
    """``configs/goals/<name>.yaml``, or ``name`` itself when it is a YAML path."""
    from cifarkit.core.paths import configs_dir

    text = str(name)
    if text.endswith((".yaml", ".yml")) or "/" in text:
        return Path(text).expanduser()
    return configs_dir() / "goals" / f"{text}.yaml"


def available_goals() -> list[str]:
    """The goals files under ``configs/goals/``, by name."""
    from cifarkit.core.paths import configs_dir

    return sorted(p.stem for p in (configs_dir() / "goals").glob("*.yaml"))


def load_goals(name: str | Path) -> dict[str, Goal]:
    """The goals of one file, in file order.

    Raises
    ------
    ConfigError
        One line for an unknown file, an empty one, or a goal with a wrong or missing field.
    """
    from cifarkit.core.config import read_yaml

    path = goals_path(name)
    if not path.is_file():
        raise ConfigError(
            f"no goals file {path}; choose one of: {', '.join(available_goals()) or '(none)'}"
        )
    raw = read_yaml(path)
    if not raw:
        raise ConfigError(
            f"{path}: no goals; each entry is `NAME: {{bench: time-to-accuracy | ladder, ...}}`"
        )
    goals = {}
    for goal_name, fields in raw.items():
        try:
            goals[str(goal_name)] = Goal.model_validate(fields)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"])
            raise ConfigError(
                f"{path}: {goal_name}{'.' + where if where else ''}: {error['msg']}"
            ) from None
    return goals
