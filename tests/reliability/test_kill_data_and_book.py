"""SIGKILL during the decoded-data cache write and during a book build.

The next command must rebuild only what was incomplete: a partial cache file or a
half-executed notebook is never used or published as fresh.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_book_build import book_build_command, make_book, needs_kernel, write_nb
from train_fixtures import tiny_experiment, tiny_image_tree

pytestmark = pytest.mark.slow


def _env(tmp_path: Path, data: Path) -> dict[str, str]:
    return {
        **os.environ,
        "CIFARKIT_ARTIFACTS": str(tmp_path / "artifacts"),
        "CIFARKIT_CACHE": str(tmp_path / "artifacts" / "cache"),
        "CIFARKIT_DATA": str(data),
    }


def _cache_files_all_valid(cache: Path) -> list[Path]:
    # final names only: an atomic write in progress is a dot-file (`.<name>.*.tmp.npz`)
    files = (
        sorted(p for p in (cache / "data").glob("*.npz") if not p.name.startswith("."))
        if (cache / "data").exists()
        else []
    )
    for path in files:
        with np.load(path, allow_pickle=False) as stored:
            assert stored["x_train"].dtype == np.uint8 and stored["x_train"].shape[1:] == (
                32,
                32,
                3,
            )
    return files


def test_kill_during_data_decode_and_cache_write(tmp_path):
    data = tiny_image_tree(tmp_path / "data", train_per_class=300, test_per_class=60)
    env = _env(tmp_path, data)
    cache = tmp_path / "artifacts" / "cache"
    config = tiny_experiment(tmp_path, data)
    cmd = [
        sys.executable,
        "-m",
        "cifarkit.cli",
        "-q",
        "data",
        "info",
        str(config),
        "--profile",
        "none",
    ]
    rng = random.Random(7)
    for _ in range(6):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.8, 4.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        _cache_files_all_valid(cache)  # never a truncated file under the final name
    # Then kills that provably land inside the cache write: the writer's temp file (the
    # atomic write's `.<name>.*.tmp.npz`) exists when the signal is sent and is still there,
    # with no final file, afterwards.
    landed = 0
    for _ in range(12):
        shutil.rmtree(cache, ignore_errors=True)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        while proc.poll() is None and time.time() < deadline:
            if _temps(cache):
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.0005)
        proc.wait()
        if _temps(cache) and not _cache_files_all_valid(cache):
            landed += 1
            break
    assert landed, "no SIGKILL landed while the cache file was being written in 12 attempts"
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "total" in done.stdout and "600" in done.stdout  # 60 test images x 10 classes
    assert len(_cache_files_all_valid(cache)) == 1


def _temps(cache: Path) -> list[Path]:
    """The data cache's in-progress atomic writes."""
    folder = cache / "data"
    return sorted(folder.glob(".*.tmp.npz")) if folder.exists() else []


@needs_kernel
def test_kill_mid_chapter_never_publishes_half_executed_notebook(tmp_path):
    data = tiny_image_tree(tmp_path / "data", train_per_class=8, test_per_class=4)
    root = make_book(
        tmp_path / "src", {"quick": ["x = 1"], "slow": ["import time\ntime.sleep(60)"]}
    )
    env = _env(tmp_path, data)
    cmd = book_build_command(root, "--output", str(tmp_path / "out"), "--no-strict")
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    executed = tmp_path / "artifacts" / "book" / "executed" / "smoke"
    deadline = time.time() + 240
    while time.time() < deadline and not (executed / "book" / "quick.key.json").exists():
        time.sleep(0.2)
    time.sleep(8)  # well inside the slow chapter's sleep
    os.killpg(proc.pid, signal.SIGKILL)  # the build and its kernel, as a crash would
    proc.wait()
    assert (executed / "book" / "quick.key.json").exists()
    assert not (executed / "book" / "slow.key.json").exists()
    assert not (tmp_path / "out" / "_build" / "html" / "book" / "slow.html").exists()

    write_nb(root / "book" / "slow.ipynb", "y = 2")
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = done.stdout + done.stderr
    assert "quick" in summary and "cached" in summary
    assert "slow" in summary and "never executed" in summary
    assert (tmp_path / "out" / "_build" / "html" / "book" / "slow.html").exists()


@needs_kernel
def test_two_book_builds_at_once_take_turns_on_the_cache(tmp_path):
    data = tiny_image_tree(tmp_path / "data", train_per_class=8, test_per_class=4)
    root = make_book(
        tmp_path / "src", {"one": ["import time\ntime.sleep(3)\nx = 1"], "two": ["y = 2"]}
    )
    env = _env(tmp_path, data)
    cmd = book_build_command(root, "--output", str(tmp_path / "out"), "--no-strict")
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=600)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], "\n".join(o[-2000:] for o in outputs)
    both = "".join(outputs)
    assert "waiting" in both  # the second build waited for the first's lock
    # Each chapter was executed exactly once; the waiting build found them cached.
    assert both.count("one      executed") == 1 and both.count("one      cached") == 1, both[-3000:]
    executed = tmp_path / "artifacts" / "book" / "executed" / "smoke" / "book"
    assert sorted(p.name for p in executed.iterdir() if not p.name.startswith(".")) == [
        "one.ipynb",
        "one.key.json",
        "two.ipynb",
        "two.key.json",
    ]
