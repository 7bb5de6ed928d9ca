"""The study plan on a real two-node Ray cluster on this machine.

A head and a second node (one CPU each, ``ray.cluster_utils.Cluster``: real GCS and raylet
processes) train the smoke baseline chapter's four runs through ``cifarkit plan run
--runner ray``. The test checks that both nodes trained, kills one worker process with
SIGKILL in the middle of a run (Ray retries the task), and compares every run with the same
run trained locally: same folder (key), same test accuracy and the same logits.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cifarkit.runs.cluster import WORKER_STORE_ENV

if os.environ.get("CIFARKIT_REQUIRE_RAY") != "1":  # CI requires Ray: there a missing Ray fails
    pytest.importorskip("ray", reason="the cluster tests need Ray (extra ray)")

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.data]
ENV_DATA = "CIFARKIT_DATA"


@pytest.fixture
def data_source():
    source = os.environ.get(ENV_DATA)
    if not source:
        pytest.skip("CIFARKIT_DATA is not set: the smoke runs need the real data")
    return source


def _cli(args, artifacts: Path, data: str, **popen):
    env = {**os.environ, "CIFARKIT_ARTIFACTS": str(artifacts), ENV_DATA: data}
    command = str(Path(sys.executable).with_name("cifarkit"))
    return subprocess.Popen(
        [command, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **popen,
    )


def _runs(artifacts: Path) -> dict[str, dict]:
    out = {}
    for folder in sorted((artifacts / "runs").iterdir()):
        if folder.is_dir() and not folder.name.startswith("."):
            status = json.loads((folder / "status.json").read_text())
            if status.get("status") == "complete":
                out[folder.name] = {
                    "metrics": json.loads((folder / "metrics.json").read_text()),
                    "logits": np.load(folder / "predictions.npz")["logits"],
                }
    return out


def _running_with_a_checkpoint(stores: Path) -> list[tuple[int, str]]:
    """(worker pid, run) of each run a node is training that has finished an epoch: the run's
    status record names the process that trains it."""
    out = []
    for status in stores.glob("*/runs/*/status.json"):
        try:
            record = json.loads(status.read_text())
        except (OSError, ValueError):
            continue
        if (
            record.get("status") == "running"
            and (status.parent / "checkpoint" / "latest.json").exists()
        ):
            out.append((int(record["pid"]), status.parent.name))
    return out


def test_two_nodes_train_the_smoke_plan_a_killed_worker_is_retried_and_runs_match_local(
    tmp_path, monkeypatch, data_source
):
    from ray.cluster_utils import Cluster

    monkeypatch.setenv(
        WORKER_STORE_ENV, str(tmp_path / "node-stores")
    )  # inherited by the raylets' workers
    monkeypatch.setenv(ENV_DATA, data_source)
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    # The same plan trained locally, in this process's environment, beside the cluster: its
    # runs are compared with the cluster's below (deterministic ops: the same bits under load).
    local = _cli(
        ["plan", "run", "--profile", "smoke", "--chapter", "baseline"],
        tmp_path / "local",
        data_source,
    )
    node = {"num_cpus": 1, "object_store_memory": 200 * 1024**2}  # a run comes back in a few MB
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    try:
        cluster.add_node(**node)
        cluster.wait_for_nodes()
        driver = _cli(
            [
                "plan",
                "run",
                "--profile",
                "smoke",
                "--chapter",
                "baseline",
                "--runner",
                "ray",
                "--address",
                cluster.address,
            ],
            tmp_path / "driver",
            data_source,
        )
        # Kill one worker with SIGKILL once it has finished an epoch of its run.
        killed, deadline = None, time.monotonic() + 600
        while killed is None and time.monotonic() < deadline and driver.poll() is None:
            for pid, run in _running_with_a_checkpoint(tmp_path / "node-stores"):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    killed = (pid, run)
                    break
            time.sleep(0.2)
        out, _ = driver.communicate(timeout=900)
    finally:
        cluster.shutdown()
    print(out)  # the driver's progress lines: which node trained which run (shown with pytest -s)
    assert driver.returncode == 0, out
    assert killed is not None, "no worker was caught mid-run to kill:\n" + out
    done = re.findall(r"\] (\S+) on (\S+) \(worker (\d+)", out)
    assert len(done) == 4, out
    nodes = {node for _, node, _ in done}
    assert len(nodes) == 2, f"both nodes should train: {done}"
    pid, run = killed
    print(f"killed worker {pid} while it trained {run}")
    retried = [worker for folder, _, worker in done if folder == run]
    assert retried and int(retried[0]) != pid, (
        f"{run} was not retried after its worker {pid} was killed"
    )

    # The plan trained locally: same keys, same results.
    local_out, _ = local.communicate(timeout=900)
    assert local.returncode == 0, local_out
    on_ray, here = _runs(tmp_path / "driver"), _runs(tmp_path / "local")
    assert sorted(on_ray) == sorted(here) and len(here) == 4
    for name in here:
        assert on_ray[name]["metrics"]["test_accuracy"] == here[name]["metrics"]["test_accuracy"], (
            name
        )
        np.testing.assert_array_equal(on_ray[name]["logits"], here[name]["logits"], err_msg=name)


def test_an_unreachable_cluster_fails_with_one_line_naming_the_address(tmp_path, data_source):
    proc = _cli(
        [
            "plan",
            "run",
            "--profile",
            "smoke",
            "--chapter",
            "baseline",
            "--runner",
            "ray",
            "--address",
            "127.0.0.1:9",
        ],
        tmp_path,
        data_source,
    )
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 2, out
    errors = [line for line in out.splitlines() if line.startswith("cifarkit: error:")]
    assert len(errors) == 1 and "cannot reach the Ray cluster at 127.0.0.1:9" in errors[0], out
