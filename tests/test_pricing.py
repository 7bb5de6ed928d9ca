"""The study plan priced on this machine: measured speeds, estimates, and what runs at once."""

from __future__ import annotations

import pytest

from cifarkit.core.errors import CifarkitError
from cifarkit.runs.local import local_jobs
from cifarkit.studies import plan as study
from cifarkit.studies import pricing
from cifarkit.studies.runner import train_plan


@pytest.fixture(autouse=True)
def _fixed_data_hash(monkeypatch):
    """Run keys without reading the data (the key's data hash is a constant here)."""
    monkeypatch.setattr("cifarkit.data.identity.data_hash_for", lambda data: "d" * 64)


def test_estimates_come_from_measured_speed_and_say_when_there_is_none():
    planned = study.study_plan("smoke", "baseline")
    resnet = next(e for e in planned if e.config.name == "resnet20")
    key = pricing.speed_key(resnet.config)
    assert pricing.estimate_minutes(resnet, {}) is None
    cfg = resnet.config
    images, epochs = resnet.training_images, cfg.train.epochs
    # training steps at 100 img/s; a validation pass per epoch (the last one's logits are the
    # stored ones) and the test set's prediction at 400 img/s; 5 s of start-up; then the stored
    # runs' correction (x 1.5)
    evaluated = 10 * cfg.data.val_per_class * epochs + cfg.data.test_limit
    speed = pricing.Speed(100.0, 400.0, 5.0, factor=1.5)
    assert pricing.estimate_minutes(resnet, {key: speed}) == pytest.approx(
        1.5 * (images * epochs / 100.0 + evaluated / 400.0 + 5.0) / 60
    )
    text = pricing.total_text(planned, {key: speed})
    assert text.startswith(f"{len(planned)} distinct runs, 0 stored, {len(planned)} to train")
    assert "not estimated: their model family has no measured speed here" in text  # the CNN's
    table = pricing.plan_table(planned, {key: speed})
    assert list(table["stored"].unique()) == ["missing"] and table["est. min"].notna().sum() == 2
    assert set(pricing.chapter_minutes(planned, {key: speed})) == {"baseline"}


def test_validating_less_often_is_priced_and_must_end_on_the_last_epoch():
    from cifarkit.core.config import load_config
    from cifarkit.core.errors import ConfigError

    every = load_config("baseline_cnn", "smoke", {"train.epochs": 4})
    last = load_config("baseline_cnn", "smoke", {"train.epochs": 4, "train.validate_every": 4})
    speed = pricing.Speed(100.0, 500.0, 0.0)
    saved = 3 * 10 * every.data.val_per_class / 500.0 / 60  # three fewer validation passes
    assert pricing.run_minutes(every, speed) - pricing.run_minutes(last, speed) == pytest.approx(
        saved
    )
    with pytest.raises(ConfigError, match="validate_every=3 must divide epochs=4"):
        load_config("baseline_cnn", "smoke", {"train.epochs": 4, "train.validate_every": 3})


def test_each_epoch_pays_for_its_checkpoint():
    from cifarkit.core.config import load_config

    cfg = load_config("baseline_cnn", "smoke", {"train.epochs": 4})
    free, saving = (
        pricing.Speed(100.0, 500.0, 2.0),
        pricing.Speed(100.0, 500.0, 2.0, save_seconds=0.5),
    )
    assert pricing.run_minutes(cfg, saving) - pricing.run_minutes(cfg, free) == pytest.approx(
        4 * 0.5 / 60
    )


def test_a_float16_plan_on_a_machine_without_a_gpu_is_refused_before_anything_trains():
    from cifarkit.core.precision import Machine, use_machine

    planned = study.study_plan("full", "baseline")
    assert {e.config.train.precision for e in planned} == {"float16"}
    with (
        use_machine(Machine(gpus=())),
        pytest.raises(CifarkitError, match=r"float16.*needs a GPU.*precision=float32"),
    ):
        pricing.measured_speeds(planned, probe=False)
    # Driver missing: a card is installed but TensorFlow lists none; the reason is in the line.
    broken = Machine(
        gpus=(), gpu_nodes=("/dev/nvidia0",), reason="this TensorFlow has no CUDA libraries"
    )
    with use_machine(broken), pytest.raises(CifarkitError, match="no CUDA libraries"):
        pricing.measured_speeds(planned, probe=False)
    with use_machine(Machine(gpus=("Fake GPU",))):
        assert (
            pricing.measured_speeds(planned, probe=False) == {}
        )  # allowed; priced by a probe on that machine


def _planned(cfg, seed: int, complete: bool = False) -> study.PlannedRun:
    return study.PlannedRun(cfg, seed, f"{cfg.name}-{seed:012d}", complete, ["baseline"])


def test_tiny_runs_train_two_at_a_time_and_long_ones_one_at_a_time():
    from cifarkit.core.config import load_config

    cfg = load_config("baseline_cnn", "smoke")
    plan = [_planned(cfg, 0), _planned(cfg, 1), _planned(cfg, 2, complete=True)]
    tracing_bound = {
        pricing.speed_key(cfg): pricing.Speed(
            train_img_s=5000, predict_img_s=9000, startup_seconds=20
        )
    }
    step_bound = {
        pricing.speed_key(cfg): pricing.Speed(train_img_s=50, predict_img_s=150, startup_seconds=5)
    }
    jobs, why = local_jobs(pricing.priced_jobs(plan, tracing_bound), cores=2)
    assert jobs == 2 and why.startswith("two at a time: their fixed cost") and "%" in why
    assert local_jobs(pricing.priced_jobs(plan, step_bound), cores=2)[0] == 1
    assert (
        local_jobs(pricing.priced_jobs(plan, tracing_bound), cores=1)[0] == 1
    )  # one core: nothing to overlap
    assert (
        local_jobs(pricing.priced_jobs(plan[1:], tracing_bound), cores=2)[0] == 1
    )  # one missing run
    with pytest.raises(CifarkitError, match="jobs=0: the runs trained at once are at least 1"):
        train_plan(plan, tracing_bound, jobs=0)
