"""A run asking a real Ray cluster for what no node has fails with one line, in time.

A one-node cluster on this machine (``ray.cluster_utils.Cluster``, one CPU, no GPU) is asked
to train a ``full``-profile run, which asks for part of a GPU: instead of waiting for ever
(Ray keeps an infeasible task pending, for an autoscaler that may add such a node), the
runner stops once the timeout has passed, naming the run, what it asks for and what the
nodes offer. The run never starts.
"""

from __future__ import annotations

import os
import time

import pytest

from cifarkit.core.config import load_config
from cifarkit.core.errors import CifarkitError
from cifarkit.runs import cluster
from cifarkit.runs.schedule import Job

if os.environ.get("CIFARKIT_REQUIRE_RAY") != "1":  # CI requires Ray: there a missing Ray fails
    pytest.importorskip("ray", reason="the cluster tests need Ray (extra ray)")

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def test_a_gpu_run_on_a_cluster_without_a_gpu_fails_with_one_line_within_the_timeout(monkeypatch):
    import ray
    from ray.cluster_utils import Cluster

    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    head = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "num_gpus": 0,
            "include_dashboard": False,
            "object_store_memory": 100 * 1024**2,
        },
    )
    cfg = load_config("resnet20", "full")  # float16: asks for half a GPU
    job = Job(cfg, 0, "resnet20-gpuonly00000")
    timeout, address = 5.0, head.address
    try:
        started = time.monotonic()
        with pytest.raises(CifarkitError) as error:
            cluster.train_on_ray([job], address, unplaceable_timeout=timeout)
        elapsed = time.monotonic() - started
    finally:
        ray.shutdown()
        head.shutdown()
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(
        f"run resnet20-gpuonly00000 asks the Ray cluster at {address} for "
        "1 CPU and 0.5 GPU and no node offers that (nodes: "
    )
    assert ": 1 CPU, 0 GPU); waited " in message and "--set train.precision=float32" in message
    assert timeout <= elapsed < timeout + 30, (
        elapsed
    )  # the timeout, plus one poll and Ray's start-up
