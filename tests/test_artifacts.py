"""Backup and recovery of artifacts/: manifest, verification, refusal of tampered or unsafe tars."""

from __future__ import annotations

import hashlib
import io
import tarfile

import pytest

from cifarkit.cli import main
from cifarkit.core.errors import CifarkitError
from cifarkit.runs.backup import MANIFEST, backup, recover


@pytest.fixture
def artifacts(tmp_path, monkeypatch):
    root = tmp_path / "artifacts"
    monkeypatch.setenv("CIFARKIT_ARTIFACTS", str(root))
    monkeypatch.setenv("CIFARKIT_CACHE", str(root / "cache"))
    (root / "runs" / "r-1").mkdir(parents=True)
    (root / "runs" / "r-1" / "metrics.json").write_text('{"test_accuracy": 0.9}')
    (root / "runs" / "r-1.lock").write_text("")
    (root / "cache" / "data").mkdir(parents=True)
    (root / "cache" / "data" / "big.npz").write_bytes(b"x" * 100)
    (root / "mlflow.db").write_bytes(b"sqlite")
    return root


def test_backup_then_recover_round_trip(artifacts, tmp_path):
    archive, count = backup(tmp_path / "b.tar")
    assert count == 2  # metrics.json + mlflow.db; lock and data cache left out
    with tarfile.open(archive) as tar:
        assert tar.getnames()[0] == MANIFEST
    (artifacts / "runs" / "r-1" / "metrics.json").write_text("changed")
    root, restored, previous = recover(archive)
    assert restored == 2 and root == artifacts
    assert (root / "runs" / "r-1" / "metrics.json").read_text() == '{"test_accuracy": 0.9}'
    assert (previous / "runs" / "r-1" / "metrics.json").read_text() == "changed"


def _tamper(src, dst, name, payload):
    with tarfile.open(src) as tar_in, tarfile.open(dst, "w") as tar_out:
        for member in tar_in:
            data = tar_in.extractfile(member).read()
            if member.name == name:
                data = payload
                member.size = len(data)
            tar_out.addfile(member, io.BytesIO(data))


def test_corrupt_file_is_refused_and_artifacts_untouched(artifacts, tmp_path):
    archive, _ = backup(tmp_path / "b.tar")
    bad = tmp_path / "bad.tar"
    _tamper(archive, bad, "runs/r-1/metrics.json", b'{"test_accuracy": 1.0}')
    before = {p: p.read_bytes() for p in artifacts.rglob("*") if p.is_file()}
    with pytest.raises(CifarkitError, match="does not match its manifest"):
        recover(bad)
    assert {p: p.read_bytes() for p in artifacts.rglob("*") if p.is_file()} == before
    assert not list(tmp_path.glob(".artifacts.recover-*"))


def test_path_traversal_and_truncation_refused(artifacts, tmp_path):
    evil = tmp_path / "evil.tar"
    payload = b"pwned"
    manifest = f"{hashlib.sha256(payload).hexdigest()}  ../evil\n".encode()
    with tarfile.open(evil, "w") as tar:
        for name, data in ((MANIFEST, manifest), ("../evil", payload)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(CifarkitError, match="unsafe path"):
        recover(evil)
    assert not (tmp_path / "evil").exists()
    archive, _ = backup(tmp_path / "b.tar")
    truncated = tmp_path / "cut.tar"
    truncated.write_bytes(archive.read_bytes()[:700])
    with pytest.raises(CifarkitError):
        recover(truncated)


def test_cli_errors_are_one_line(artifacts, tmp_path, capsys):
    assert main(["artifacts", "recover", str(tmp_path / "missing.tar")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["artifacts", "backup", str(artifacts / "inside.tar")]) == 2
