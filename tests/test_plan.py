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
    # training steps at 100 img/s; a validation pass per epoch, the final test and validation
    # predictions at 400 img/s; 5 s of start-up; then the stored runs' correction (x 1.5)
    evaluated = 10 * cfg.data.val_per_class * (epochs + 1) + cfg.data.test_limit
    speed = study.Speed(100.0, 400.0, 5.0, factor=1.5)
    assert study.estimate_minutes(resnet, {key: speed}) == pytest.approx(
        1.5 * (images * epochs / 100.0 + evaluated / 400.0 + 5.0) / 60)
    text = study.total_text(planned, {key: speed})
    assert text.startswith(f"{len(planned)} distinct runs, 0 stored, {len(planned)} to train")
    assert "not estimated: their model family has no measured speed here" in text  # the CNN's
    table = study.plan_table(planned, {key: speed})
    assert list(table["stored"].unique()) == ["missing"] and table["est. min"].notna().sum() == 2
    assert set(study.chapter_minutes(planned, {key: speed})) == {"baseline"}


def test_validating_less_often_is_priced_and_must_end_on_the_last_epoch():
    from cifarkit.core.config import load_config
    from cifarkit.core.errors import ConfigError

    every = load_config("baseline_cnn", "smoke", {"train.epochs": 4})
    last = load_config("baseline_cnn", "smoke", {"train.epochs": 4, "train.validate_every": 4})
    speed = study.Speed(100.0, 500.0, 0.0)
    saved = 3 * 10 * every.data.val_per_class / 500.0 / 60  # three fewer validation passes
    assert study.run_minutes(every, speed) - study.run_minutes(last, speed) == pytest.approx(saved)
    with pytest.raises(ConfigError, match="validate_every=3 must divide epochs=4"):
        load_config("baseline_cnn", "smoke", {"train.epochs": 4, "train.validate_every": 3})


def test_a_float16_plan_on_a_machine_without_a_gpu_is_refused_before_anything_trains():
    from cifarkit.core.precision import Machine, use_machine

    planned = study.study_plan("full", "baseline")
    assert {e.config.train.precision for e in planned} == {"float16"}
    with use_machine(Machine(gpus=())), pytest.raises(CifarkitError, match=r"float16.*needs a GPU.*precision=float32"):
        study.measured_speeds(planned, probe=False)
    # Driver missing: a card is installed but TensorFlow lists none; the reason is in the line.
    broken = Machine(gpus=(), gpu_nodes=("/dev/nvidia0",), reason="this TensorFlow has no CUDA libraries")
    with use_machine(broken), pytest.raises(CifarkitError, match="no CUDA libraries"):
        study.measured_speeds(planned, probe=False)
    with use_machine(Machine(gpus=("Fake GPU",))):
        assert study.measured_speeds(planned, probe=False) == {}  # allowed; priced by a probe on that machine


def test_each_chapter_states_its_budget_from_the_plan_functions():
    from cifarkit.core.precision import Machine, use_machine

    with use_machine(Machine(cpu_bfloat16=False)):  # auto resolves to float32 on such a CPU
        text = study.chapter_budget("smoke", "baseline")
    assert text == ("Budget of this chapter (profile smoke): 4 runs: baseline_cnn, resnet20 on 1,000 training "
                    "images for 2 epochs (batch 128, float32), seeds 0, 1.")
    with use_machine(Machine(cpu_bfloat16=True)):
        assert "(batch 128, bfloat16 (mixed; native on this CPU))" in study.chapter_budget("smoke", "baseline")
    ablations = study.chapter_budget("cpu", "ablations", {"seeds": 5})
    # Primary comparisons only, at the headline's budget: the reference is the headline CNN itself.
    assert "25 runs: baseline_cnn on 40,000 training images for 2 epochs" in ablations
    assert "seeds 0, 1, 2, 3, 4" in ablations
    with pytest.raises(CifarkitError, match="trains no runs"):
        study.chapter_budget("cpu", "intro")


def test_the_default_book_shares_its_headline_runs_and_trains_its_ladder():
    planned = study.study_plan("cpu")
    headline = [e for e in planned if e.config.name in ("resnet20", "baseline_cnn") and e.seed == 0
                and not study.changes(e.config)]
    # interpretability explains the headline runs themselves; ResNet20's keep their snapshots
    assert len(headline) == 2 and all("interpretability" in e.chapters for e in headline)
    assert next(e for e in headline if e.config.name == "resnet20").config.train.snapshot_epochs == (1,)
    assert all(e.training_images == 40_000 for e in headline)
    ladder = [e for e in planned if "fast_training" in e.chapters]
    assert len(ladder) == 8  # every step of the ladder, at the chapter's budget
    # The ablations' reference arm is the headline CNN (shared, all five seeds); its four
    # primary variants are the chapter's own runs.
    shared = [e for e in planned if "ablations" in e.chapters and "baseline" in e.chapters]
    assert len(shared) == 5 and {e.config.name for e in shared} == {"baseline_cnn"}
    assert len([e for e in planned if e.chapters == ["ablations"]]) == 4 * 5


def _planned(cfg, seed: int, complete: bool = False) -> study.PlannedRun:
    return study.PlannedRun(cfg, seed, f"{cfg.name}-{seed:012d}", complete, ["baseline"])


def test_tiny_runs_train_two_at_a_time_and_long_ones_one_at_a_time():
    from cifarkit.core.config import load_config

    cfg = load_config("baseline_cnn", "smoke")
    plan = [_planned(cfg, 0), _planned(cfg, 1), _planned(cfg, 2, complete=True)]
    tracing_bound = {study.speed_key(cfg): study.Speed(train_img_s=5000, predict_img_s=9000, startup_seconds=20)}
    step_bound = {study.speed_key(cfg): study.Speed(train_img_s=50, predict_img_s=150, startup_seconds=5)}
    jobs, why = study.local_jobs(plan, tracing_bound, cores=2)
    assert jobs == 2 and why.startswith("two at a time: their fixed cost") and "%" in why
    assert study.local_jobs(plan, step_bound, cores=2)[0] == 1
    assert study.local_jobs(plan, tracing_bound, cores=1)[0] == 1  # one core: nothing to overlap
    assert study.local_jobs(plan[1:], tracing_bound, cores=2)[0] == 1  # one missing run
    with pytest.raises(CifarkitError, match="jobs=0: the runs trained at once are at least 1"):
        study.train_plan(plan, tracing_bound, jobs=0)
