"""The package's shape: the import-order contracts hold and catch an upward import, and the
model registry names exactly the models a config may name."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import typing
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")
needs_linter = pytest.mark.skipif(
    not LINT.exists(), reason="import-linter is not installed in this venv"
)


def _lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT), str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )


@needs_linter
def test_the_import_contracts_hold_on_this_checkout():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "2 kept, 0 broken" in result.stdout


@needs_linter
@pytest.mark.parametrize(
    "module, upward, contract",
    [
        ("core/paths.py", "from cifarkit.runs import run_hash", "imports go only downward"),
        (
            "training/fit.py",
            "from cifarkit.runs.store import get_or_train",
            "imports go only downward",
        ),
        ("models/cnn.py", "import cifarkit.models.registry", "no import cycles"),
    ],
)
def test_an_upward_or_cyclic_import_breaks_the_lint_and_is_named(
    tmp_path, module, upward, contract
):
    copy = tmp_path / "checkout"
    shutil.copytree(
        ROOT / "cifarkit", copy / "cifarkit", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    target = copy / "cifarkit" / module
    target.write_text(target.read_text() + f"\n\ndef _upward():\n    {upward}  # noqa\n")
    result = _lint(copy)
    assert result.returncode != 0, result.stdout[-3000:]
    assert "BROKEN" in result.stdout and contract in result.stdout
    package, leaf = module.removesuffix(".py").split("/")
    # the layers report names the importing module; the cycles report names the package and the leaf
    assert f"cifarkit.{package}" in result.stdout and leaf in result.stdout, result.stdout[-3000:]


@pytest.mark.skipif(
    importlib.util.find_spec("vulture") is None, reason="vulture is not installed in this venv"
)
def test_a_function_nothing_calls_fails_the_dead_code_lint(tmp_path):
    copy = tmp_path / "checkout"
    for folder in ("cifarkit", "tests", "tools", "book"):
        shutil.copytree(
            ROOT / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__", "_build")
        )
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    target = copy / "cifarkit" / "evaluation" / "stats.py"
    target.write_text(target.read_text() + "\n\ndef never_called_anywhere():\n    return 1\n")
    result = subprocess.run(
        [sys.executable, str(copy / "tools" / "deadcode.py"), str(copy)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        "cifarkit/evaluation/stats.py" in result.stdout
        and "'never_called_anywhere'" in result.stdout
    )


def test_the_registry_builds_exactly_the_models_a_config_may_name():
    from cifarkit.core.schema import ModelName
    from cifarkit.models import MODELS

    assert set(MODELS) == set(typing.get_args(ModelName))
