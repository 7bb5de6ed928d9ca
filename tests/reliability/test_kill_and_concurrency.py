"""Fault injection: SIGKILL at random moments of a tiny run, and concurrent trainers.

Each kill lands somewhere in start-up, an epoch, a checkpoint write, the final writes or
MLflow logging. After every kill the run folder must not look complete, the checkpoint
pointer (if any) must point at a loadable checkpoint, and the next start must carry on;
the final metrics must equal an uninterrupted run's.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from train_fixtures import tiny_experiment, tiny_image_tree

pytestmark = pytest.mark.slow


def _cmd(config: Path, seed: int = 0, *extra: str, quiet: bool = True) -> list[str]:
    return [sys.executable, "-m", "cifarkit.cli", *(["-q"] if quiet else []), "train", str(config),
            "--profile", "none", "--seed", str(seed), "--no-register", *extra]


def _env(artifacts: Path) -> dict[str, str]:
    return {**os.environ, "CIFARKIT_ARTIFACTS": str(artifacts), "CIFARKIT_CACHE": str(artifacts / "cache")}


def _run_dirs(artifacts: Path) -> list[Path]:
    root = artifacts / "runs"
    return [p for p in root.iterdir() if p.is_dir()] if root.exists() else []


def _marked_since(artifacts: Path, since: float) -> bool:
    return any((d / "status.json").exists() and (d / "status.json").stat().st_mtime >= since
               for d in _run_dirs(artifacts))


def _assert_consistent(run_dir: Path) -> None:
    """What a killed run may look like: never complete, and any checkpoint fully readable."""
    status = json.loads((run_dir / "status.json").read_text()) if (run_dir / "status.json").exists() else {}
    assert status.get("status") != "complete", "a killed run looks complete"
    pointer = run_dir / "checkpoint" / "latest.json"
    if pointer.exists():
        target = run_dir / "checkpoint" / json.loads(pointer.read_text())["folder"]
        assert (target / "model.keras").stat().st_size > 0
        json.loads((target / "state.json").read_text())


def test_ten_random_sigkills_then_identical_final_metrics(tmp_path):
    data = tiny_image_tree(tmp_path / "data", train_per_class=40, test_per_class=6)
    config = tiny_experiment(tmp_path, data, epochs=4)
    killed = tmp_path / "killed"
    rng = random.Random(20261128)
    kills = 0
    for _attempt in range(40):
        started = time.time()
        proc = subprocess.Popen(_cmd(config), env=_env(killed), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        if rng.random() < 0.2:  # sometimes during start-up (imports, data, MLflow)
            time.sleep(rng.uniform(0.5, 4.0))
        else:  # mostly once this attempt has marked the run running: model build, epochs, writes
            while proc.poll() is None and not _marked_since(killed, started):
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 3.0))
        if proc.poll() is not None:
            assert proc.returncode == 0
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        for run_dir in _run_dirs(killed):
            _assert_consistent(run_dir)
        if kills >= 10 and rng.random() < 0.5:
            break
    # Whatever state the kills left, the same command finishes the run.
    subprocess.run(_cmd(config), env=_env(killed), check=True, capture_output=True)
    assert kills >= 10, f"only {kills} kills landed before the run finished; lengthen the run"

    reference = tmp_path / "reference"
    subprocess.run(_cmd(config), env=_env(reference), check=True, capture_output=True)
    (run_dir,) = _run_dirs(killed)
    (ref_dir,) = _run_dirs(reference)
    assert run_dir.name == ref_dir.name
    assert json.loads((run_dir / "status.json").read_text())["status"] == "complete"
    with np.load(run_dir / "predictions.npz") as a, np.load(ref_dir / "predictions.npz") as b:
        np.testing.assert_array_equal(a["logits"], b["logits"])
    drop = {"train_seconds"}
    got = {k: v for k, v in json.loads((run_dir / "metrics.json").read_text()).items() if k not in drop}
    want = {k: v for k, v in json.loads((ref_dir / "metrics.json").read_text()).items() if k not in drop}
    assert got == want


def test_two_trainers_same_run_one_trains_other_waits(tmp_path):
    data = tiny_image_tree(tmp_path / "data")
    config = tiny_experiment(tmp_path, data, epochs=2)
    artifacts = tmp_path / "artifacts"
    first = subprocess.Popen(_cmd(config, quiet=False), env=_env(artifacts), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    second = subprocess.Popen(_cmd(config, quiet=False), env=_env(artifacts), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    out1, err1 = first.communicate(timeout=600)
    out2, err2 = second.communicate(timeout=600)
    assert first.returncode == 0 and second.returncode == 0, (err1 + err2).decode()[-2000:]
    (run_dir,) = _run_dirs(artifacts)
    # Exactly one of them trained: the other waited and found the run finished (or cached).
    both = (err1 + err2).decode()
    assert both.count("cifarkit.runs: training tiny_baseline_cnn") == 1, both[-3000:]
    assert both.count("cached:") == 1  # "cached: ... (finished by another process)" or plain cached
    history = json.loads((run_dir / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]


def test_second_trainer_with_no_wait_exits_cleanly(tmp_path):
    data = tiny_image_tree(tmp_path / "data")
    config = tiny_experiment(tmp_path, data, epochs=3)
    artifacts = tmp_path / "artifacts"
    first = subprocess.Popen(_cmd(config), env=_env(artifacts), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while time.time() < deadline and not any((d / "status.json").exists() for d in _run_dirs(artifacts)):
        time.sleep(0.2)
    second = subprocess.run(_cmd(config, 0, "--no-wait"), env=_env(artifacts), capture_output=True, text=True)
    first.communicate(timeout=600)
    assert first.returncode == 0
    if second.returncode != 0:  # it ran while the first held the lock
        assert second.returncode == 2 and "another process is training" in second.stderr
        assert "Traceback" not in second.stderr


def test_two_different_runs_side_by_side_both_complete(tmp_path):
    data = tiny_image_tree(tmp_path / "data")
    config = tiny_experiment(tmp_path, data, epochs=1)
    artifacts = tmp_path / "artifacts"
    procs = [subprocess.Popen(_cmd(config, seed), env=_env(artifacts), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE) for seed in (0, 1)]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()[-2000:]
    statuses = [json.loads((d / "status.json").read_text())["status"] for d in _run_dirs(artifacts)]
    assert statuses == ["complete", "complete"]
