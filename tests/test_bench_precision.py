"""bfloat16 against float32: refused without native bfloat16, the table and sentences from a record,
and (slow) a tiny experiment trained in both precisions through the run store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from train_fixtures import tiny_experiment, tiny_image_tree

from cifarkit.bench import precision
from cifarkit.core.errors import CifarkitError
from cifarkit.core.precision import Machine, use_machine


def _record(float32: list[float], bfloat16: list[float]) -> dict:
    from cifarkit.evaluation.stats import paired_comparison

    comparison = paired_comparison(float32, bfloat16)
    return {
        "profile": "cpu",
        "seeds": len(float32),
        "recorded_at": "2026-01-01T00:00:00+00:00",
        "machine": {"cpu": "Some CPU", "cpu_isa": "avx512f", "cpu_count": 2, "cpu_bfloat16": True},
        "experiments": [
            {
                "experiment": "resnet20",
                "config_hash": {"float32": "a" * 64, "bfloat16": "b" * 64},
                "test_accuracy": {"bfloat16": bfloat16, "float32": float32},  # sorted, as kept
                "comparison": comparison.as_dict(),
                "sentence": "a sentence",
            }
        ],
    }


def test_without_native_bfloat16_the_comparison_is_refused_before_anything_trains() -> None:
    with (
        use_machine(Machine(cpu_bfloat16=False)),
        pytest.raises(CifarkitError, match="no native bfloat16"),
    ):
        precision.compare(["resnet20"], "smoke", seeds=2)
    with (
        use_machine(Machine(cpu_bfloat16=True)),
        pytest.raises(CifarkitError, match="--seeds=1 is too few"),
    ):
        precision.compare(["resnet20"], "smoke", seeds=1)


def test_table_gives_each_precisions_mean_and_the_paired_difference_with_its_interval() -> None:
    record = _record([0.60, 0.62, 0.61], [0.61, 0.64, 0.61])
    table = precision.precision_table(record)
    assert list(table.columns[2:4]) == ["float32 test accuracy (%)", "bfloat16 test accuracy (%)"]
    row = table.iloc[0]
    assert row["float32 test accuracy (%)"] == pytest.approx(61.0)
    assert row["bfloat16 test accuracy (%)"] == pytest.approx(62.0)
    assert row["bfloat16 − float32 (points)"] == pytest.approx(1.0)
    assert row["95% interval"].startswith("[-") and row["seeds"] == 3
    assert "native bfloat16" in precision.machine_text(record)


def test_the_newest_kept_comparison_is_shown_in_the_benchmark_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cifarkit.bench.results import results_tables

    monkeypatch.setenv("CIFARKIT_ARTIFACTS", str(tmp_path))
    (tmp_path / "bench").mkdir()
    old, new = _record([0.5, 0.5], [0.4, 0.45]), _record([0.6, 0.62], [0.61, 0.64])
    new["recorded_at"] = "2026-02-01T00:00:00+00:00"
    (tmp_path / "bench" / "precision-smoke.json").write_text(json.dumps(old))
    (tmp_path / "bench" / "precision-cpu.json").write_text(json.dumps(new))
    assert precision.latest_result() == new
    table, note = precision.chapter_view()
    assert table is not None and list(table["experiment"]) == ["resnet20"]
    assert note.startswith("resnet20: a sentence Measured on Some CPU")
    assert precision.chapter_view(tmp_path / "elsewhere")[0] is None
    text = results_tables()
    assert text is not None and "## bfloat16 against float32" in text and "[-4.85, +7.85]" in text


@pytest.mark.slow
def test_a_tiny_experiment_in_both_precisions_is_compared_seed_by_seed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cifarkit.cli import main

    monkeypatch.setenv("CIFARKIT_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv("CIFARKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("CIFARKIT_DATA", raising=False)
    data = tiny_image_tree(tmp_path / "data", train_per_class=8, test_per_class=4)
    yaml_path = tiny_experiment(tmp_path, data, epochs=1)
    # On a host without native bfloat16 the bfloat16 arm is emulated: slow, but the same code.
    with use_machine(Machine(cpu_bfloat16=True)):
        args = ["bench", "precision", str(yaml_path), "--profile", "none", "--seeds", "2"]
        assert main(args) == 0
    out = capsys.readouterr().out
    kept = json.loads((tmp_path / "artifacts" / "bench" / "precision-none.json").read_text())
    (row,) = kept["experiments"]
    assert row["config_hash"]["float32"] != row["config_hash"]["bfloat16"]  # two sets of runs
    assert all(len(v) == 2 for v in row["test_accuracy"].values())
    assert row["comparison"]["n"] == 2 and row["sentence"] in out
    assert len(list((tmp_path / "artifacts" / "runs").glob("tiny_baseline_cnn-*/status.json"))) == 4
