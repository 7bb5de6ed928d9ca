"""The CLI turns user errors into one line and exit code 2; it prints resolved configs."""

from __future__ import annotations

import subprocess
import sys

from cifarkit.cli import main
from cifarkit.core.config import load_config


def test_config_show_prints_hash_and_yaml(capsys):
    assert main(["config", "show", "resnet20", "--profile", "smoke"]) == 0
    out = capsys.readouterr().out
    assert load_config("resnet20", "smoke").content_hash() in out
    assert "name: resnet20" in out


def test_misspelled_key_is_one_line_exit_2_no_traceback(tmp_path):
    bad = tmp_path / "typo.yaml"
    bad.write_text("model: {name: resnet20}\ntrain: {epoch: 3}\n")
    result = subprocess.run(
        [sys.executable, "-m", "cifarkit.cli", "config", "show", str(bad)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "train.epoch: unknown key" in lines[0] and str(bad) in lines[0]
    assert "Traceback" not in result.stderr


def test_debug_flag_shows_traceback(tmp_path):
    bad = tmp_path / "typo.yaml"
    bad.write_text("model: {name: resnet20}\ntrain: {epoch: 3}\n")
    result = subprocess.run(
        [sys.executable, "-m", "cifarkit.cli", "--debug", "config", "show", str(bad)],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "Traceback" in result.stderr
