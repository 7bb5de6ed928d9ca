"""``cifarkit bench inference``: Keras, SavedModel and ONNX timed side by side, kept as JSON."""

from __future__ import annotations

import importlib.util
import json

import pytest
from train_fixtures import tiny_experiment, tiny_image_tree, write_model_run

from cifarkit.cli import main
from cifarkit.core.config import load_config
from cifarkit.core.paths import artifacts_dir
from cifarkit.data import splits_from_config

pytestmark = pytest.mark.slow


def test_bench_inference_times_every_backend_and_keeps_the_machine(tmp_path, monkeypatch, capsys):
    data = tiny_image_tree(tmp_path / "data", train_per_class=6, test_per_class=4)
    monkeypatch.setenv("CIFARKIT_DATA", str(data))
    cfg = load_config(tiny_experiment(tmp_path, data, epochs=1), None)
    run, _ = write_model_run(cfg, splits_from_config(cfg.data))
    code = main(
        [
            "-q",
            "bench",
            "inference",
            str(run.path),
            "--repeats",
            "2",
            "--calls",
            "5",
            "--big-batches",
            "1",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    kept = json.loads((artifacts_dir() / "bench" / f"inference-{run.path.name}.json").read_text())
    has_onnx = all(importlib.util.find_spec(m) for m in ("tf2onnx", "onnxruntime"))
    backends = [r["backend"] for r in kept["results"]]
    assert backends == (["keras", "savedmodel", "onnx"] if has_onnx else ["keras", "savedmodel"])
    for row in kept["results"]:
        for key in ("batch1_img_s", "batch256_img_s", "p50_ms", "p99_ms"):
            spread = row[key]
            assert 0 < spread["low"] <= spread["median"] <= spread["high"]
    assert kept["results"][0]["parity_max_abs_logit_diff"] is None
    assert all(r["parity_max_abs_logit_diff"] <= 1e-4 for r in kept["results"][1:])
    assert kept["environment"]["cpu"] and kept["repeats"] == 2
    assert "batch 1 img/s" in out and "savedmodel" in out and "written:" in out
