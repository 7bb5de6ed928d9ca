"""The report's answers and layout helpers: the plain sentences each chapter opens with, the
narrow tables, the provenance blocks, the figures' one size, and the values Markdown pages
quote (all on fake numbers or fake runs; no training)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from train_fixtures import tiny_image_tree, write_fake_run

from cifarkit import plots
from cifarkit.core.config import load_config
from cifarkit.core.paths import project_root
from cifarkit.data import splits_from_config
from cifarkit.evaluation import stats
from cifarkit.plots import style
from cifarkit.publish import findings, sitevalues
from cifarkit.studies import ablations, ladder, transfer
from cifarkit.studies import variants as study

BASE = [0.80, 0.81, 0.79, 0.80, 0.82]


def fake(diffs: dict[str, list[float]], base=BASE, primary: str | None = None) -> study.Comparison:
    """A comparison of "ref" with each variant, whose per-seed accuracies are ``base + diffs``."""
    base = list(base)
    per_seed = pd.DataFrame({"ref": base, **{k: np.add(base, v) for k, v in diffs.items()}})
    paired = {
        k: stats.paired_comparison(per_seed["ref"].to_dict(), per_seed[k].to_dict()) for k in diffs
    }
    return study.Comparison(
        "test_accuracy",
        "ref",
        {},
        {},
        per_seed,
        stats.summarise_table(per_seed),
        paired,
        {k: 1.5 for k in per_seed},
        {},
        primary,
    )


@pytest.mark.parametrize(
    "diffs, base, kind, words",
    [
        (
            [0.05, 0.051, 0.049, 0.05, 0.052],
            BASE,
            "claimed",
            "new is ahead of ref by 5.0 points, a clear difference",
        ),
        ([0.05, 0.051, 0.049], BASE[:3], "claimed", "every one of the 3 seeds agrees"),
        (
            [0.002, -0.001, 0.001, 0.0, 0.003],
            BASE,
            "bounded",
            "any difference is smaller than 0.3 points",
        ),
        (
            [0.03, -0.03, 0.001, 0.02, -0.01],
            BASE,
            "not distinguishable",
            "cannot be told apart with 5 seeds",
        ),
        (
            [0.03],
            BASE[:1],
            "one seed",
            "with one seed, the difference of new against ref is +3.0 points",
        ),
        ([0.03, 0.03], BASE[:2], "no spread", "no interval can be given"),
    ],
)
def test_plain_verdict_says_how_sure_in_the_verdicts_own_terms(diffs, base, kind, words):
    comparison = fake({"new": diffs}, base)
    verdict = comparison.verdict("new")
    assert verdict.kind == kind
    text = findings.plain_verdict(verdict, "ref", "new")
    assert words in text.lower() if words[0].islower() else words in text
    # Plain words: no test statistics, and "clear" only for a difference the rule calls.
    assert "p =" not in text and "p <" not in text and "t-test" not in text
    assert ("clear difference" in text) == verdict.claim


def test_plain_verdict_of_a_loss_names_the_winner_and_a_positive_interval():
    verdict = fake({"new": [-0.05, -0.051, -0.049, -0.05, -0.052]}).verdict("new")
    text = findings.plain_verdict(verdict, "ref", "new")
    assert (
        text.startswith("Ref is ahead of new by 5.0 points")
        and "interval 4.9 to 5.2 points" in text
    )


def test_descriptive_verdict_says_too_few_seeds():
    verdict = fake({"new": [0.02, 0.03, 0.025]}, BASE[:3]).verdict("new")
    assert verdict.kind == "descriptive"
    assert findings.plain_verdict(verdict, "ref", "new") == (
        "New is ahead of ref by 2.5 points in all 3 seeds, but 3 seeds are too few to call that a difference."
    )


def test_baseline_answer_gives_both_means_then_how_sure():
    text = findings.baseline_answer(fake({"big": [0.05, 0.051, 0.049, 0.05, 0.052]}), "big", "ref")
    assert text.startswith(
        "big reaches 85.4% test accuracy and the ref 80.4% (means over 5 seeds). "
    )
    assert text.endswith("a clear difference (95% interval 4.9 to 5.2 points over 5 seeds).")


def test_ablation_answer_reads_each_primary_and_separates_clear_from_unsettled():
    clear = fake(
        {"no weight decay": [-0.05, -0.051, -0.049, -0.05, -0.052]}, primary="no weight decay"
    )
    noisy = fake(
        {"plain CE": [0.03, -0.03, 0.001, 0.02, -0.01], "focal": [0.08, 0.081, 0.079, 0.08, 0.08]},
        primary="plain CE",
    )
    text = findings.ablation_answer({"regularisation": clear, "loss": noisy})
    assert text.startswith(
        "With 5 seeds per variant, 1 of the 2 changes clearly matters: no weight decay "
        "instead of ref costs 5.0 points (95% interval −5.2 to −4.9)."
    )
    assert (
        "The others: plain CE instead of ref, +0.2 points (within the seed-to-seed noise)." in text
    )
    assert "focal" not in text  # an exploratory arm, however large, is not the answer
    none = findings.ablation_answer({"loss": noisy})
    assert none.startswith("With 5 seeds per variant, none of the changes can be called: plain CE")


def test_summary_table_merges_each_interval_with_its_estimate_and_details_keep_the_rest():
    comparison = fake({"big": [0.05, 0.051, 0.049, 0.05, 0.052]})
    table = comparison.summary_table()
    assert list(table.columns) == [
        "role",
        "test accuracy, % [95% CI]",
        "Δ vs its reference, points [95% CI]",
    ]
    assert table.loc["ref", "Δ vs its reference, points [95% CI]"] == "reference"
    assert re.fullmatch(
        r"85\.4 \[\d+\.\d, \d+\.\d\]", table.loc["big", "test accuracy, % [95% CI]"]
    )
    assert table.loc["big", "Δ vs its reference, points [95% CI]"] == "+5.0 [+4.9, +5.2]"
    details = comparison.details_table()
    assert list(details.columns) == ["seeds", "p (paired t)", "p (Holm)", "train min/run"]
    one = fake({"new": [0.03]}, BASE[:1]).summary_table()
    assert one.loc["new", "Δ vs its reference, points [95% CI]"] == "+3.0 (1 seed)"


def test_ablation_details_table_stacks_the_groups():
    table = ablations.details_table(
        {
            "loss": fake({"plain CE": [0.01, 0.0, 0.02, 0.01, 0.0]}),
            "schedule": fake({"constant LR": [0.0, -0.01, 0.0, 0.01, 0.0]}),
        }
    )
    assert list(table.index.names) == ["group", "variant"] and len(table) == 4
    assert ablations.group_text(None) == "This group was not run (groups parameter)."


@pytest.fixture
def tiny_profile(tmp_path, monkeypatch):
    data = tiny_image_tree(tmp_path / "data", train_per_class=8, test_per_class=6)
    monkeypatch.setenv("CIFARKIT_DATA", str(data))
    path = tmp_path / "tiny.yaml"
    path.write_text("seeds: 2\ndata: {val_per_class: 2}\ntrain: {epochs: 4}\n")
    return str(path)


def test_provenance_lists_config_data_and_run_folders_and_captions_need_not(tiny_profile):
    configs = {
        "baseline CNN": load_config("baseline_cnn", tiny_profile),
        "ResNet20": load_config("resnet20", tiny_profile),
    }
    splits = splits_from_config(configs["ResNet20"].data)
    for cfg in configs.values():
        for seed in range(2):
            write_fake_run(cfg, splits, seed)
    comparison = study.compare(
        configs, 2, reference="baseline CNN", primary="ResNet20", train=False
    )
    lines = comparison.provenance().splitlines()
    assert len(lines) == 2 and lines[1].startswith("- **ResNet20**: experiment `resnet20`")
    assert f"config `{configs['ResNet20'].content_hash()[:12]}`" in lines[1]
    assert f"data `{splits.source_hash[:12]}`" in lines[1]
    for run in comparison.runs["ResNet20"].values():
        assert f"`{run.path.name}`" in lines[1]
    fig = comparison.figure()
    assert fig.get_size_inches()[0] == pytest.approx(style.FIGURE_WIDTH)


def test_transfer_grid_without_training_names_the_missing_run(tiny_profile):
    from cifarkit.core.errors import CifarkitError

    with pytest.raises(CifarkitError, match="make it with: cifarkit train transfer_source"):
        transfer.run_grid(transfer.study_plan("smoke"), train=False)


def test_ladder_answer_and_texts_when_only_some_steps_have_runs():
    steps = [label for label, _ in ladder.ablation_overrides()]
    per_seed = pd.DataFrame({steps[0]: [0.5, 0.52], steps[1]: [0.55, 0.56]})
    comparison = study.Comparison(
        "test_accuracy",
        steps[0],
        {},
        {},
        per_seed,
        stats.summarise_table(per_seed),
        {},
        {steps[0]: 1.0, steps[1]: 3.0},
    )
    result = ladder.Ladder(steps, comparison, {s: "cifarkit train airbench" for s in steps[2:]})
    assert result.status() == f"2 of {len(steps)} steps have runs."
    text = findings.ladder_answer(result)
    assert text.startswith(
        f"At this build's budget 2 of the {len(steps)} steps of the ladder have runs"
    )
    assert "about 2.0 minutes" in text
    assert "not compared" in result.primary_sentence()
    table = result.summary_table()
    assert table.loc[steps[2], "test accuracy, % [95% CI]"] == "not run"
    assert table.loc[steps[1], "Δ vs previous step, points [95% CI]"].startswith("+4.5 [")
    assert findings.ladder_answer(ladder.Ladder(steps, None, {})).startswith("None of the")


def test_every_report_figure_is_the_text_width():
    per_seed = pd.DataFrame({"baseline CNN": [0.6, 0.62, 0.61], "ResNet20": [0.7, 0.69, 0.72]})
    figures = [
        plots.seed_comparison(per_seed, stats.summarise_table(per_seed)),
        plots.comparison_forest(
            pd.DataFrame(
                [
                    {
                        "group": "loss",
                        "variant": "plain CE",
                        "mean_diff": 0.01,
                        "low": -0.01,
                        "high": 0.03,
                        "per_seed": [0.0, 0.02],
                        "role": "primary",
                        "model": "baseline_cnn",
                    }
                ]
            )
        ),
        plots.sample_grid(np.zeros((2, 3, 32, 32, 3), np.uint8), ["a", "b"]),
        plots.channel_histograms({"train": np.ones((3, 256))}),
    ]
    for fig in figures:
        assert fig.get_size_inches()[0] == pytest.approx(style.FIGURE_WIDTH)
        assert plots.to_png_bytes(fig).startswith(b"\x89PNG")


def test_model_families_keep_one_colour():
    assert (
        style.model_family("ResNet20, no augmentation")
        == style.model_family("resnet56")
        == "ResNet"
    )
    assert (
        style.model_colour("baseline CNN")
        == style.model_colour("baseline_cnn")
        != style.model_colour("ResNet20")
    )
    assert style.model_colour("constant LR") == (0.45, 0.45, 0.45)  # no family: grey


def test_markdown_pages_quote_only_values_the_site_fills_in():
    values = sitevalues.substitutions()
    assert values["min_seeds"] == str(stats.MIN_SEEDS_FOR_CLAIM) and values["confidence"] == "95%"
    page = (project_root() / "book" / "how_to_read.md").read_text()
    used = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", page))
    assert used and used <= set(values), used - set(values)
    assert not re.search(r"\b\d+ seeds\b", page)  # thresholds come from the code, never typed
