"""Train runs as Ray tasks on a cluster; each finished run comes back whole or not at all.

Ray (an optional dependency: ``pip install -e '.[ray]'``) schedules one task per missing
run, asking for the CPUs (and, for a float16 config, the GPU) the run needs, and retries a
task whose worker or node died. A task trains with the same code path as a local run
(:func:`cifarkit.runs.get_or_train`) into a run store of its node's own, then hands the
finished run to the driver through the remote store's contract
(:mod:`cifarkit.runs.remote`): content-addressed objects first, the manifest last. With a
remote store configured the worker pushes there and the driver pulls; without one the
worker returns the same objects and manifest in the task's result and the driver writes
them into a local inbox laid out as a remote store and pulls from it. Either way the pull
verifies every file's size and sha256, moves the run in under its training lock and never
overwrites a complete run, so a run is committed whole or not at all and two drivers never
commit the same run twice.

A retried task on the same node resumes from that node's last epoch checkpoint (the run
store of a node outlives its worker processes). With a remote store, every epoch's
checkpoint is also copied there (:class:`CheckpointMirror`), so a retry on another node
resumes from it too; without one, a retry elsewhere starts the run again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cifarkit.core.config import ExperimentConfig
from cifarkit.core.errors import CifarkitError
from cifarkit.runs.schedule import Eta, Job, Queue

log = logging.getLogger(__name__)

RAY_MISSING = (
    "the Ray runner needs Ray, an optional dependency: pip install -e '.[ray]' "
    "(pinned in requirements.lock)"
)
#: Where a node keeps the runs its tasks train (under the node's temp folder unless set).
WORKER_STORE_ENV = "CIFARKIT_RAY_WORKER_ARTIFACTS"
#: Environment the driver passes to every task: the data and the configs it planned with.
PASSED_ENV = ("CIFARKIT_DATA", "CIFARKIT_CONFIGS", "CIFARKIT_CACHE")


@dataclass
class Outcome:
    """What a task reports: the run, the node and worker process that trained it, its minutes."""

    folder: str
    node: str
    pid: int
    minutes: float
    resumed_from_epoch: int | None


#: The share of a GPU a run of a CIFAR model (32x32 inputs, trained from scratch) asks for: two
#: such runs fit on one card, each growing its memory as needed (cifarkit.core.precision.share_gpus).
#: A keras.applications backbone at its larger input size asks for a whole card.
SMALL_RUN_GPU = 0.5
#: Seconds a run may wait while no node of the cluster offers what it asks for (a node may join
#: meanwhile) before the plan stops with one line instead of waiting for ever.
UNPLACEABLE_TIMEOUT = 120.0


def resources(cfg: ExperimentConfig, cpus: float = 1.0) -> dict[str, float]:
    """What one run asks the scheduler for: ``cpus`` CPUs and, for a float16 config (the ``full``
    profile's mixed precision), part of a GPU for a small run (:data:`SMALL_RUN_GPU`) or a whole one."""
    gpus = 0.0
    if cfg.train.precision == "float16":
        gpus = SMALL_RUN_GPU if cfg.model.cifar_native else 1.0
    return {"num_cpus": cpus, "num_gpus": gpus}


def unplaceable(request: Mapping[str, float], nodes: Sequence[Mapping[str, Any]]) -> str | None:
    """What a run asking ``request`` (:func:`resources`) needs that no live node of ``nodes``
    (``ray.nodes()``) has, as words (``0.5 GPU``); None when some node has all of it."""
    need = {"CPU": request.get("num_cpus", 0.0), "GPU": request.get("num_gpus", 0.0)}
    need = {name: amount for name, amount in need.items() if amount}
    for node in nodes:
        have = node.get("Resources") or {}
        if node.get("Alive", True) and all(
            have.get(name, 0.0) >= amount for name, amount in need.items()
        ):
            return None
    return " and ".join(f"{amount:g} {name}" for name, amount in need.items())


def _offered(nodes: Sequence[Mapping[str, Any]]) -> str:
    """What the live nodes have, for the error line: ``2 CPU, 0 GPU`` per node name."""
    labels = node_labels(nodes)
    return (
        "; ".join(
            f"{labels[n['NodeID']]}: {(n.get('Resources') or {}).get('CPU', 0):g} CPU, "
            f"{(n.get('Resources') or {}).get('GPU', 0):g} GPU"
            for n in nodes
            if n.get("Alive", True)
        )
        or "none"
    )


def _import_ray():
    try:
        import ray
    except ImportError:
        raise CifarkitError(RAY_MISSING) from None
    return ray


def _reachable(address: str) -> str | None:
    """Why ``host:port`` or ``ray://host:port`` cannot be reached (None if a TCP connect works;
    ``auto`` and ``local`` are left to Ray)."""
    if address in ("auto", "local"):
        return None
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        return f"{address!r} is not an address; use auto, HOST:PORT or ray://HOST:PORT"
    try:
        with socket.create_connection((host, int(port)), timeout=3):
            return None
    except OSError as exc:
        return f"nothing answers at {host}:{port} ({exc.strerror or exc})"


def require_reachable(address: str) -> None:
    """Fail with one line naming ``address`` when nothing answers there (a TCP connect, no Ray
    needed): callers check it before anything slow, such as the plan's speed probes."""
    problem = _reachable(address)
    if problem is not None:
        raise CifarkitError(
            f"cannot reach the Ray cluster at {address}: {problem}; start one with "
            "`ray start --head` (and `ray start --address HEAD:6379` on other machines) "
            "or pass its address"
        )


def connect(address: str):
    """Join the Ray cluster at ``address`` (``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``); a
    cluster that cannot be reached fails with one line naming the address."""
    ray = _import_ray()
    require_reachable(address)
    # Absolute paths: a task's working directory is not the driver's.
    env = {
        name: os.path.abspath(os.path.expanduser(os.environ[name]))
        for name in PASSED_ENV
        if os.environ.get(name)
    }
    if ray.is_initialized():
        return ray
    try:
        ray.init(
            address=address,
            runtime_env={"env_vars": env},
            log_to_driver=False,
            logging_level=logging.WARNING,
            configure_logging=False,
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise CifarkitError(
            f"cannot reach the Ray cluster at {address}: {exc}".splitlines()[0]
        ) from None
    return ray


def _node_store() -> Path:
    """This node's own run store: one per Ray node, kept across its worker processes."""
    import ray

    base = os.environ.get(WORKER_STORE_ENV) or os.path.join(tempfile.gettempdir(), "cifarkit-ray")
    return Path(base) / ray.get_runtime_context().get_node_id()[:12]


class CheckpointMirror:
    """A run's last epoch checkpoint kept on the remote store too, so that a task retried on
    another node resumes from it instead of epoch 0.

    Keys ``checkpoints/<run>/epoch-NNN/{model.keras,state.json}`` and, written last,
    ``checkpoints/<run>/latest.json`` (the same pointer-last rule as a local checkpoint:
    a reader sees the previous checkpoint or the new one, never a mix).
    """

    FILES = ("model.keras", "state.json")

    def __init__(self, store, run_dir: Path) -> None:
        self.store, self.run_dir, self.run = store, run_dir, run_dir.name

    def _key(self, rel: str) -> str:
        return f"{self.store.root}/checkpoints/{self.run}/{rel}"

    def push(self, epoch: int, row: Mapping[str, Any] | None = None) -> None:
        """Epoch hook: copy the checkpoint the run just wrote, pointer last."""
        local = self.run_dir / "checkpoint"
        pointer = json.loads((local / "latest.json").read_text())
        folder = pointer["folder"]
        if self.store.local:
            self.store.fs.makedirs(self._key(folder), exist_ok=True)
        for name in self.FILES:
            self.store.fs.put_file(str(local / folder / name), self._key(f"{folder}/{name}"))
        self.store.write_key(
            f"checkpoints/{self.run}/latest.json", (local / "latest.json").read_bytes()
        )

    def restore(self) -> int | None:
        """Copy the remote checkpoint into a run folder that has none; the epoch it resumes
        after, or None (no remote checkpoint, or a local one, which wins)."""
        from cifarkit.core.atomic import write_json
        from cifarkit.training.checkpoint import CheckpointManager

        local = self.run_dir / "checkpoint"
        if (local / "latest.json").exists():
            return None
        try:
            pointer = json.loads(self.store.fs.cat_file(self._key("latest.json")))
            folder, epoch = str(pointer["folder"]), int(pointer["epoch"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None
        if not re.fullmatch(r"epoch-\d{3}", folder):  # never trust a remote path
            log.warning("ignoring the remote checkpoint of %s: folder %r", self.run, folder)
            return None
        staging = local / f".{folder}.partial"
        staging.mkdir(parents=True, exist_ok=True)
        for name in self.FILES:
            self.store.fs.get_file(self._key(f"{folder}/{name}"), str(staging / name))
        staging.rename(local / folder)
        write_json(local / "latest.json", pointer)
        try:
            CheckpointManager(local).latest()  # truncated or corrupt: start again instead
        except CifarkitError as exc:
            log.warning(
                "the remote checkpoint of %s is unusable (%s); starting it again", self.run, exc
            )
            shutil.rmtree(local, ignore_errors=True)
            return None
        return epoch

    def remove(self) -> None:
        """The run is complete and pushed: its remote checkpoint is not needed any more."""
        with contextlib.suppress(FileNotFoundError, OSError):
            self.store.fs.rm(self._key("").rstrip("/"), recursive=True)


def train_task(
    config_yaml: str, seed: int, remote_url: str | None, source: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The task body, run in a worker: train (or resume) into the node's store, then hand the
    run over. Returns the outcome fields and, without a remote, the run's manifest and objects.

    A transfer run's source run must be in the node's store first: it is pulled from the remote,
    or, without one, ``source`` carries it packed (:func:`pack`) from the driver.
    """
    import ray
    import yaml

    from cifarkit.core.startup import start
    from cifarkit.runs.remote.transfer import RemoteStore
    from cifarkit.runs.store import get_or_train

    start()  # a fresh worker process (max_calls=1): set up as the cifarkit command is
    started = time.perf_counter()
    store = _node_store()
    os.environ["CIFARKIT_ARTIFACTS"] = str(store)
    cfg = ExperimentConfig.model_validate(yaml.safe_load(config_yaml))
    if cfg.transfer and cfg.transfer.source_run:
        _bring_source(cfg.transfer.source_run, remote_url, source, store)
    mirror = None
    if remote_url:  # resume from the last checkpoint any earlier attempt pushed, on any node
        from cifarkit.data.identity import data_hash_for
        from cifarkit.runs.run import locate

        mirror = CheckpointMirror(
            RemoteStore(remote_url), locate(cfg, seed, data_hash_for(cfg.data)).path
        )
        resumed = mirror.restore()
        if resumed:
            log.info("resuming %s after epoch %d from the remote checkpoint", mirror.run, resumed)
    run = get_or_train(
        cfg,
        seed,
        label=f"[ray {socket.gethostname()}:{os.getpid()}] ",
        epoch_hooks=[mirror.push] if mirror else (),
    )
    result: dict[str, Any] = {
        "folder": run.path.name,
        "node": ray.get_runtime_context().get_node_id(),
        "pid": os.getpid(),
        "seconds": time.perf_counter() - started,
        "resumed_from_epoch": run.status_record().get("resumed_from_epoch"),
    }
    if remote_url:
        RemoteStore(remote_url).push([run.path.name])
        if mirror is not None:
            mirror.remove()
        return result
    return {**result, **pack(run.path.name)}


def _bring_source(
    name: str, remote_url: str | None, source: Mapping[str, Any] | None, store: Path
) -> None:
    """Put the complete source run ``name`` into this node's store (verified, as a pull is)."""
    from cifarkit.runs.remote.transfer import RemoteStore
    from cifarkit.runs.run import Run, runs_root

    if Run(runs_root() / name).complete:
        return
    if remote_url:
        report = RemoteStore(remote_url).pull([name])
    elif source is not None:
        inbox = RemoteStore((store / "ray-inbox").as_uri())
        inbox.receive(source["manifest"], source["objects"])
        report = inbox.pull([name])
    else:
        raise CifarkitError(
            f"transfer source run {name} is not on this node and the driver sent none"
        )
    if report.refused:
        raise CifarkitError(
            f"transfer source run {name} could not be brought to this node: "
            + "; ".join(why for _, why in report.refused)
        )


def pack(name: str) -> dict[str, Any]:
    """The complete local run ``name`` as a store holds it: its manifest and its objects by sha256."""
    from cifarkit.runs.remote import pack_run
    from cifarkit.runs.run import Run, runs_root

    manifest, objects = pack_run(Run(runs_root() / name))
    return {"manifest": manifest, "objects": objects}


def _commit(result: Mapping[str, Any], remote_url: str | None, inbox: Path) -> str | None:
    """Bring a finished task's run into the driver's store (verified, atomic, never twice).
    Returns why it was not committed, or None when it was (or was already complete here)."""
    from cifarkit.runs.remote.transfer import RemoteStore

    name = result["folder"]
    if remote_url:
        report = RemoteStore(remote_url).pull([name])
    else:
        store = RemoteStore(inbox.as_uri())
        try:
            store.receive(result["manifest"], result["objects"])  # objects first, the manifest last
        except CifarkitError as exc:
            return f"{name}: {exc}"
        report = store.pull([name])
    if report.refused:
        return "; ".join(f"{run}: {why}" for run, why in report.refused)
    return None


def node_labels(nodes: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Node id → how the progress lines name it: its name (``ray start --node-name``, else its
    address), with the id's first 8 hex digits where several nodes share a name (as nodes on
    one machine do)."""
    names = {
        n["NodeID"]: str(n.get("NodeName") or n.get("NodeManagerAddress") or "?") for n in nodes
    }
    shared = {name for name in names.values() if list(names.values()).count(name) > 1}
    return {node: f"{name}/{node[:8]}" if name in shared else name for node, name in names.items()}


def _check_placeable(
    ray,
    jobs: Sequence[Job],
    pending: Mapping[Any, int],
    cpus: float,
    address: str,
    since: float,
    timeout: float,
) -> float:
    """Fail with one line once a pending run has asked for ``timeout`` seconds for what no live
    node has; returns the time from which the wait counts (now, while every run could be placed)."""
    nodes = ray.nodes()
    for i in pending.values():
        missing = unplaceable(resources(jobs[i].config, cpus), nodes)
        if missing is None:
            continue
        waited = time.monotonic() - since
        if waited < timeout:
            return since
        fix = (
            " add a node with a GPU (ray start --num-gpus 1 ...) or train in float32 (--set train.precision=float32)"
            if "GPU" in missing
            else " add a node that has them"
        )
        raise CifarkitError(
            f"run {jobs[i].folder} asks the Ray cluster at {address} for {missing} and no node "
            f"offers that (nodes: {_offered(nodes)}); waited {waited:.0f} s:{fix}"
        )
    return time.monotonic()


def train_on_ray(
    jobs: Sequence[Job],
    address: str,
    *,
    remote_url: str | None = None,
    cpus_per_run: float = 1.0,
    retries: int = 3,
    unplaceable_timeout: float = UNPLACEABLE_TIMEOUT,
) -> dict[str, Outcome]:
    """Train ``jobs`` as Ray tasks at ``address`` and commit each finished run to the local store.

    Parameters
    ----------
    jobs : sequence of Job
        The runs to train (the plan's missing ones), with their estimated minutes for the
        progress line's ETA.
    address : str
        ``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``.
    remote_url : str, optional
        A remote run store every node can reach; workers push there and the driver pulls.
        Without one, runs travel in the tasks' results.
    cpus_per_run : float, default 1
        CPUs each task asks for.
    retries : int, default 3
        How often a task whose worker process or node died is run again.
    unplaceable_timeout : float, default :data:`UNPLACEABLE_TIMEOUT`
        Seconds a run may wait while no node offers what it asks for (e.g. a GPU on a
        cluster of CPU nodes) before this fails with one line naming it.

    Returns
    -------
    dict
        Run folder → :class:`Outcome` (node, worker process, minutes).

    Raises
    ------
    CifarkitError
        Ray missing, the cluster unreachable, a run no node can take, or a run that failed or
        could not be committed.
    """
    from cifarkit.core.paths import artifacts_dir

    ray = connect(address)
    nodes = node_labels(ray.nodes())
    task = ray.remote(max_calls=1)(train_task)  # a fresh process per run: no TF state carried over
    inbox = artifacts_dir() / "ray-inbox"
    queue = Queue(jobs)  # a transfer run waits until its source run is committed here
    pending: dict[Any, int] = {}
    done: dict[str, Outcome] = {}

    def submit_ready() -> None:
        for i in queue.ready(len(pending)):
            job = jobs[i]
            source_run = job.config.transfer.source_run if job.config.transfer else None
            # Without a remote the source travels with the task, packed from this store.
            source = pack(source_run) if source_run and not remote_url else None
            ref = task.options(
                **resources(job.config, cpus_per_run),
                max_retries=retries,
                retry_exceptions=False,
                name=f"cifarkit:{job.folder}",
            ).remote(job.config.to_yaml(), job.seed, remote_url, source)
            pending[ref] = i

    submit_ready()
    # Until a few runs are back, the estimates are shared out over the tasks the CPUs can hold.
    slots = int(ray.cluster_resources().get("CPU", 1.0) // cpus_per_run)
    eta = Eta([job.minutes or 0.0 for job in jobs], at_once=max(1, min(slots, len(jobs))))
    log.info(
        "[ray %s] %d run(s) for %d node(s): %s (%d waiting for their transfer source)",
        address,
        len(jobs),
        len(nodes),
        ", ".join(sorted(set(nodes.values()))),
        len(queue.waiting),
    )
    placeable_since = time.monotonic()
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=min(10.0, unplaceable_timeout))
        if not ready:  # still running, queued, or asking for what no node has
            placeable_since = _check_placeable(
                ray, jobs, pending, cpus_per_run, address, placeable_since, unplaceable_timeout
            )
            continue
        i = pending.pop(ready[0])
        try:
            result = ray.get(ready[0])
        except ray.exceptions.RayError as exc:
            raise CifarkitError(
                f"run {jobs[i].folder} failed on the cluster: "
                f"{str(exc).strip().splitlines()[-1][:300]}"
            ) from None
        problem = _commit(result, remote_url, inbox)
        if problem is not None:
            raise CifarkitError(
                f"run {jobs[i].folder} came back incomplete and was not committed: {problem}"
            )
        node = nodes.get(result["node"]) or result["node"][:12]
        done[result["folder"]] = Outcome(
            result["folder"],
            node,
            int(result["pid"]),
            result["seconds"] / 60,
            result.get("resumed_from_epoch"),
        )
        queue.finish(i)
        eta.finish(i)
        submit_ready()
        left = eta.left([*pending.values(), *queue.waiting])
        log.info(
            "[plan on ray: %d of %d done, %.1f min elapsed, about %.0f min left] %s on %s "
            "(worker %d, %.1f min%s)",
            len(done),
            len(jobs),
            eta.elapsed(),
            left,
            result["folder"],
            node,
            result["pid"],
            result["seconds"] / 60,
            f", resumed from epoch {result['resumed_from_epoch']}"
            if result.get("resumed_from_epoch")
            else "",
        )
    by_node: dict[str, list[str]] = {}
    for outcome in done.values():
        by_node.setdefault(outcome.node, []).append(outcome.folder)
    log.info(
        "[ray %s] every run committed; %s",
        address,
        "; ".join(
            f"{node} trained {len(runs)}: {', '.join(runs)}"
            for node, runs in sorted(by_node.items())
        ),
    )
    return done
