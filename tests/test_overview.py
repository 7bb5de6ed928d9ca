"""The introduction's answers from a build's run store: how well, how reliably, where trained."""

from __future__ import annotations

import pandas as pd

from cifarkit.plots.overview import accuracy_vs_minutes
from cifarkit.publish import overview


def _runs() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "run": "a",
                "family": "ResNet20",
                "test_accuracy": 0.70,
                "train_minutes": 2.0,
                "precision": "bfloat16",
                "cpu": "AMD EPYC",
                "cpu_isa": "avx512f",
                "cpu_bfloat16": True,
                "device": "cpu",
                "recorded_at": "2026-12-07T10:00:00+00:00",
            },
            {
                "run": "b",
                "family": "baseline CNN",
                "test_accuracy": 0.66,
                "train_minutes": 0.5,
                "precision": "bfloat16",
                "cpu": "AMD EPYC",
                "cpu_isa": "avx512f",
                "cpu_bfloat16": True,
                "device": "cpu",
                "recorded_at": "2026-12-08T09:00:00+00:00",
            },
        ]
    )


def test_how_well_names_the_best_run_and_the_most_accurate_per_minute():
    text = overview.how_well(_runs())
    assert text.startswith(
        "The best test accuracy this build measured is 70.0% (ResNet20, 2.0 training minutes"
    )
    assert "most accuracy per minute came from a baseline CNN run: 66.0% in 0.5 minutes" in text
    assert "2 runs" in text
    assert overview.how_well(_runs().iloc[:0]) == "No run of this build is stored yet."


def test_how_well_leaves_out_runs_on_fewer_classes_and_the_figure_draws_them_hollow():
    runs = _runs().assign(classes=10)
    subtask = runs.iloc[[0]].assign(run="c", test_accuracy=0.77, train_minutes=0.1, classes=5)
    both = pd.concat([runs, subtask], ignore_index=True)
    text = overview.how_well(both)
    assert text.startswith("The best test accuracy this build measured is 70.0% (ResNet20")
    assert (
        "1 run on tasks of fewer classes, from the transfer chapter, is left out" in text
        and "77.0%" not in text
    )
    assert "Every one of the build's 3 runs is in the figure" in text
    ax = accuracy_vs_minutes(both).axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "ResNet20, 5-class task (1)" in labels and len(labels) == 3
    hollow = [
        c for c in ax.collections if len(c.get_facecolors()) == 0 or c.get_facecolors()[0][3] == 0
    ]
    assert len(hollow) == 1


def test_how_reliably_gives_the_seed_range_and_spread():
    text = overview.how_reliably(pd.Series([0.69, 0.70, 0.71]), "ResNet20")
    assert text == (
        "Over 3 seeds that differ in nothing else, ResNet20's test accuracy ranges from 69.0% to "
        "71.0% (standard deviation 1.00 points)."
    )
    assert "fewer than two seeds" in overview.how_reliably(pd.Series([0.7]), "ResNet20")


def test_where_trained_gives_the_dates_cpu_and_precision():
    text = overview.where_trained(_runs())
    assert text == (
        "The 2 runs of this report were trained between 2026-12-07 and 2026-12-08: 2 on AMD EPYC "
        "(avx512f, native bfloat16) (2 in bfloat16)."
    )


def test_the_figure_has_a_dot_per_run_and_a_legend_per_family():
    fig = accuracy_vs_minutes(_runs())
    ax = fig.axes[0]
    assert sum(len(c.get_offsets()) for c in ax.collections) == 2
    assert ax.get_xscale() == "log" and len(ax.get_legend().get_texts()) == 2


def test_the_headline_is_set_beside_its_published_full_budget_figure():
    text = overview.beside_published(pd.Series([0.69, 0.71]), "ResNet20", 2)
    assert text.startswith(
        "He et al. (2016) report 91.25% for ResNet20 after about 182 epochs on the official "
        "batches; this build trains ResNet20 for 2 epochs and reaches 70.0% on average"
    )
    assert (
        "JPEG copy" in text and overview.beside_published(pd.Series([0.7]), "baseline CNN", 2) == ""
    )
