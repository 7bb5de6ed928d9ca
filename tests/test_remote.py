"""The remote run store (cifarkit.runs.remote) against a real local folder and a real S3 server.

The ``file://`` remote runs always; the ``s3`` tests start moto's standalone S3 server on a
free localhost port and talk to it through real s3fs clients. Without moto (the
``remote-test`` extra) they are skipped, unless ``CIFARKIT_REQUIRE_S3=1`` turns the skip
into a failure. Faults: SIGKILL during a push, two pushes at once, corrupt, truncated and
missing objects, hostile manifests, an unreachable endpoint and missing credentials.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from cifarkit.cli import main as cli_main
from cifarkit.core.errors import CifarkitError
from cifarkit.runs import Run, runs_root
from cifarkit.runs import remote as rm

# cifarkit.runs.remote imports fsspec only when a store is opened; without it nothing here runs.
pytest.importorskip("fsspec", reason="the remote store needs fsspec: pip install -e '.[remote]'")

NAME = "tiny_baseline_cnn-0123456789ab"
S3_NEEDS = ("moto", "s3fs", "flask", "flask_cors")


# --------------------------------------------------------------------------- helpers
def make_run(
    name: str = NAME,
    *,
    snapshots: int = 0,
    model_bytes: int = 50_000,
    seed: int = 0,
    root: Path | None = None,
) -> Run:
    """A complete run folder written by hand, laid out as the run-folder contract says."""
    folder = (root or runs_root()) / name
    (folder / "snapshots").mkdir(parents=True)
    payload = hashlib.sha256(f"{name}/{seed}".encode()).digest()
    (folder / "config.yaml").write_text(f"name: {name.rsplit('-', 1)[0]}\nseed: {seed}\n")
    (folder / "env.json").write_text(json.dumps({"python": "3.11"}))
    (folder / "history.json").write_text(json.dumps([{"epoch": 1, "loss": 1.0}]))
    (folder / "history.csv").write_text("epoch,loss\n1,1.0\n")
    (folder / "metrics.json").write_text(json.dumps({"test_accuracy": 0.5}))
    (folder / "predictions.npz").write_bytes(payload * 100)
    (folder / "model.keras").write_bytes((payload * (model_bytes // 32 + 1))[:model_bytes])
    for epoch in range(1, snapshots + 1):
        data = hashlib.sha256(f"{name}/{seed}/{epoch}".encode()).digest() * (model_bytes // 32 + 1)
        (folder / "snapshots" / f"epoch-{epoch:03d}.keras").write_bytes(data[:model_bytes])
    (folder / "status.json").write_text(
        json.dumps({"status": "complete", "seed": seed, "test_accuracy": 0.5, "experiment": name})
    )
    return Run(folder)


def tree(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root`` (what 'unchanged' compares)."""
    if not root.exists():
        return {}
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = cli_main(["-q", *args])
    out, err = capsys.readouterr()
    return code, out, err


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def push_cmd(url: str, *runs: str) -> list[str]:
    return [sys.executable, "-m", "cifarkit.cli", "-q", "remote", "push", "--remote", url, *runs]


def object_count(store: rm.RemoteStore) -> int:
    return sum(1 for name in store._list(f"{store.root}/objects") if len(name) == 64)


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(autouse=True)
def _no_configured_remote(monkeypatch):
    for name in (
        rm.ENV_URL,
        rm.ENV_PUSH,
        rm.ENV_ENDPOINT,
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def file_remote(tmp_path) -> str:
    return f"file://{tmp_path / 'remote-store'}"


@pytest.fixture(scope="module")
def moto_endpoint():
    """moto's S3 server in a thread of this process, on a free localhost port."""
    missing = [m for m in S3_NEEDS if importlib.util.find_spec(m) is None]
    if missing:
        reason = (
            f"S3 tests need {', '.join(missing)}: pip install -e '.[remote,remote-test]' (pinned in "
            "requirements.lock)"
        )
        if os.environ.get("CIFARKIT_REQUIRE_S3") == "1":
            pytest.fail(f"{reason}; CIFARKIT_REQUIRE_S3=1 makes this a failure")
        pytest.skip(reason)
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def aws_env(monkeypatch, tmp_path: Path, endpoint: str | None, credentials: bool = True) -> None:
    """Only what the test sets: no AWS config files, no instance metadata look-ups."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    if credentials:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    if endpoint:
        monkeypatch.setenv(rm.ENV_ENDPOINT, endpoint)


@pytest.fixture
def s3_remote(moto_endpoint, monkeypatch, tmp_path) -> str:
    """A fresh bucket on the moto server; the URL has a prefix, as a shared bucket would."""
    import s3fs

    aws_env(monkeypatch, tmp_path, moto_endpoint)
    bucket = f"cifarkit-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem(endpoint_url=moto_endpoint, skip_instance_cache=True).mkdir(bucket)
    return f"s3://{bucket}/team/store"


@pytest.fixture(params=["file", pytest.param("s3", marks=pytest.mark.s3)])
def remote_url(request) -> str:
    return request.getfixturevalue("file_remote" if request.param == "file" else "s3_remote")


# --------------------------------------------------------------------------- round trip
def test_push_pull_round_trip_sends_only_missing_objects(remote_url):
    first, second = make_run(snapshots=2), make_run("resnet20-abcdef012345", seed=1)
    originals = {run.path.name: tree(run.path) for run in (first, second)}
    store = rm.RemoteStore(remote_url)

    report = store.push()
    assert sorted(report.done) == sorted(originals) and not report.refused
    assert report.files == object_count(store) > 0
    assert sorted(store.run_names()) == sorted(originals)
    manifest = store.read_manifest(NAME)
    assert set(manifest.files) == set(originals[NAME]) and manifest.status["status"] == "complete"

    again = store.push()  # nothing to send: the manifests match, every object is there
    assert again.done == [] and again.files == 0 and again.bytes == 0
    assert {why for _, why in again.skipped} == {"already on the remote"}

    for run in (first, second):
        os.rename(run.path, run.path.with_name(run.path.name + ".gone"))
    pulled = store.pull()
    assert sorted(pulled.done) == sorted(originals) and not pulled.refused
    for name, files in originals.items():
        assert tree(runs_root() / name) == files
        assert Run(runs_root() / name).complete
    assert not (runs_root() / ".staging").exists()
    assert store.pull().skipped == [
        (n, "already complete locally; not overwritten") for n in sorted(originals)
    ]


def test_a_run_complete_locally_is_never_overwritten(file_remote, tmp_path, monkeypatch):
    store = rm.RemoteStore(file_remote)
    here = os.environ["CIFARKIT_ARTIFACTS"]
    monkeypatch.setenv("CIFARKIT_ARTIFACTS", str(tmp_path / "another-machine"))
    make_run(model_bytes=999)  # another machine pushed its copy of the same run, with other bytes
    assert store.push().done == [NAME]
    monkeypatch.setenv("CIFARKIT_ARTIFACTS", here)
    local = make_run()
    before = tree(local.path)
    report = store.pull([NAME])
    assert report.done == [] and report.skipped == [
        (NAME, "already complete locally; not overwritten")
    ]
    assert tree(local.path) == before
    # Nor does a push replace the remote's complete copy with this machine's other bytes.
    pushed = store.push([NAME])
    assert pushed.done == [] and "other bytes" in pushed.skipped[0][1]
    assert store.read_manifest(NAME).files["model.keras"].size == 999


def test_pull_replaces_an_unfinished_local_attempt_and_pushes_only_complete_runs(file_remote):
    store = rm.RemoteStore(file_remote)
    run = make_run()
    store.push()
    os.rename(run.path, run.path.with_name("kept-aside"))
    unfinished = runs_root() / NAME
    (unfinished / "checkpoint").mkdir(parents=True)
    (unfinished / "status.json").write_text(json.dumps({"status": "running"}))
    assert store.push([NAME]).refused[0][1].startswith(f"run {NAME} is running")
    assert store.pull([NAME]).done == [NAME]
    assert Run(unfinished).complete and not (unfinished / "checkpoint").exists()


def test_list_runs_leaves_out_the_pull_staging_folder():
    from cifarkit.runs import list_runs

    make_run()
    # What a pull in progress (or killed) leaves under the runs root: <run>.<pid>.<hex>.
    (runs_root() / ".staging" / f"{NAME}.{os.getpid()}.0123abcd").mkdir(parents=True)
    assert [row["run"] for row in list_runs()] == [NAME]


def test_pull_skips_a_run_whose_training_lock_is_held(file_remote):
    from filelock import FileLock

    store = rm.RemoteStore(file_remote)
    run = make_run()
    store.push()
    os.rename(run.path, run.path.with_name("kept-aside"))
    with FileLock(Run(runs_root() / NAME).lock_path):
        report = store.pull()
    assert report.done == [] and "holds" in report.skipped[0][1]
    assert not (runs_root() / NAME).exists()


# --------------------------------------------------------------------------- damaged remote objects
@pytest.mark.parametrize(
    "damage, words",
    [("corrupt", "is corrupt"), ("truncated", "is truncated"), ("missing", "is missing")],
)
def test_a_damaged_object_refuses_the_run_names_it_and_leaves_the_store_unchanged(
    remote_url, capsys, damage, words
):
    run = make_run(snapshots=1)
    store = rm.RemoteStore(remote_url)
    store.push()
    sha = store.read_manifest(NAME).files["model.keras"].sha256
    key = store.object_key(sha)
    data = store.fs.cat_file(key)
    if damage == "corrupt":
        store.fs.pipe_file(key, data[:100] + bytes([data[100] ^ 1]) + data[101:])
    elif damage == "truncated":
        store.fs.pipe_file(key, data[: len(data) // 2])
    else:
        store.fs.rm(key)
    os.rename(run.path, run.path.with_name("kept-aside"))
    (
        runs_root() / "resnet20-abcdef012345"
    ).mkdir()  # an unrelated unfinished run: must stay as it is
    (runs_root() / "resnet20-abcdef012345" / "status.json").write_text('{"status": "failed"}')
    before = tree(runs_root())

    code, out, err = cli(capsys, "remote", "pull", "--remote", remote_url)
    assert code == 2
    line = err.strip()
    assert "\n" not in line and line.startswith("cifarkit: error: remote run")
    assert NAME in line and f"objects/{sha}" in line and "(model.keras)" in line and words in line
    assert "local store is unchanged" in line
    assert tree(runs_root()) == before
    assert not (runs_root() / NAME).exists()

    # Once the run is pushed again, the damaged object is replaced (its size or absence shows).
    if damage != "corrupt":
        os.rename(runs_root() / "kept-aside", run.path)
        assert store.push().files == 1
        os.rename(run.path, runs_root() / "kept-aside")
        assert store.pull([NAME]).done == [NAME]


# --------------------------------------------------------------------------- hostile manifests
def _manifest(files: dict, name: str = NAME, **extra) -> bytes:
    record = {
        "format": rm.FORMAT,
        "run": name,
        "status": {"status": "complete"},
        "files": files,
        **extra,
    }
    return json.dumps(record).encode()


GOOD = {"sha256": "0" * 64, "size": 10}


@pytest.mark.parametrize(
    "name, files, problem",
    [
        (NAME, {"status.json": GOOD, "../../outside.txt": GOOD}, "contains '..'"),
        (NAME, {"status.json": GOOD, "/etc/cron.d/evil": GOOD}, "is absolute"),
        (NAME, {"status.json": GOOD, "evil.py": GOOD}, "is not a file of the run-folder contract"),
        (
            NAME,
            {"status.json": GOOD, "snapshots/epoch-1.keras": GOOD},
            "is not a file of the run-folder contract",
        ),
        (
            NAME,
            {
                "status.json": GOOD,
                "model.keras": {"sha256": "0" * 64, "size": rm.MAX_FILE_BYTES + 1},
            },
            "over the per-file limit",
        ),
        (
            NAME,
            {
                "status.json": GOOD,
                **{
                    f"snapshots/epoch-{i:03d}.keras": {
                        "sha256": "0" * 64,
                        "size": rm.MAX_FILE_BYTES,
                    }
                    for i in range(1, 6)
                },
            },
            "over the per-run limit",
        ),
        (
            NAME,
            {"status.json": GOOD, "model.keras": {"sha256": "../x", "size": 1}},
            "no valid sha256",
        ),
        ("evil", {"status.json": GOOD}, "<experiment>-<12 hex digits>"),
        ("..-0123456789ab", {"status.json": GOOD}, "<experiment>-<12 hex digits>"),
    ],
)
def test_a_hostile_manifest_is_refused_with_one_line(
    file_remote, tmp_path, capsys, name, files, problem
):
    store = rm.RemoteStore(file_remote)
    (Path(store.root) / "runs").mkdir(parents=True)
    (Path(store.root) / "runs" / f"{name}.json").write_bytes(_manifest(files, name))
    code, out, err = cli(capsys, "remote", "pull", "--remote", file_remote)
    assert code == 2
    line = err.strip()
    assert "\n" not in line and repr(name) in line and problem in line, line
    assert tree(runs_root()) == {} and not (tmp_path / "outside.txt").exists()


def test_an_oversized_manifest_is_refused_before_it_is_read(file_remote, capsys):
    store = rm.RemoteStore(file_remote)
    (Path(store.root) / "runs").mkdir(parents=True)
    (Path(store.root) / "runs" / f"{NAME}.json").write_bytes(b" " * (rm.MAX_MANIFEST_BYTES + 1))
    code, _, err = cli(capsys, "remote", "pull", "--remote", file_remote, NAME)
    assert code == 2 and "over the 1048576-byte limit" in err and NAME in err


def test_manifests_that_lie_about_the_run_are_refused():
    with pytest.raises(CifarkitError, match="names the run 'other-0123456789ab'"):
        rm.Manifest.parse(_manifest({"status.json": GOOD}, "other-0123456789ab"), NAME)
    with pytest.raises(CifarkitError, match="does not say complete"):
        rm.Manifest.parse(_manifest({"status.json": GOOD}, status={"status": "running"}), NAME)
    with pytest.raises(CifarkitError, match="not JSON"):
        rm.Manifest.parse(b"{", NAME)


# --------------------------------------------------------------------------- faults: kill, concurrency
def _wait_for_first_object(
    proc: subprocess.Popen, store: rm.RemoteStore, timeout: float = 120
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if object_count(store) >= 1:
            return
        time.sleep(0.005)
    raise AssertionError(f"no object appeared while the push ran (exit {proc.poll()})")


def test_sigkill_during_a_push_leaves_no_remote_run_and_the_next_push_completes_it(
    remote_url, tmp_path
):
    # Enough objects that the push is still uploading when the first one shows (a PUT to the
    # S3 server takes longer than a local write, so fewer suffice there).
    run = make_run(snapshots=60 if remote_url.startswith("s3://") else 250, model_bytes=100_000)
    total = len(
        {hashlib.sha256(p.read_bytes()).hexdigest() for p in run.path.rglob("*") if p.is_file()}
    )
    store = rm.RemoteStore(remote_url)
    proc = subprocess.Popen(push_cmd(remote_url), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for_first_object(proc, store)
        assert proc.poll() is None, "the push finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    sent = object_count(store)
    assert 1 <= sent < total, f"{sent} of {total} objects: the kill did not land mid-push"
    assert store.run_names() == [] and store.runs() == []  # no manifest: no such run remotely
    os.rename(run.path, run.path.with_name("kept-aside"))
    assert store.pull().done == []
    os.rename(run.path.with_name("kept-aside"), run.path)

    report = store.push()
    assert report.done == [NAME] and report.files == total - sent  # only the missing ones travel
    original = tree(run.path)
    os.rename(run.path, run.path.with_name("kept-aside-2"))
    assert store.pull().done == [NAME] and tree(run.path) == original


def test_two_pushes_at_once_both_succeed_with_one_consistent_manifest(remote_url):
    run = make_run(snapshots=40, model_bytes=100_000)
    original = tree(run.path)
    procs = [
        subprocess.Popen(push_cmd(remote_url, NAME), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e.decode()[-2000:] for _, e in outputs]
    store = rm.RemoteStore(remote_url)
    assert store.run_names() == [NAME]
    manifest = store.read_manifest(NAME)
    objects = store._list(f"{store.root}/objects")
    assert all(objects.get(e.sha256) == e.size for e in manifest.files.values())
    assert manifest.to_bytes() == rm.local_manifest(run)[0].to_bytes()
    os.rename(run.path, run.path.with_name("kept-aside"))
    assert store.pull().done == [NAME] and tree(run.path) == original


# --------------------------------------------------------------------------- unusable remotes
def test_no_remote_configured_is_one_line(capsys):
    code, _, err = cli(capsys, "remote", "ls")
    assert code == 2 and err.count("\n") == 1 and "CIFARKIT_REMOTE" in err and "--remote" in err


def test_a_remote_folder_that_does_not_exist_is_one_line_naming_the_url(file_remote, capsys):
    make_run()
    for action in ("pull", "ls"):
        code, out, err = cli(capsys, "remote", action, "--remote", file_remote)
        assert code == 2 and out == "" and err.count("\n") == 1, (out, err)
        assert err.startswith(f"cifarkit: error: the remote {file_remote} does not exist"), err
    assert not Path(file_remote.removeprefix("file://")).exists()  # reading it created nothing


def test_an_existing_empty_store_pulls_nothing(file_remote, capsys):
    Path(file_remote.removeprefix("file://")).mkdir()
    code, out, err = cli(capsys, "remote", "pull", "--remote", file_remote)
    assert code == 0 and err == "" and out.startswith(f"pulled 0 run(s) from {file_remote}:"), (
        out,
        err,
    )
    code, out, _ = cli(capsys, "remote", "ls", "--remote", file_remote)
    assert code == 0 and out.startswith(f"no runs on {file_remote} yet")


def test_a_book_build_that_pushes_may_start_a_new_store(file_remote):
    assert rm.pull_for_build(file_remote, push=True).done == []
    with pytest.raises(CifarkitError, match=f"^the remote {file_remote} does not exist"):
        rm.pull_for_build(file_remote)


@pytest.mark.s3
def test_an_unreachable_endpoint_is_one_line_naming_the_url_and_what_to_set(
    moto_endpoint, monkeypatch, tmp_path, capsys
):
    endpoint = f"http://127.0.0.1:{free_port()}"
    aws_env(monkeypatch, tmp_path, endpoint)
    make_run()
    for action in ("ls", "push"):
        code, _, err = cli(capsys, "remote", action, "--remote", "s3://cifarkit-nowhere/p")
        assert code == 2, err
        assert err.count("\n") == 1 and "s3://cifarkit-nowhere/p" in err and endpoint in err
        assert "CIFARKIT_REMOTE_ENDPOINT" in err and "cannot reach" in err


@pytest.mark.s3
def test_missing_credentials_are_one_line_naming_what_to_set(
    s3_remote, monkeypatch, tmp_path, capsys
):
    aws_env(monkeypatch, tmp_path, os.environ[rm.ENV_ENDPOINT], credentials=False)
    make_run()
    for action in ("ls", "push", "pull"):
        code, _, err = cli(capsys, "remote", action, "--remote", s3_remote)
        assert code == 2, err
        assert err.count("\n") == 1 and s3_remote in err
        assert "AWS_ACCESS_KEY_ID" in err and "AWS_SECRET_ACCESS_KEY" in err


@pytest.mark.s3
def test_a_missing_bucket_is_one_line(s3_remote, capsys):
    code, _, err = cli(capsys, "remote", "ls", "--remote", "s3://cifarkit-no-such-bucket/x")
    assert (
        code == 2
        and err.count("\n") == 1
        and "'cifarkit-no-such-bucket'" in err
        and "does not exist" in err
    )


@pytest.mark.s3
@pytest.mark.parametrize("variable", [rm.ENV_ENDPOINT, "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"])
def test_the_endpoint_comes_from_any_of_its_variables(s3_remote, monkeypatch, variable):
    endpoint = os.environ.pop(rm.ENV_ENDPOINT)
    monkeypatch.setenv(variable, endpoint)
    make_run()
    assert rm.RemoteStore(s3_remote).push().done == [NAME]
    monkeypatch.setenv(rm.ENV_URL, s3_remote)
    assert [r.name for r in rm.open_store().runs()] == [NAME]


# --------------------------------------------------------------------------- the book and the CLI
def test_book_build_pulls_before_the_chapters_and_pushes_after(file_remote, tmp_path, monkeypatch):
    from cifarkit.publish import build as bb
    from cifarkit.publish import keys

    root = tmp_path / "book-src"
    (root / "book").mkdir(parents=True)
    (root / "book" / "intro.md").write_text("# Intro\n")
    (root / "book" / "runs.md").write_text("# Runs\n")
    (root / "_config.yml").write_text("title: t\n")
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n  - file: book/runs\n"
    )
    store = rm.RemoteStore(file_remote)
    remote_only = make_run("resnet20-abcdef012345", seed=3)
    store.push()
    os.rename(remote_only.path, tmp_path / "only-on-the-remote")
    local_only = make_run()

    seen = []
    monkeypatch.setattr(bb, "preflight", lambda: (None, []))
    monkeypatch.setattr(keys, "data_hash", lambda source: "fake-data")
    monkeypatch.setattr(
        bb,
        "shared_components",
        lambda *a: seen.append(Run(remote_only.path).complete) or {"cifarkit": "x"},
    )
    monkeypatch.setattr(bb, "_site", lambda *a, **k: None)
    monkeypatch.setattr(bb, "record_build", lambda *a, **k: None)
    bb.run(
        bb.Options(
            profile="smoke", root=root, output=tmp_path / "out", remote=file_remote, push=True
        )
    )
    assert seen == [True]  # pulled before anything was hashed or executed
    assert sorted(store.run_names()) == sorted([remote_only.path.name, local_only.path.name])

    with pytest.raises(CifarkitError, match="needs a remote"):
        bb.run(bb.Options(profile="smoke", root=root, output=tmp_path / "out", push=True))


def test_book_cli_passes_remote_and_push(monkeypatch):
    from cifarkit.publish import build as bb

    captured = []
    monkeypatch.setattr(bb, "run", lambda opts: captured.append(opts) or [])
    assert cli_main(["book", "build", "--profile", "smoke", "--remote", "file:///x", "--push"]) == 0
    assert captured[-1].remote == "file:///x" and captured[-1].push is True
    assert cli_main(["book", "chapter", "data", "--profile", "smoke"]) == 0
    assert captured[-1].remote is None and captured[-1].push is False
    monkeypatch.setenv(rm.ENV_PUSH, "1")
    assert rm.push_requested(False) and rm.book_remote("file:///x", False) == ("file:///x", True)


def test_remote_cli_push_ls_pull(file_remote, capsys):
    make_run()
    code, out, _ = cli(capsys, "remote", "push", "--remote", file_remote)
    assert code == 0 and f"pushed {NAME}" in out and "pushed 1 run(s)" in out
    code, out, _ = cli(capsys, "remote", "ls", "--remote", file_remote)
    assert code == 0 and NAME in out and "complete" in out and "1 run(s)" in out
    code, out, _ = cli(capsys, "remote", "pull", "--remote", file_remote)
    assert code == 0 and "already complete locally" in out
    code, _, err = cli(capsys, "remote", "push", "--remote", file_remote, "not-a-run")
    assert code == 2 and err.count("\n") == 1 and "'not-a-run'" in err


# --------------------------------------------------------------------------- a real trained run
@pytest.mark.slow
@pytest.mark.s3
def test_a_trained_run_survives_the_trip_through_s3(s3_remote, tmp_path, monkeypatch):
    from train_fixtures import tiny_experiment, tiny_image_tree

    from cifarkit.core.config import load_config
    from cifarkit.runs import get_or_train

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    data = tiny_image_tree(tmp_path / "data")
    cfg = load_config(
        tiny_experiment(tmp_path, data, epochs=1, extra="  snapshot_epochs: [1]\n"), None
    )
    run = get_or_train(cfg, seed=0, register=False)
    metrics, (logits, _) = run.metrics(), run.predictions()
    assert rm.RemoteStore(s3_remote).push().done == [run.path.name]
    os.rename(run.path, tmp_path / "trained-here")

    assert rm.RemoteStore(s3_remote).pull().done == [run.path.name]
    pulled = Run(run.path)
    assert pulled.metrics() == metrics
    assert (pulled.predictions()[0] == logits).all()
    assert pulled.load_model().output_shape == (None, 10) and sorted(pulled.snapshots()) == [1]
    monkeypatch.setattr(
        "cifarkit.runs.store._train_into", lambda *a, **k: pytest.fail("trained again")
    )
    assert get_or_train(cfg, seed=0).path == run.path  # the pulled run is a cache hit
