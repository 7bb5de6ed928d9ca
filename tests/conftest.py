"""Shared fixtures. Every test runs with its own cache and artifacts folders and no network."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from data_fixtures import write_image_tree, write_official_batches

from cifarkit.core.startup import start
from cifarkit.data import readers

# The suite runs as the cifarkit command does (oneDNN on, TensorFlow's start-up notices
# filtered), so runs trained here and in the processes the tests start are the same.
start()

_HOGS: list[Any] = []


def pytest_sessionstart() -> None:
    """``CIFARKIT_CPU_HOG=N`` starts N busy processes for the whole run, so the suite proves it
    does not depend on an idle machine (timing-sensitive code must cope with a loaded host)."""
    import os
    import subprocess
    import sys

    if os.environ.get("PYTEST_XDIST_WORKER"):  # under pytest-xdist: the controller starts them
        return
    count = int(os.environ.get("CIFARKIT_CPU_HOG", "0") or 0)
    _HOGS.extend(subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count))


def pytest_sessionfinish() -> None:
    for hog in _HOGS:
        hog.kill()
        hog.wait()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Groups for ``make test``'s two pytest-xdist workers (``--dist loadgroup``): each file's
    tests run on one worker, so its module fixtures (trained runs, decoded data) are built once;
    the tests that start a Ray cluster on this machine share one worker, so no two clusters
    start at once."""
    for item in items:
        group = "ray-cluster" if item.get_closest_marker("cluster") else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(autouse=True)
def _restore_logging() -> Any:
    """Undo the CLI's logging set-up after each test: its handler writes to the stderr that
    test captured, which is closed once the test ends (a later log line would then fail)."""
    import logging

    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in before:
            root.removeHandler(handler)
    for handler in before:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


@pytest.fixture(autouse=True)
def _isolated_dirs(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Point CIFARKIT_CACHE and CIFARKIT_ARTIFACTS at fresh tmp folders (never real artifacts)."""
    root = tmp_path_factory.mktemp("cifarkit-home")
    monkeypatch.setenv("CIFARKIT_ARTIFACTS", str(root / "artifacts"))
    monkeypatch.setenv("CIFARKIT_CACHE", str(root / "cache"))


@pytest.fixture(autouse=True)
def _no_download(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never download: a Keras CIFAR-10 download fails like an offline machine's."""

    def offline() -> Any:
        raise RuntimeError("network access is disabled in the tests")

    monkeypatch.setattr(readers, "_keras_load_data", offline)


@pytest.fixture
def no_data_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset CIFARKIT_DATA for tests of the fallback order."""
    monkeypatch.delenv("CIFARKIT_DATA", raising=False)


@pytest.fixture
def image_tree(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """A PNG image-folder tree (3 classes x 4 train / 2 test) and its expected arrays."""
    root = tmp_path / "images"
    return root, write_image_tree(root)


@pytest.fixture
def official_dir(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """An extracted ``cifar-10-batches-py/`` folder (10 classes, 20 images a batch)."""
    folder = tmp_path / "cifar-10-batches-py"
    return folder, write_official_batches(folder)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say at the end how many data tests were skipped and why (CI never skips them)."""
    skipped = [
        r for r in terminalreporter.stats.get("skipped", []) if "data" in getattr(r, "keywords", {})
    ]
    if skipped:
        terminalreporter.write_line(
            f"{len(skipped)} data test(s) skipped: CIFARKIT_DATA is not set; point it at a CIFAR-10 copy "
            "to run them (CI sets CIFARKIT_REQUIRE_DATA=1, which fails them instead)",
            yellow=True,
        )
