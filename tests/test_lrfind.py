"""LR finder: the suggestion rule on known curves, and a real (tiny, cached) sweep via the CLI."""

from __future__ import annotations

import numpy as np
import pytest
from train_fixtures import tiny_experiment, tiny_image_tree

from cifarkit.cli import main
from cifarkit.plots import lr_finder_figure, to_png_bytes
from cifarkit.training.lrfind import LRFindResult, _smooth, suggest


def test_suggest_picks_the_steepest_descent_before_the_minimum():
    lrs = np.geomspace(1e-4, 10, 100)
    # Loss falls fastest around lr = 1e-2 (a logistic in log-lr), bottoms out at ~1, then blows up.
    log_lr = np.log10(lrs)
    loss = 2.3 - 2.0 / (1 + np.exp(-(log_lr + 2) * 3)) + np.where(log_lr > 0, 5 * log_lr**2, 0)
    steepest, min_over_10 = suggest(lrs, loss)
    assert 5e-3 < steepest < 2e-2
    assert min_over_10 == pytest.approx(lrs[np.argmin(loss)] / 10)


def test_smoothing_is_bias_corrected():
    assert _smooth(np.array([2.0, 2.0, 2.0])) == pytest.approx([2.0, 2.0, 2.0])


def test_lr_finder_figure_renders():
    lrs = np.geomspace(1e-4, 1, 20).tolist()
    losses = list(np.linspace(2.3, 1.0, 20))
    result = LRFindResult(lrs, losses, losses, 1e-2, 1e-2, False)
    assert to_png_bytes(lr_finder_figure(result))[:4] == b"\x89PNG"


@pytest.mark.slow
def test_lr_find_cli_sweeps_then_caches(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CIFARKIT_DATA", raising=False)
    data = tiny_image_tree(tmp_path / "data")
    config = tiny_experiment(tmp_path, data)
    args = ["lr-find", str(config), "--profile", "none", "--steps", "20", "--max-lr", "1"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "suggested LR" in first and "plot:" in first
    plot = first.split("plot: ")[1].split()[0]
    assert open(plot, "rb").read(4) == b"\x89PNG"
    monkeypatch.setattr(
        "cifarkit.training.lrfind._sweep", lambda *a, **k: pytest.fail("swept twice")
    )
    assert main(args) == 0
    assert capsys.readouterr().out == first
