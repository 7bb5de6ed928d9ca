"""Studies, ablations, findings, the reproducibility appendix and the demo, on fake complete runs (no training)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from train_fixtures import tiny_image_tree, write_fake_run

from cifarkit import plots
from cifarkit.cli import main
from cifarkit.core.config import dotted_overrides, flatten, load_config, overrides_between
from cifarkit.core.errors import CifarkitError
from cifarkit.data import splits_from_config
from cifarkit.publish import findings, reproducibility
from cifarkit.studies import ablations
from cifarkit.studies import variants as study


@pytest.fixture
def tiny_profile(tmp_path, monkeypatch):
    """A profile over a tiny image tree, so the repo's experiments resolve on fake data."""
    data = tiny_image_tree(tmp_path / "data", train_per_class=8, test_per_class=6)
    monkeypatch.setenv("CIFARKIT_DATA", str(data))
    path = tmp_path / "tiny.yaml"
    path.write_text("seeds: 3\ndata: {val_per_class: 2}\ntrain: {epochs: 4}\n")
    return str(path)


def test_overrides_between_round_trips(tiny_profile):
    base = load_config("resnet20", tiny_profile)
    variant = load_config(
        "resnet20",
        tiny_profile,
        overrides={
            "train.augment.enabled": False,
            "train.schedule.name": "constant",
            "train.schedule.warmup_epochs": 0,
        },
    )
    diff = overrides_between(base, variant)
    assert diff == {
        "train.augment.enabled": False,
        "train.schedule.name": "constant",
        "train.schedule.warmup_epochs": 0.0,
    }
    assert (
        load_config("resnet20", tiny_profile, overrides=diff).content_hash()
        == variant.content_hash()
    )


def test_flatten_gives_dotted_keys_that_dotted_overrides_nests_back():
    nested = {"train": {"epochs": 3, "schedule": {"name": "cosine"}, "ema": {}}, "seed": 1}
    flat = flatten(nested)
    assert flat == {"train.epochs": 3, "train.schedule.name": "cosine", "seed": 1}
    assert dotted_overrides(flat) == {
        "train": {"epochs": 3, "schedule": {"name": "cosine"}},
        "seed": 1,
    }


def test_compare_matches_an_independent_computation(tiny_profile):
    cnn, r20 = load_config("baseline_cnn", tiny_profile), load_config("resnet20", tiny_profile)
    splits = splits_from_config(cnn.data)
    acc = {}
    for label, cfg in (("cnn", cnn), ("r20", r20)):
        acc[label] = [
            float(np.mean(write_fake_run(cfg, splits, s)["logits"].argmax(1) == splits.y_test))
            for s in range(3)
        ]
    # Fake runs of both configs score the same per seed (a tie, which has no interval); shift
    # ResNet20's stored accuracies so the differences vary between seeds.
    import json

    from cifarkit.data.identity import data_hash_for
    from cifarkit.runs import locate

    for s, shift in zip(range(3), (0.01, 0.03, 0.02), strict=True):
        run = locate(r20, s, data_hash_for(r20.data))
        metrics = json.loads(run.metrics_path.read_text())
        acc["r20"][s] = metrics["test_accuracy"] = metrics["test_accuracy"] + shift
        run.metrics_path.write_text(json.dumps(metrics))
    comparison = study.compare({"cnn": cnn, "r20": r20}, 3, reference="cnn", train=False)
    assert comparison.summary.loc["r20", "mean"] == pytest.approx(np.mean(acc["r20"]))
    diff = np.subtract(acc["r20"], acc["cnn"])
    paired = comparison.paired["r20"]
    assert paired.mean_diff == pytest.approx(diff.mean())
    half = sps.t.ppf(0.975, 2) * diff.std(ddof=1) / np.sqrt(3)
    assert (paired.low, paired.high) == pytest.approx((diff.mean() - half, diff.mean() + half))
    table = comparison.table()
    assert list(table.index) == ["cnn", "r20"] and table.loc["cnn", "Δ vs cnn"] == "reference"
    assert comparison.train_minutes["cnn"] == pytest.approx((60 + 61 + 62) / 3 / 60)
    caption = comparison.caption()
    for run in comparison.runs["r20"].values():
        assert run.path.name in caption
    assert "seeds 0–2" in caption and r20.content_hash()[:12] in caption


def test_missing_run_names_the_command_with_overrides(tiny_profile):
    variant = load_config("resnet20", tiny_profile, overrides={"train.augment.enabled": False})
    with pytest.raises(CifarkitError) as err:
        study.gather_runs({"no aug": variant}, [4], train=False)
    message = str(err.value)
    assert "missing" in message and "--set train.augment.enabled=false --seed 4" in message
    assert "\n" not in message


def test_compare_rejects_an_unknown_reference(tiny_profile):
    with pytest.raises(CifarkitError, match="reference 'x' is not one of the variants"):
        study.compare({"a": load_config("resnet20", tiny_profile)}, 1, reference="x", train=False)


@pytest.mark.parametrize("profile", ["smoke", "cpu", "full"])
def test_every_ablation_variant_is_a_valid_distinct_config(profile, monkeypatch):
    monkeypatch.delenv("CIFARKIT_DATA", raising=False)
    plan = ablations.default_plan(profile)
    seen = set()
    for group in plan.groups:
        variants, reference = ablations.group_variants(group, plan.base, plan.architectures)
        configs = {label: v.config(profile, plan.common) for label, v in variants.items()}
        hashes = {c.content_hash() for c in configs.values()}
        assert len(hashes) == len(configs), f"{group}: two variants resolve to the same run"
        ref = configs[reference]
        assert (
            ref.content_hash()
            == load_config(ref.name, profile, overrides=dict(plan.common)).content_hash()
        )
        seen |= hashes
    assert plan.describe().startswith(f"Profile {profile}:")


def test_step_decay_milestones_follow_the_epochs(tiny_profile):
    for epochs, milestones in ((3, (2,)), (10, (5, 8)), (30, (15, 22))):
        cfg = study.Variant("s", "resnet20", ablations._step_decay).config(
            tiny_profile, {"train.epochs": epochs}
        )
        assert cfg.train.schedule.name == "step" and cfg.train.schedule.step_epochs == milestones


def test_plan_changes_and_errors():
    plan = ablations.default_plan("smoke", seeds=5, groups=["loss"])
    assert plan.seeds == 5 and plan.groups == ("loss",)
    assert (
        ablations.default_plan("smoke", seeds=None).seeds == ablations.default_plan("smoke").seeds
    )
    with pytest.raises(CifarkitError, match="unknown ablation group"):
        ablations.default_plan("smoke", groups=["lossy"])


def _fake_comparison(diffs: dict[str, list[float]]) -> study.Comparison:
    base = [0.80, 0.81, 0.79]
    per_seed = pd.DataFrame({"ref": base, **{k: np.add(base, v) for k, v in diffs.items()}})
    from cifarkit.evaluation import stats

    return study.Comparison(
        "test_accuracy",
        "ref",
        {},
        {},
        per_seed,
        stats.summarise_table(per_seed),
        {
            k: stats.paired_comparison(per_seed["ref"].to_dict(), per_seed[k].to_dict())
            for k in diffs
        },
        {k: 1.0 for k in per_seed},
    )


def test_findings_claim_only_what_the_intervals_support():
    clear = _fake_comparison({"big": [0.05, 0.051, 0.049]})
    noisy = _fake_comparison({"noise": [0.03, -0.03, 0.001]})
    text = findings.primary_ablation_effects({"g": clear, "h": noisy})
    # Each group's primary comparison (here its only contrast) is read, not the largest effect.
    assert (
        "G (primary: big against ref): Big beats ref by 5.0 points" in text and "decisive" in text
    )
    assert (
        "H (primary: noise against ref): Ref and noise are not distinguishable at 95% with 3 seeds"
        in text
    )
    assert "ranges from 79.0% to 81.0%" in findings.seed_spread(clear, "ref")
    assert findings.headline(clear, "big", "ref").startswith("big reaches 85.0% (95% CI [")


def test_findings_read_the_declared_primary_not_the_largest_effect():
    # "large" is the largest effect, but "small" is the declared primary comparison.
    comparison = _fake_comparison({"small": [0.01, -0.01, 0.005], "large": [0.08, 0.081, 0.079]})
    comparison.primary = "small"
    text = findings.primary_ablation_effects({"g": comparison})
    assert "primary: small against ref" in text and "large" not in text.split("The other")[0]
    assert "The other 1 contrasts are exploratory" in text
    assert comparison.role("large") == "exploratory" and comparison.role("ref") == "reference"
    assert comparison.sentence("large").startswith("Exploratory: ")
    assert comparison.sentences()[0].startswith("Primary comparison: ")
    table = comparison.table()
    assert (
        table.loc["small", "p (Holm)"] == "primary: not adjusted"
        and table.loc["small", "role"] == "primary"
    )
    assert (
        table.loc["large", "p (Holm)"] == table.loc["large", "p (paired t)"]
    )  # a family of one: Holm = raw


def test_augmentation_rows_compare_within_their_own_architecture():
    variants, reference = ablations.group_variants(
        "augmentation", "baseline_cnn", ("baseline_cnn", "resnet20")
    )
    refs = ablations.group_references("augmentation", ("baseline_cnn", "resnet20"))
    assert refs == {
        "baseline CNN, no augmentation": "baseline CNN, crop + flip",
        "ResNet20, no augmentation": "ResNet20, crop + flip",
    }
    assert (
        ablations.primary_variant("augmentation", ("baseline_cnn", "resnet20"))
        == "ResNet20, no augmentation"
    )
    assert (
        ablations.primary_variant("augmentation", ("baseline_cnn",))
        == "baseline CNN, no augmentation"
    )
    plan = ablations.default_plan("explore")  # any profile but smoke, cpu and full: every arm
    assert plan.primary("augmentation") == ("ResNet20, crop + flip", "ResNet20, no augmentation")
    assert plan.primary("loss") == ("CE + label smoothing 0.1", "plain CE")
    assert "Primary comparisons" in plan.describe() and "exploratory, with Holm" in plan.describe()
    # The default book: each group's primary pair only, on the baseline CNN, five seeds.
    cpu = ablations.default_plan("cpu")
    assert cpu.seeds == 5 and cpu.primary("augmentation") == (
        "baseline CNN, crop + flip",
        "baseline CNN, no augmentation",
    )
    assert {g: list(cpu.variants(g)[0]) for g in cpu.groups} == {
        "augmentation": ["baseline CNN, crop + flip", "baseline CNN, no augmentation"],
        "schedule": ["warmup + cosine", "linear decay to zero", "constant LR"],
        "loss": ["CE + label smoothing 0.1", "plain CE"],
        "regularisation": ["weight decay 5e-4", "no weight decay"],
    }
    assert "of the exploratory arms only linear decay to zero is trained" in cpu.describe()
    linear = cpu.configs("schedule")["linear decay to zero"].train
    assert linear.schedule.name == "triangular" and linear.schedule.final_lr_fraction == 0.0
    assert linear.schedule.triangle_peak == pytest.approx(
        0.3 / 2
    )  # the reference's warm-up, then down to 0
    # Every group's reference is the headline CNN's own config: its runs are shared.
    references = {cpu.configs(g)[cpu.variants(g)[1]].content_hash() for g in cpu.groups}
    from cifarkit.core.config import load_config

    assert references == {load_config("baseline_cnn", "cpu").content_hash()}
    # On fake per-seed values: no ResNet20 row is measured against the CNN.
    labels = list(variants)
    per_seed = pd.DataFrame(
        {
            "baseline CNN, crop + flip": [0.70, 0.71, 0.69],
            "baseline CNN, no augmentation": [0.65, 0.67, 0.66],
            "ResNet20, crop + flip": [0.85, 0.86, 0.84],
            "ResNet20, no augmentation": [0.80, 0.80, 0.81],
        }
    )[labels]
    from cifarkit.evaluation import stats

    paired = {
        k: stats.paired_comparison(per_seed[r].to_dict(), per_seed[k].to_dict())
        for k, r in refs.items()
    }
    comparison = study.Comparison(
        "test_accuracy",
        reference,
        {},
        {},
        per_seed,
        stats.summarise_table(per_seed),
        paired,
        {k: 1.0 for k in labels},
        refs,
        "ResNet20, no augmentation",
    )
    assert comparison.paired["ResNet20, no augmentation"].mean_diff == pytest.approx(
        -0.0467, abs=1e-3
    )
    table = comparison.table()
    assert table.loc["ResNet20, crop + flip", "Δ vs own reference"] == "reference"
    assert table.loc["ResNet20, no augmentation", "reference"] == "ResNet20, crop + flip"
    rows = ablations.forest_rows({"augmentation": comparison})
    assert list(rows["role"]) == ["exploratory", "primary"]
    assert rows.loc[1, "mean_diff"] == pytest.approx(-0.0467, abs=1e-3)


def test_baseline_and_resnet20_recipes_differ_as_the_text_says(monkeypatch):
    monkeypatch.delenv("CIFARKIT_DATA", raising=False)
    cnn, r20 = load_config("baseline_cnn", "cpu"), load_config("resnet20", "cpu")
    train = {k: v for k, v in overrides_between(r20, cnn).items() if k.startswith("train.")}
    # The training sections differ in the learning rate only (ResNet20 also keeps snapshots for
    # the interpretability chapter, which does not change how it trains); the models in dropout.
    assert train == {"train.optimizer.lr": cnn.train.optimizer.lr, "train.snapshot_epochs": []}
    assert (
        cnn.train.optimizer.lr != r20.train.optimizer.lr and cnn.model.dropout != r20.model.dropout
    )
    assert cnn.train.model_dump(exclude={"optimizer", "snapshot_epochs"}) == r20.train.model_dump(
        exclude={"optimizer", "snapshot_epochs"}
    )
    text = study.recipe_differences(r20, cnn, "ResNet20", "baseline CNN")
    assert (
        f"train.optimizer.lr (ResNet20 {r20.train.optimizer.lr}, baseline CNN {cnn.train.optimizer.lr})"
        in text
    )
    assert f"model.dropout (ResNet20 {r20.model.dropout}, baseline CNN {cnn.model.dropout})" in text
    assert "same recipe" not in text and "model.name" not in text
    assert (
        study.recipe_differences(r20, r20)
        == "Apart from the architecture, the two configs are the same."
    )


def test_compare_rejects_an_unknown_primary_or_reference(tiny_profile):
    cfg = load_config("resnet20", tiny_profile)
    with pytest.raises(CifarkitError, match="primary='x' is not a compared variant"):
        study.compare_runs({"a": cfg, "b": cfg}, {"a": {}, "b": {}}, reference="a", primary="x")
    with pytest.raises(CifarkitError, match="references \\['z'\\] are not among the variants"):
        study.compare_runs(
            {"a": cfg, "b": cfg}, {"a": {}, "b": {}}, reference="a", references={"b": "z"}
        )


def test_comparison_figures_render():
    rows = ablations.forest_rows(
        {"g": _fake_comparison({"a": [0.01, 0.02, 0.0], "b": [-0.1, -0.12, -0.09]})}
    )
    assert list(rows["variant"]) == ["a", "b"]
    assert plots.to_png_bytes(plots.comparison_forest(rows)).startswith(b"\x89PNG")
    summary = pd.DataFrame(
        {"mean": [0.5, 0.6], "low": [0.4, 0.5], "high": [0.6, 0.7], "n": [3, 3]},
        index=["cat", "dog"],
    )
    assert (
        plots.to_png_bytes(plots.per_class_comparison_bars({"A": summary, "B": summary}))[:4]
        == b"\x89PNG"
    )


def test_run_table_lists_complete_runs_of_the_profile(tiny_profile):
    cfg = load_config("resnet20", tiny_profile)
    splits = splits_from_config(cfg.data)
    for seed in (0, 1):
        write_fake_run(cfg, splits, seed)
    table = reproducibility.run_table("tiny")
    assert len(table) == 2 and set(table["MLflow run id"]) == {"fake0", "fake1"}
    assert reproducibility.run_table("other").empty


def test_demo_shows_cached_runs_and_names_the_command_for_missing_ones(tiny_profile, capsys):
    splits = splits_from_config(load_config("resnet20", tiny_profile).data)
    for name in ("baseline_cnn", "resnet20"):
        for seed in range(3):
            write_fake_run(load_config(name, tiny_profile), splits, seed)
    code = main(["demo", "--profile", tiny_profile, "--section", "data", "baseline", "ablations"])
    out = capsys.readouterr().out
    assert code == 1
    assert (
        "[data] done" in out and "[baseline] done" in out and "[ablations] MISSING ARTIFACTS" in out
    )
    assert (
        "make it with: cifarkit train baseline_cnn" in out
        and "--set data.train_per_class=500" in out
    ), out
    assert "demo: 2 of 3 sections" in out


def test_ladder_shows_the_steps_that_have_runs_and_names_the_command_for_the_rest(
    tiny_profile, capsys
):
    from cifarkit.studies import ladder

    configs = ladder.ladder_configs(tiny_profile)
    steps = list(configs)
    assert len({cfg.content_hash() for cfg in configs.values()}) == len(steps)  # every step differs
    splits = splits_from_config(configs[steps[0]].data)
    for step in (steps[0], steps[1], steps[3]):  # step 2 missing: step 3 has no predecessor
        for seed in (0, 1):
            write_fake_run(configs[step], splits, seed)
    result = ladder.run_ladder(tiny_profile, 2, train=False)
    assert set(result.missing) == set(steps) - {steps[0], steps[1], steps[3]}
    assert result.missing[steps[2]].startswith("cifarkit train airbench") and result.missing[
        steps[2]
    ].endswith("--seed 0 1")
    table = result.table()
    assert list(table.index) == steps
    assert table.loc[steps[0], "Δ vs previous step"] == "start"
    assert table.loc[steps[2], "test acc (%)"] == "not run"
    assert table.loc[steps[3], "Δ vs previous step"] == "n/a (previous step not run)"
    pair = result.step_pairs()[steps[1]]
    per_seed = result.comparison.per_seed
    assert pair.mean_diff == pytest.approx((per_seed[steps[1]] - per_seed[steps[0]]).mean())
    assert set(result.step_pairs()) == {steps[1]} and len(result.sentences()) == 1
    # Fake runs of every step score the same per seed: a tie, said as such (no [0, 0] interval).
    assert "no spread observed, no interval" in result.sentences()[0]
    assert "one seed per step" in ladder.run_ladder(tiny_profile, 1, train=False).sentences()[0]
    note = result.missing_note(tiny_profile, {"data.train_per_class": 1000})
    assert (
        f"`cifarkit bench ladder --profile {tiny_profile} --set data.train_per_class=1000`" in note
    )
    assert note.count("\n- ") == len(result.missing) and result.missing[steps[2]] in note
    assert ladder.Ladder(steps, None, {}).missing_note(tiny_profile) == (
        "Every step of the ladder has runs at this budget."
    )
    assert len(result.figure().axes) == 2 and len(ladder.Ladder(steps, None, {}).figure().axes) == 2
    # the command: exit 1 while steps are missing, the table printed, each missing command listed
    assert main(["bench", "ladder", "--profile", tiny_profile, "--seeds", "2", "--dry-run"]) == 1
    out = capsys.readouterr().out
    assert out.count("not run: ") == len(steps) - 3 and steps[1] in out


def test_ladder_ends_first_gives_all_tricks_against_none(tiny_profile, capsys):
    from cifarkit.studies import ladder

    configs = ladder.ladder_configs(tiny_profile)
    steps = list(configs)
    assert ladder.steps_to_train(steps, {len(steps), 1}) == [steps[0], steps[-1]]
    assert (
        ladder.steps_to_train(steps, 2) == steps[:2] and ladder.steps_to_train(steps, True) == steps
    )
    assert ladder.steps_to_train(steps, False) == []
    assert ladder.steps_to_train(steps, -1) == []
    with pytest.raises(
        CifarkitError, match=f"step 9 does not exist; pass step numbers 1 to {len(steps)}"
    ):
        ladder.steps_to_train(steps, [1, 9])
    splits = splits_from_config(configs[steps[0]].data)
    for step in (steps[0], steps[-1]):
        for seed in (0, 1):
            write_fake_run(configs[step], splits, seed)
    result = ladder.run_ladder(tiny_profile, 2, train=False)
    assert result.step_pairs() == {}
    overall, per_seed = result.overall(), result.comparison.per_seed
    assert overall.mean_diff == pytest.approx((per_seed[steps[-1]] - per_seed[steps[0]]).mean())
    [sentence] = result.sentences()
    assert sentence.startswith("All tricks together: ") and "full recipe" in sentence
    assert "no spread observed, no interval" in sentence  # identical fake runs: a tie
    single = ladder.run_ladder(tiny_profile, 1, train=False).sentences()
    assert len(single) == 1 and "cannot be compared" in single[0] and "1 seed" in single[0]
    # --step: exit 0 once the asked steps have runs, though the others are missing
    assert (
        main(
            [
                "bench",
                "ladder",
                "--profile",
                tiny_profile,
                "--seeds",
                "2",
                "--dry-run",
                "--step",
                "1",
                "--step",
                str(len(steps)),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "bench",
                "ladder",
                "--profile",
                tiny_profile,
                "--seeds",
                "2",
                "--dry-run",
                "--step",
                "2",
            ]
        )
        == 1
    )
    assert "All tricks together" in capsys.readouterr().out
    assert main(["bench", "ladder", "--profile", tiny_profile, "--dry-run", "--step", "0"]) == 2
    assert "step 0 does not exist" in capsys.readouterr().err


def test_available_runs_never_trains(tiny_profile):
    cfg = load_config("resnet20", tiny_profile)
    write_fake_run(cfg, splits_from_config(cfg.data), 0)
    complete, missing = study.available_runs(
        {"a": cfg, "b": load_config("baseline_cnn", tiny_profile)}, [0]
    )
    assert (
        list(complete) == ["a"]
        and list(missing) == ["b"]
        and "cifarkit train baseline_cnn" in missing["b"]
    )
    complete, missing = study.available_runs({"a": cfg}, [0, 1])
    assert not complete and "--seed 1" in missing["a"] and "--seed 0" not in missing["a"]


def test_ablation_study_on_fake_runs_reads_primaries_and_compares_within_architectures(
    tiny_profile,
):
    plan = ablations.default_plan(tiny_profile, seeds=2, common={})
    configs = {}  # the single-factor groups share their reference recipe: one run each
    for group in plan.groups:
        variants, _ = ablations.group_variants(group, plan.base, plan.architectures)
        for variant in variants.values():
            cfg = variant.config(plan.profile, plan.common)
            configs[cfg.content_hash()] = cfg
    for cfg in configs.values():
        splits = splits_from_config(cfg.data)
        for seed in range(plan.seeds):
            write_fake_run(cfg, splits, seed)
    results = ablations.run_ablations(plan, train=False)
    aug = results["augmentation"]
    assert aug.primary_label == "ResNet20, no augmentation"
    assert aug.reference_of("ResNet20, no augmentation") == "ResNet20, crop + flip"
    assert set(aug.paired) == {"baseline CNN, no augmentation", "ResNet20, no augmentation"}
    for group, comparison in results.items():
        assert comparison.primary_label == plan.primary(group)[1]
        assert comparison.sentences()[0].startswith("Primary comparison: ")
        assert all(s.startswith("Exploratory: ") for s in comparison.sentences()[1:])
    # Fake runs score the same whatever the config: every contrast is a tie, and says so.
    text = findings.primary_ablation_effects(results)
    assert text.count("no spread observed, no interval") == len(plan.groups) and "beats" not in text
    rows = ablations.forest_rows(results)
    assert (rows["role"] == "primary").sum() == len(plan.groups)
    assert plots.to_png_bytes(plots.comparison_forest(rows)).startswith(b"\x89PNG")
    table = results["schedule"].table()
    assert (
        table.loc["constant LR", "role"] == "primary"
        and table.loc["step decay", "role"] == "exploratory"
    )
    assert table.loc["step decay", "Δ 95% CI"] == "no spread, no interval"


def test_headline_gives_both_intervals_and_what_the_recipes_set_differently(tiny_profile):
    configs = {
        "baseline CNN": load_config("baseline_cnn", tiny_profile),
        "ResNet20": load_config("resnet20", tiny_profile),
    }
    splits = splits_from_config(configs["ResNet20"].data)
    for cfg in configs.values():
        for seed in range(3):
            write_fake_run(cfg, splits, seed)
    comparison = study.compare(
        configs, 3, reference="baseline CNN", primary="ResNet20", train=False
    )
    n_test = len(splits.y_test)
    assert comparison.test_size("ResNet20") == n_test
    text = findings.headline(comparison, "ResNet20", "baseline CNN")
    assert f"over the {n_test:,} test images of one model" in text and "over 3 seeds" in text
    assert (
        "same recipe" not in text and "train.optimizer.lr (ResNet20 0.2, baseline CNN 0.05)" in text
    )
    assert "Exploratory" not in text  # the chapter's one contrast is its primary comparison
