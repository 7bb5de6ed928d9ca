"""The Ray runner's parts that need no cluster: resources, addresses, errors."""

from __future__ import annotations

import socket

import pytest

from cifarkit.core.config import load_config
from cifarkit.core.errors import CifarkitError
from cifarkit.runs import cluster
from cifarkit.studies.runner import train_plan


def test_a_run_asks_for_one_cpu_and_a_gpu_only_under_mixed_float16_half_a_card_for_a_cifar_model():
    assert cluster.resources(load_config("resnet20", "cpu")) == {"num_cpus": 1.0, "num_gpus": 0.0}
    assert cluster.resources(load_config("resnet20", "full"), cpus=4) == {
        "num_cpus": 4,
        "num_gpus": 0.5,
    }
    assert cluster.resources(load_config("airbench", "full"))["num_gpus"] == cluster.SMALL_RUN_GPU
    assert (
        cluster.resources(load_config("transfer_imagenet", "full"))["num_gpus"] == 1.0
    )  # a backbone: a whole card


def test_what_no_node_offers_is_named():
    cpu_node = {"NodeID": "aa11", "NodeName": "cpu-box", "Alive": True, "Resources": {"CPU": 2.0}}
    gpu_node = {
        "NodeID": "bb22",
        "NodeName": "gpu-box",
        "Alive": True,
        "Resources": {"CPU": 8.0, "GPU": 1.0},
    }
    dead_gpu = {**gpu_node, "Alive": False}
    half = {"num_cpus": 1.0, "num_gpus": 0.5}
    assert cluster.unplaceable(half, [cpu_node, gpu_node]) is None
    assert cluster.unplaceable(half, [cpu_node, dead_gpu]) == "1 CPU and 0.5 GPU"
    assert cluster.unplaceable({"num_cpus": 4.0, "num_gpus": 0.0}, [cpu_node]) == "4 CPU"
    assert cluster.unplaceable({"num_cpus": 1.0, "num_gpus": 0.0}, [cpu_node]) is None
    assert cluster._offered([cpu_node, dead_gpu]) == "cpu-box: 2 CPU, 0 GPU"


def test_an_address_that_nothing_answers_is_named_in_one_line():
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert "nothing answers at 127.0.0.1:" in cluster._reachable(f"127.0.0.1:{port}")
    assert "nothing answers" in cluster._reachable(f"ray://127.0.0.1:{port}")
    assert "is not an address" in cluster._reachable("no-port-here")
    assert cluster._reachable("auto") is None
    pytest.importorskip("ray")
    with pytest.raises(
        CifarkitError, match=rf"cannot reach the Ray cluster at 127.0.0.1:{port}: nothing answers"
    ):
        cluster.connect(f"127.0.0.1:{port}")


def test_an_unreachable_cluster_is_refused_before_the_speed_probes(monkeypatch, capsys):
    from cifarkit.cli import main

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr("cifarkit.data.identity.data_hash_for", lambda data: "d" * 64)
    monkeypatch.setattr(
        "cifarkit.studies.pricing.measured_speeds", lambda *a, **k: pytest.fail("probed")
    )
    code = main(
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
            f"127.0.0.1:{port}",
        ]
    )
    assert code == 2
    assert (
        f"cifarkit: error: cannot reach the Ray cluster at 127.0.0.1:{port}: nothing answers"
        in capsys.readouterr().err
    )


def test_an_unknown_runner_is_refused_before_anything_trains():
    with pytest.raises(
        CifarkitError, match="runner='slurm' is not a runner; choose from local, ray"
    ):
        train_plan([], {}, runner="slurm")


def test_a_checkpoint_mirrored_to_the_remote_resumes_a_run_elsewhere_and_a_corrupt_one_is_dropped(
    tmp_path,
):
    import keras

    from cifarkit.runs.remote.transfer import RemoteStore
    from cifarkit.training.checkpoint import CheckpointManager

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    here = tmp_path / "node-a" / "runs" / "resnet20-0123456789ab"
    CheckpointManager(here / "checkpoint").save(
        model, 2, {"history": [{"loss": 1.0}] * 2, "train_seconds": 3.0}
    )
    store = RemoteStore((tmp_path / "remote").as_uri())
    cluster.CheckpointMirror(store, here).push(2)
    elsewhere = tmp_path / "node-b" / "runs" / here.name
    assert cluster.CheckpointMirror(store, elsewhere).restore() == 2
    assert CheckpointManager(elsewhere / "checkpoint").latest()["epoch"] == 2
    assert cluster.CheckpointMirror(store, elsewhere).restore() is None  # a local checkpoint wins
    # A truncated remote model file: the run starts again rather than resume from garbage.
    remote_model = tmp_path / "remote" / "checkpoints" / here.name / "epoch-002" / "model.keras"
    remote_model.write_bytes(remote_model.read_bytes()[:100])
    third = tmp_path / "node-c" / "runs" / here.name
    assert cluster.CheckpointMirror(store, third).restore() is None
    assert not (third / "checkpoint").exists()
    cluster.CheckpointMirror(store, here).remove()
    assert not (tmp_path / "remote" / "checkpoints" / here.name).exists()
    assert (
        cluster.CheckpointMirror(store, tmp_path / "node-d" / "runs" / here.name).restore() is None
    )


def test_nodes_on_one_machine_are_told_apart_by_their_id():
    nodes = [
        {"NodeID": "aa11bb22cc33", "NodeName": "127.0.0.1"},
        {"NodeID": "dd44ee55ff66", "NodeName": "127.0.0.1"},
        {"NodeID": "0099887766aa", "NodeName": "gpu-box"},
    ]
    assert cluster.node_labels(nodes) == {
        "aa11bb22cc33": "127.0.0.1/aa11bb22",
        "dd44ee55ff66": "127.0.0.1/dd44ee55",
        "0099887766aa": "gpu-box",
    }


def test_a_returned_run_is_committed_once_verified_and_a_tampered_one_not_at_all(
    tmp_path, monkeypatch
):
    pytest.importorskip("fsspec")
    from test_remote import make_run

    from cifarkit.runs import Run
    from cifarkit.runs.remote import Manifest

    monkeypatch.setenv("CIFARKIT_ARTIFACTS", str(tmp_path / "worker"))
    made = make_run("tiny_baseline_cnn-0123456789ab")
    packed = cluster.pack(made.path.name)
    monkeypatch.setenv("CIFARKIT_ARTIFACTS", str(tmp_path / "driver"))
    result = {"folder": made.path.name, **packed}
    assert cluster._commit(result, None, tmp_path / "driver" / "ray-inbox") is None
    here = Run(tmp_path / "driver" / "runs" / made.path.name)
    assert (
        here.complete
        and (here.path / "model.keras").read_bytes() == (made.path / "model.keras").read_bytes()
    )
    before = (here.path / "status.json").stat().st_mtime_ns
    assert (
        cluster._commit(result, None, tmp_path / "driver" / "ray-inbox") is None
    )  # a second driver, same run
    assert (here.path / "status.json").stat().st_mtime_ns == before  # not committed twice
    # A run whose model came back altered is refused by name, and nothing of it enters the store.
    other = make_run("tiny_baseline_cnn-ba9876543210", root=tmp_path / "worker" / "runs")
    monkeypatch.setenv("CIFARKIT_ARTIFACTS", str(tmp_path / "worker"))
    packed = cluster.pack(other.path.name)
    monkeypatch.setenv("CIFARKIT_ARTIFACTS", str(tmp_path / "driver"))
    model_sha = Manifest.parse(packed["manifest"], other.path.name).files["model.keras"].sha256
    packed["objects"][model_sha] = packed["objects"][model_sha][:-10] + b"0123456789"
    problem = cluster._commit(
        {"folder": other.path.name, **packed}, None, tmp_path / "driver" / "ray-inbox2"
    )
    assert problem and "model.keras" in problem
    assert not (tmp_path / "driver" / "runs" / other.path.name).exists()


def test_the_checkpoint_mirror_writes_only_checkpoint_keys(tmp_path):
    pytest.importorskip("fsspec")
    from cifarkit.runs.remote import RemoteStore

    store = RemoteStore((tmp_path / "remote").as_uri())
    store.write_key("checkpoints/resnet20-0123456789ab/latest.json", b"{}")
    assert (
        tmp_path / "remote" / "checkpoints" / "resnet20-0123456789ab" / "latest.json"
    ).read_bytes() == b"{}"
    for rel in (
        "runs/resnet20-0123456789ab.json",
        "checkpoints/../objects/ab",
        "checkpoints/x/latest.json",
    ):
        with pytest.raises(CifarkitError, match="only checkpoints/<run>/latest.json"):
            store.write_key(rel, b"{}")


def test_a_transfer_runs_source_is_brought_to_the_node_packed_or_refused(tmp_path, monkeypatch):
    pytest.importorskip("fsspec")
    from test_remote import make_run

    from cifarkit.runs import Run

    monkeypatch.setenv("CIFARKIT_ARTIFACTS", str(tmp_path / "driver"))
    source = make_run("tiny_baseline_cnn-0123456789ab")
    packed = cluster.pack(source.path.name)
    node = tmp_path / "node"
    monkeypatch.setenv("CIFARKIT_ARTIFACTS", str(node))
    with pytest.raises(CifarkitError, match="is not on this node and the driver sent none"):
        cluster._bring_source(source.path.name, None, None, node)
    cluster._bring_source(source.path.name, None, packed, node)
    here = Run(node / "runs" / source.path.name)
    assert (
        here.complete
        and (here.path / "model.keras").read_bytes() == (source.path / "model.keras").read_bytes()
    )
    cluster._bring_source(source.path.name, None, None, node)  # already there: nothing to bring
