"""Where cifarkit finds configs and writes artifacts.

Defaults are anchored at the project checkout (the folder holding ``configs/`` and
``pyproject.toml``), so the CLI, the tests and notebooks run from ``book/`` all agree.
Environment variables override each location.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = (
    Path(__file__).resolve().parent.parent
)  # the cifarkit package (this file is core/paths.py)


def project_root() -> Path:
    """The checkout that holds this package, or the current directory for a plain install."""
    candidate = PACKAGE_DIR.parent
    if (candidate / "pyproject.toml").is_file() and (candidate / "configs").is_dir():
        return candidate
    return Path.cwd()


def configs_dir() -> Path:
    """Experiment and profile YAML files (``CIFARKIT_CONFIGS`` overrides)."""
    return Path(os.environ.get("CIFARKIT_CONFIGS") or project_root() / "configs").resolve()


def artifacts_dir() -> Path:
    """Everything cifarkit produces (``CIFARKIT_ARTIFACTS`` overrides); git-ignored."""
    return Path(os.environ.get("CIFARKIT_ARTIFACTS") or project_root() / "artifacts").resolve()


def cache_dir() -> Path:
    """Decoded-data and other caches (``CIFARKIT_CACHE`` overrides)."""
    return Path(os.environ.get("CIFARKIT_CACHE") or artifacts_dir() / "cache").resolve()
