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
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from train_fixtures import tiny_experiment, tiny_image_tree

pytestmark = pytest.mark.slow


def _cmd(config: Path, seed: int = 0, *extra: str, quiet: bool = True) -> list[str]:
    return [
        sys.executable,
        "-m",
        "cifarkit.cli",
        *(["-q"] if quiet else []),
        "train",
        str(config),
        "--profile",
        "none",
        "--seed",
        str(seed),
        "--no-register",
        *extra,
    ]


def _env(artifacts: Path) -> dict[str, str]:
    return {
        **os.environ,
        "CIFARKIT_ARTIFACTS": str(artifacts),
        "CIFARKIT_CACHE": str(artifacts / "cache"),
    }


def _run_dirs(artifacts: Path) -> list[Path]:
    root = artifacts / "runs"
    return [p for p in root.iterdir() if p.is_dir()] if root.exists() else []


def _marked_since(artifacts: Path, since: float) -> bool:
    return any(
        (d / "status.json").exists() and (d / "status.json").stat().st_mtime >= since
        for d in _run_dirs(artifacts)
    )


def _assert_consistent(run_dir: Path) -> None:
    """What a killed run may look like: unfinished with a readable checkpoint, or wholly complete.

    ``status.json`` saying complete is the commit point; a kill after it (checkpoint clean-up,
    MLflow shutdown, interpreter exit) leaves a finished run, which must then be fully readable.
    """
    status = (
        json.loads((run_dir / "status.json").read_text())
        if (run_dir / "status.json").exists()
        else {}
    )
    if status.get("status") == "complete":
        json.loads((run_dir / "metrics.json").read_text())
        json.loads((run_dir / "history.json").read_text())
        with np.load(run_dir / "predictions.npz") as arrays:
            assert arrays["logits"].shape[0] == arrays["labels"].shape[0] > 0
        assert (run_dir / "model.keras").stat().st_size > 0
        return
    pointer = run_dir / "checkpoint" / "latest.json"
    if pointer.exists():
        target = run_dir / "checkpoint" / json.loads(pointer.read_text())["folder"]
        assert (target / "model.keras").stat().st_size > 0
        json.loads((target / "state.json").read_text())


def _epochs_checkpointed(artifacts: Path) -> int:
    pointers = [d / "checkpoint" / "latest.json" for d in _run_dirs(artifacts)]
    return max((json.loads(p.read_text())["epoch"] for p in pointers if p.exists()), default=0)


def _is_complete(artifacts: Path) -> bool:
    return any(
        (d / "status.json").exists()
        and json.loads((d / "status.json").read_text())["status"] == "complete"
        for d in _run_dirs(artifacts)
    )


@dataclass(frozen=True)
class _Phases:
    """Seconds an uninterrupted run spends in each phase on this host."""

    start_up: float  # process start to status.json marked running
    first_epoch: float  # marked to first checkpoint: model build, tracing, epoch 1
    epoch: float  # each later epoch, checkpoint included
    tail: float  # last checkpoint to status.json saying complete: test pass, final writes, MLflow

    def remaining(self, epochs: int, done: int) -> float:
        """Seconds from being marked running to complete, for a run resuming after ``done`` epochs."""
        return self.first_epoch + self.epoch * max(epochs - done - 1, 0) + self.tail


def _timed_run(config: Path, artifacts: Path, epochs: int) -> _Phases:
    """Train uninterrupted, noting when each phase ends (polled every 20 ms)."""
    started = time.time()
    proc = subprocess.Popen(
        _cmd(config), env=_env(artifacts), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    marked, completed, checkpoints = None, None, {}
    while proc.poll() is None:
        now = time.time()
        if marked is None and _marked_since(artifacts, started):
            marked = now
        if completed is None and _is_complete(artifacts):
            completed = now
        done = _epochs_checkpointed(artifacts)
        if done and done not in checkpoints:
            checkpoints[done] = now
        time.sleep(0.02)
    assert proc.returncode == 0, proc.stderr.read().decode()[-2000:]
    assert marked is not None and completed is not None and checkpoints, (
        "a phase ended between two polls"
    )
    first, last = checkpoints[min(checkpoints)], checkpoints[max(checkpoints)]
    return _Phases(
        start_up=marked - started,
        first_epoch=first - marked,
        epoch=(last - first) / (max(checkpoints) - min(checkpoints))
        if len(checkpoints) > 1
        else 0.0,
        tail=completed - last,
    )


def test_ten_random_sigkills_then_identical_final_metrics(tmp_path):
    """Ten or more SIGKILLs, timed from this host's own phase lengths so a fast CPU cannot outrun them."""
    epochs = 4
    data = tiny_image_tree(tmp_path / "data", train_per_class=40, test_per_class=6)
    config = tiny_experiment(tmp_path, data, epochs=epochs)
    reference = tmp_path / "reference"
    phases = _timed_run(config, reference, epochs)
    killed = tmp_path / "killed"
    rng = random.Random(20261128)
    kills = 0
    scale = 1.0  # shrinks when this host runs an attempt faster than it ran the reference
    for _attempt in range(60):
        # The first ten kills land well before the run could finish (70% of the work left); later
        # ones may also land in the final writes, after the commit, or miss and let it finish.
        reach = (0.7 if kills < 10 else 1.3) * scale
        started = time.time()
        proc = subprocess.Popen(
            _cmd(config), env=_env(killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if rng.random() < 0.2:  # sometimes during start-up (imports, data, MLflow)
            time.sleep(rng.uniform(0.0, 0.9 * phases.start_up))
        else:  # mostly once this attempt has marked the run running: model build, epochs, writes
            while proc.poll() is None and not _marked_since(killed, started):
                time.sleep(0.02)
            left = phases.remaining(epochs, _epochs_checkpointed(killed))
            time.sleep(rng.uniform(0.0, reach * left))
        finished = proc.poll() is not None
        if finished:
            assert proc.returncode == 0
        else:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            for run_dir in _run_dirs(killed):
                _assert_consistent(run_dir)
        if (finished or _is_complete(killed)) and kills < 10:
            # The run committed before its tenth kill: this host ran the attempt faster than the
            # reference (its load changed), or a resume from the last checkpoint took less than
            # the phases predict. Kill sooner from now on and start the run over, so the run
            # that is compared has been killed ten times or more.
            shutil.rmtree(killed)
            kills, scale = 0, scale / 2
            continue
        if finished or _is_complete(killed) or (kills >= 10 and rng.random() < 0.3):
            break
    assert kills >= 10, f"only {kills} kills in 60 attempts"
    # Whatever state the kills left, the same command finishes the run.
    subprocess.run(_cmd(config), env=_env(killed), check=True, capture_output=True)

    (run_dir,) = _run_dirs(killed)
    (ref_dir,) = _run_dirs(reference)
    assert run_dir.name == ref_dir.name
    assert json.loads((run_dir / "status.json").read_text())["status"] == "complete"
    with np.load(run_dir / "predictions.npz") as a, np.load(ref_dir / "predictions.npz") as b:
        np.testing.assert_array_equal(a["logits"], b["logits"])
    drop = {"train_seconds"}
    got = {
        k: v for k, v in json.loads((run_dir / "metrics.json").read_text()).items() if k not in drop
    }
    want = {
        k: v for k, v in json.loads((ref_dir / "metrics.json").read_text()).items() if k not in drop
    }
    assert got == want


def test_two_trainers_same_run_one_trains_other_waits(tmp_path):
    data = tiny_image_tree(tmp_path / "data")
    config = tiny_experiment(tmp_path, data, epochs=2)
    artifacts = tmp_path / "artifacts"
    first = subprocess.Popen(
        _cmd(config, quiet=False),
        env=_env(artifacts),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    second = subprocess.Popen(
        _cmd(config, quiet=False),
        env=_env(artifacts),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out1, err1 = first.communicate(timeout=600)
    out2, err2 = second.communicate(timeout=600)
    assert first.returncode == 0 and second.returncode == 0, (err1 + err2).decode()[-2000:]
    (run_dir,) = _run_dirs(artifacts)
    # Exactly one of them trained: the other waited and found the run finished (or cached).
    both = (err1 + err2).decode()
    assert both.count("cifarkit.runs.store: training tiny_baseline_cnn") == 1, both[-3000:]
    assert both.count("cached:") == 1  # "cached: ... (finished by another process)" or plain cached
    history = json.loads((run_dir / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]


def test_second_trainer_with_no_wait_exits_2_with_one_line(tmp_path, monkeypatch):
    """While another process holds the run's lock (the lock a trainer holds while it trains),
    ``--no-wait`` exits 2 with one line naming the run and the lock; once it is free, it trains."""
    from filelock import FileLock

    from cifarkit.core.config import load_config
    from cifarkit.data.identity import data_hash_for
    from cifarkit.runs import locate

    data = tiny_image_tree(tmp_path / "data")
    config = tiny_experiment(tmp_path, data, epochs=1)
    artifacts = tmp_path / "artifacts"
    monkeypatch.setenv("CIFARKIT_ARTIFACTS", str(artifacts))
    monkeypatch.setenv("CIFARKIT_CACHE", str(artifacts / "cache"))
    cfg = load_config(config, None)
    run = locate(cfg, 0, data_hash_for(cfg.data))
    run.lock_path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(run.lock_path):
        second = subprocess.run(
            _cmd(config, 0, "--no-wait"), env=_env(artifacts), capture_output=True, text=True
        )
    assert second.returncode == 2, second.stderr[-2000:]
    lines = [line for line in second.stderr.splitlines() if line.strip()]
    assert lines == [
        f"cifarkit: error: another process is training {run.path.name} (lock {run.lock_path}); "
        "wait for it to finish or stop it"
    ], second.stderr[-2000:]
    assert not run.complete
    free = subprocess.run(
        _cmd(config, 0, "--no-wait"), env=_env(artifacts), capture_output=True, text=True
    )
    assert free.returncode == 0 and run.complete, free.stderr[-2000:]


def test_two_different_runs_side_by_side_both_complete(tmp_path):
    data = tiny_image_tree(tmp_path / "data")
    config = tiny_experiment(tmp_path, data, epochs=1)
    artifacts = tmp_path / "artifacts"
    procs = [
        subprocess.Popen(
            _cmd(config, seed),
            env=_env(artifacts),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for seed in (0, 1)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()[-2000:]
    statuses = [json.loads((d / "status.json").read_text())["status"] for d in _run_dirs(artifacts)]
    assert statuses == ["complete", "complete"]
