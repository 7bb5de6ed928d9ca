"""The study plan: every run a build needs, deduplicated across chapters, priced from measured speed."""

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
    by_chapter = {name: {e.folder for e in planned if name in e.chapters} for name in study.CHAPTERS}
    assert all(by_chapter.values())
    # ResNet20 seed 0 is the baseline's, the ablations' reference and interpretability's model: one run.
    shared = [e for e in planned if e.config.name == "resnet20" and e.seed == 0 and not study.changes(e.config)]
    assert len(shared) == 1 and {"baseline", "ablations", "interpretability"} <= set(shared[0].chapters)
    assert not any(e.complete for e in planned)  # an empty run store
    # The chapter's own declaration, with its parameters: 5 seeds of every baseline model.
    baseline = study.study_plan("smoke", "baseline", {"seeds": 5})
    assert sorted((e.config.name, e.seed) for e in baseline) == sorted(
        (name, s) for name in ("baseline_cnn", "resnet20") for s in range(5))
    assert study.study_plan("smoke", chapters=["data", "intro"]) == []


def test_the_plan_refuses_unknown_chapters_and_stray_parameters():
    with pytest.raises(CifarkitError, match="chapters that train: baseline"):
        study.study_plan("smoke", "nosuch")
    with pytest.raises(CifarkitError, match="--params needs --chapter"):
        study.study_plan("smoke", params={"seeds": 3})


def test_estimates_come_from_measured_speed_and_say_when_there_is_none():
    planned = study.study_plan("smoke", "baseline")
    resnet = next(e for e in planned if e.config.name == "resnet20")
    key = study.speed_key(resnet.config)
    assert study.estimate_minutes(resnet, {}) is None
    cfg = resnet.config
    images, epochs = resnet.training_images, cfg.train.epochs
    evaluated = 10 * cfg.data.val_per_class * epochs + cfg.data.test_limit
    assert study.estimate_minutes(resnet, {key: 100.0}) == pytest.approx(
        (images * epochs / 100.0 + evaluated / 300.0) / 60)
    text = study.total_text(planned, {key: 100.0})
    assert text.startswith(f"{len(planned)} distinct runs, 0 stored, {len(planned)} to train")
    assert "whose model family has no measured speed here" in text  # the CNN's speed is unknown
    table = study.plan_table(planned, {key: 100.0})
    assert list(table["stored"].unique()) == ["missing"] and table["est. min"].notna().sum() == 2
