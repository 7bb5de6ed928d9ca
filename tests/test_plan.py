"""The study plan: every run a build needs, deduplicated across chapters."""

from __future__ import annotations

import pytest

from cifarkit.core.errors import CifarkitError
from cifarkit.studies import plan as study


@pytest.fixture(autouse=True)
def _fixed_data_hash(monkeypatch):
    """Run keys without reading the data (the key's data hash is a constant here)."""
    monkeypatch.setattr("cifarkit.data.identity.data_hash_for", lambda data: "d" * 64)


def test_the_smoke_plan_names_each_run_once_with_the_chapters_that_use_it():
    planned = study.study_plan("smoke")
    folders = [e.folder for e in planned]
    assert len(folders) == len(set(folders))
    by_chapter = {
        name: {e.folder for e in planned if name in e.chapters} for name in study.CHAPTERS
    }
    assert all(by_chapter.values())
    # ResNet20 seed 0 is the baseline's, the ablations' reference and interpretability's
    # model: one run.
    shared = [
        e
        for e in planned
        if e.config.name == "resnet20" and e.seed == 0 and not study.changes(e.config)
    ]
    assert len(shared) == 1 and {"baseline", "ablations", "interpretability"} <= set(
        shared[0].chapters
    )
    assert not any(e.complete for e in planned)  # an empty run store
    # The chapter's own declaration, with its parameters: 5 seeds of every baseline model.
    baseline = study.study_plan("smoke", "baseline", {"seeds": 5})
    assert sorted((e.config.name, e.seed) for e in baseline) == sorted(
        (name, s) for name in ("baseline_cnn", "resnet20") for s in range(5)
    )
    assert study.study_plan("smoke", chapters=["data", "intro"]) == []


def test_the_plan_refuses_unknown_chapters_and_stray_parameters():
    with pytest.raises(CifarkitError, match="chapters that train: baseline"):
        study.study_plan("smoke", "nosuch")
    with pytest.raises(CifarkitError, match="--params needs --chapter"):
        study.study_plan("smoke", params={"seeds": 3})


def test_each_chapter_states_its_budget_from_the_plan_functions():
    from cifarkit.core.precision import Machine, use_machine

    with use_machine(Machine(cpu_bfloat16=False)):  # auto resolves to float32 on such a CPU
        text = study.chapter_budget("smoke", "baseline")
    assert text == (
        "Budget of this chapter (profile smoke): 4 runs: baseline_cnn, resnet20 on 1,000 training "
        "images for 2 epochs (batch 128, float32), seeds 0, 1."
    )
    with use_machine(Machine(cpu_bfloat16=True)):
        assert "(batch 128, bfloat16 (mixed; native on this CPU))" in study.chapter_budget(
            "smoke", "baseline"
        )
    ablations = study.chapter_budget("cpu", "ablations", {"seeds": 5})
    # Primary comparisons only, at the headline's budget: the reference is the headline CNN itself.
    assert "30 runs: baseline_cnn on 40,000 training images for 2 epochs" in ablations
    assert "seeds 0, 1, 2, 3, 4" in ablations
    with pytest.raises(CifarkitError, match="trains no runs"):
        study.chapter_budget("cpu", "intro")


def test_the_default_book_shares_its_headline_runs_and_trains_its_ladder():
    planned = study.study_plan("cpu")
    headline = [
        e
        for e in planned
        if e.config.name in ("resnet20", "baseline_cnn")
        and e.seed == 0
        and not study.changes(e.config)
    ]
    # interpretability explains the headline runs themselves; ResNet20's keep their snapshots
    assert len(headline) == 2 and all("interpretability" in e.chapters for e in headline)
    assert next(
        e for e in headline if e.config.name == "resnet20"
    ).config.train.snapshot_epochs == (1,)
    assert all(e.training_images == 40_000 for e in headline)
    ladder = [e for e in planned if "fast_training" in e.chapters]
    # The ladder's two ends (plain net, full recipe) over five seeds, at the chapter's budget.
    assert len(ladder) == 2 * 5 and len({e.config.content_hash() for e in ladder}) == 2
    assert all(e.training_images == 5_000 and e.config.train.epochs == 4 for e in ladder)
    # The ablations' reference arm is the headline CNN (shared, all five seeds); its four
    # primary variants and the budget-aware schedule are the chapter's own runs.
    shared = [e for e in planned if "ablations" in e.chapters and "baseline" in e.chapters]
    assert len(shared) == 5 and {e.config.name for e in shared} == {"baseline_cnn"}
    assert len([e for e in planned if e.chapters == ["ablations"]]) == 5 * 5
