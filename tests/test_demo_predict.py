"""The demo ends with a live prediction on test images, and ``--images`` adds the user's own."""

from __future__ import annotations

import pytest
from PIL import Image
from train_fixtures import tiny_image_tree, write_model_run

from cifarkit.cli import main
from cifarkit.core.config import load_config
from cifarkit.data import splits_from_config

pytestmark = pytest.mark.slow


def test_demo_predicts_live_and_classifies_the_users_images(tmp_path, monkeypatch, capsys):
    data = tiny_image_tree(tmp_path / "data", train_per_class=6, test_per_class=4)
    monkeypatch.setenv("CIFARKIT_DATA", str(data))
    profile = tmp_path / "tiny.yaml"
    profile.write_text("seeds: 1\ndata: {val_per_class: 2}\ntrain: {epochs: 4}\n")
    cfg = load_config("resnet20", str(profile))
    splits = splits_from_config(cfg.data)
    write_model_run(cfg, splits, seed=0)
    mine = tmp_path / "mine.png"
    Image.fromarray(splits.x_test[0]).resize((200, 100)).save(mine)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not really a jpeg")

    code = main(
        [
            "-q",
            "demo",
            "--profile",
            str(profile),
            "--section",
            "data",
            "--images",
            str(mine),
            str(broken),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "[data] done" in out and "[predict] done" in out  # --images adds the section
    assert "live prediction by resnet20-" in out and out.count("  test image ") == 6
    assert f"  {mine}: " in out and "far from square" in out
    assert f"  skipped: {broken}: " in out
    assert "demo: 2 of 2 sections" in out
