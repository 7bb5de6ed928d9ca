"""`cifarkit report` on fake complete runs: the printed table against an independent computation."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from scipy import stats as sps
from train_fixtures import tiny_experiment, tiny_image_tree, write_fake_run

from cifarkit.cli import main
from cifarkit.core.config import load_config
from cifarkit.data import splits_from_config
from cifarkit.evaluation import report as report_mod
from cifarkit.plots import report as plots_report


@pytest.fixture
def experiment(tmp_path, monkeypatch):
    monkeypatch.delenv("CIFARKIT_DATA", raising=False)
    data = tiny_image_tree(tmp_path / "data", train_per_class=8, test_per_class=6)
    path = tiny_experiment(tmp_path, data, epochs=3)
    cfg = load_config(path, "none")
    return path, cfg, splits_from_config(cfg.data)


def _independent(arrays_by_seed):
    """Accuracy, macro-F1, NLL and 15-bin ECE by plain numpy, then mean and t interval."""
    per_metric = {"accuracy": [], "macro_f1": [], "nll": [], "ece": []}
    for arrays in arrays_by_seed:
        z = arrays["logits"].astype(np.float64)
        y = arrays["labels"]
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        pred = p.argmax(1)
        per_metric["accuracy"].append(np.mean(pred == y))
        f1s = []
        for k in range(10):
            tp = np.sum((pred == k) & (y == k))
            prec = tp / max(np.sum(pred == k), 1)
            rec = tp / max(np.sum(y == k), 1)
            f1s.append(0.0 if prec + rec == 0 else 2 * prec * rec / (prec + rec))
        per_metric["macro_f1"].append(np.mean(f1s))
        per_metric["nll"].append(-np.mean(np.log(p[np.arange(len(y)), y])))
        conf = p.max(1)
        ece = 0.0
        for b in range(15):
            inside = (conf > b / 15) & (conf <= (b + 1) / 15) if b else (conf <= 1 / 15)
            if inside.any():
                ece += inside.mean() * abs(conf[inside].mean() - np.mean(pred[inside] == y[inside]))
        per_metric["ece"].append(ece)
    out = {}
    for name, values in per_metric.items():
        v = np.array(values)
        half = sps.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
        out[name] = (v.mean(), half, v.mean() - half, v.mean() + half, len(v))
    return out


def _parse(out, label):
    line = next(line for line in out.splitlines() if line.startswith(label))
    numbers = [float(x) for x in re.findall(r"-?\d+\.\d+|\b\d+\b", line[len(label) :])]
    return numbers  # mean, half-width, low, high, std, n


def test_report_table_matches_an_independent_computation(experiment, tmp_path, capsys):
    path, cfg, splits = experiment
    arrays = [write_fake_run(cfg, splits, seed) for seed in range(3)]
    out_dir = tmp_path / "out"
    assert main(["report", str(path), "--profile", "none", "--out", str(out_dir)]) == 0
    out = capsys.readouterr().out
    expected = _independent(arrays)
    for label, key, scale, digits in (
        ("accuracy (%)", "accuracy", 100, 2),
        ("macro-F1 (%)", "macro_f1", 100, 2),
        ("NLL (nats)", "nll", 1, 4),
        ("ECE (%), 15 bins", "ece", 100, 2),
    ):
        mean, half, low, high, _std, n = _parse(out, label)
        e_mean, e_half, e_low, e_high, e_n = expected[key]
        tol = 0.6 * 10**-digits
        assert mean == pytest.approx(e_mean * scale, abs=tol), label
        assert half == pytest.approx(e_half * scale, abs=tol), label
        assert (low, high) == pytest.approx((e_low * scale, e_high * scale), abs=tol), label
        assert n == e_n == 3
    assert "3 of 3 requested seeds" in out and "missing" not in out
    # Beside the interval over seeds: the test-set sampling interval of one model (Wilson).
    n_test = len(arrays[0]["labels"])
    low, high = sps.binomtest(round(expected["accuracy"][0] * n_test), n_test).proportion_ci(
        method="wilson"
    )
    assert (
        f"test-set sampling of the accuracy: Wilson 95% CI [{low * 100:.2f}, {high * 100:.2f}] over the "
        f"{n_test:,} test images of one model"
    ) in out
    assert "ECE after temp. scaling (%)" in out and "top-5 accuracy (%)" in out

    saved = json.loads((out_dir / "report.json").read_text())
    assert saved["summary"]["accuracy"]["mean"] == pytest.approx(expected["accuracy"][0])
    assert saved["summary"]["accuracy"]["over"] == "seeds"
    assert saved["accuracy_test_sampling"]["test_size"] == n_test
    assert saved["accuracy_test_sampling"]["low"] == pytest.approx(low)
    assert saved["seeds"] == [0, 1, 2]
    for name in saved["figures"]:
        assert (out_dir / name).read_bytes()[:4] == b"\x89PNG"
    assert {
        "curves.png",
        "per_class_accuracy.png",
        "reliability.png",
        "confusion.png",
        "mistakes_overall.png",
        "mistakes_per_class.png",
    } <= set(saved["figures"])
    # Temperature scaling was fitted on validation logits and helps these over-confident runs.
    assert saved["summary"]["nll_ts"]["mean"] < saved["summary"]["nll"]["mean"]
    assert str(out_dir) in out


def test_missing_seeds_are_named_with_the_command_and_the_rest_reported(
    experiment, tmp_path, capsys, monkeypatch
):
    path, cfg, splits = experiment
    write_fake_run(cfg, splits, 0)
    write_fake_run(cfg, splits, 2, with_val=False)  # an older run: validation logits not stored
    calls = []

    def fake_predict(run):
        calls.append(run.path.name)
        return lambda images: np.random.default_rng(0).normal(0, 1, (len(images), 10))

    monkeypatch.setattr(report_mod, "_model_predict", fake_predict)
    monkeypatch.setattr(plots_report, "report_figures", lambda report: {})  # figures: tested above
    assert (
        main(
            ["report", str(path), "--profile", "none", "--seeds", "3", "--out", str(tmp_path / "o")]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "2 of 3 requested seeds complete" in out
    assert "seed 1 (missing)" in out
    assert f"cifarkit train {path} --profile none --seed 1" in out
    assert _parse(out, "accuracy (%)")[-1] == 2
    assert len(calls) == 1 and "recomputed from model.keras" in out


def test_one_seed_reports_without_interval(experiment, tmp_path, capsys):
    path, cfg, splits = experiment
    arrays = write_fake_run(cfg, splits, 0)
    assert (
        main(
            ["report", str(path), "--profile", "none", "--seeds", "1", "--out", str(tmp_path / "o")]
        )
        == 0
    )
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("accuracy (%)"))
    assert "no CI: n=1" in line
    assert f"{np.mean(arrays['logits'].argmax(1) == arrays['labels']) * 100:.2f}" in line


def test_no_runs_is_a_one_line_error_with_the_command(experiment, capsys):
    path, _, _ = experiment
    assert main(["report", str(path), "--profile", "none", "--seeds", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"cifarkit train {path} --profile none --seed 0 1" in err


@pytest.mark.slow
def test_recomputation_from_a_real_saved_model_matches_its_stored_logits(experiment):
    """No fake model: a real saved model.keras is loaded and run for the missing validation
    logits and for TTA; its plain accuracy must equal the one from the stored test logits."""
    from train_fixtures import write_model_run

    from cifarkit.evaluation.report import build_report
    from cifarkit.models import predict_logits

    path, cfg, splits = experiment
    run, model = write_model_run(cfg, splits, seed=0)
    with np.load(run.predictions_path) as stored:
        kept = {
            k: stored[k] for k in ("logits", "labels")
        }  # drop the validation logits (an older run)
    np.savez(run.predictions_path, **kept)

    report = build_report(cfg, seeds=[0], tta=True, tta_shift=1)
    result = report.results[0]
    assert any("recomputed from model.keras" in note for note in result.notes)
    assert not any("model re-run gives plain accuracy" in note for note in result.notes)
    assert result.evaluation.tta.plain_accuracy == pytest.approx(
        result.evaluation.accuracy, abs=1e-12
    )
    val = predict_logits(model, splits.x_val)
    # The temperature was fitted on the recomputed validation logits: refit and compare.
    from cifarkit.evaluation import metrics as ev

    refit = ev.evaluate_logits(
        kept["logits"], kept["labels"], splits.class_names, val=(val, splits.y_val)
    )
    assert result.evaluation.calibration.temperature == pytest.approx(refit.calibration.temperature)


def test_the_readme_costs_call_a_build_cold_only_when_it_trained_the_plan(monkeypatch, tmp_path):
    from cifarkit.core.atomic import write_json
    from cifarkit.publish import readme

    def build(seconds, executed, cached, trained_minutes, day):
        return {
            "finished_at": f"2026-12-0{day}T10:00:00+00:00",
            "chapter": None,
            "seconds": seconds,
            "executed": executed,
            "cached": cached,
            "plan_minutes": {"actual": trained_minutes, "estimated": trained_minutes},
            "machine": {"cpu": "AMD EPYC", "cpu_isa": "avx512f", "cpu_count": 2},
        }

    monkeypatch.setenv("CIFARKIT_ARTIFACTS", str(tmp_path))
    history = [build(3600, 8, 0, 55.0, 1), build(12, 0, 8, 0, 2), build(230, 8, 0, 0, 3)]
    write_json(readme.builds_file("cpu"), history)
    block = readme.costs_block()
    assert "| cold (nothing cached) | 60.0 min |" in block  # not the later re-execution's 3.8 min
    assert "| warm (everything cached) | 0.2 min |" in block and "3.8 min" not in block
