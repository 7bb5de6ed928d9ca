"""The fast recipe's benchmark goals: written in configs/goals/, run in order by one command."""

from __future__ import annotations

import pytest

from cifarkit.bench.goals import Goal, load_goals
from cifarkit.cli import main
from cifarkit.core.config import load_config
from cifarkit.core.errors import ConfigError


def test_the_goals_files_hold_the_targets_and_the_wide_recipe():
    fast, bf16 = load_goals("fast"), load_goals("fast_bf16")
    assert list(fast) == ["airbench", "resnet20_fast", "ladder_small", "ladder_ends", "ladder"]
    assert fast["airbench"].target_fraction == pytest.approx(0.907)
    assert fast["ladder_ends"].steps == [1, 8]
    wide = bf16["airbench_wide_bf16"]
    cfg = load_config(wide.experiment, wide.profile, wide.set)
    assert cfg.model.airbench.widths == (128, 384, 384)
    assert (cfg.train.optimizer.lr, cfg.train.optimizer.weight_decay, cfg.train.epochs) == (
        1.3,
        1.53e-3,
        12,
    )
    # the same config as the command line that used to spell it out: the kept results stay its
    by_hand = load_config("resnet20_fast", "cpu", {"data.val_per_class": 100, "train.epochs": 30})
    goal = fast["resnet20_fast"]
    assert (
        load_config(goal.experiment, goal.profile, goal.set).content_hash()
        == by_hand.content_hash()
    )


def test_a_goal_names_what_its_bench_needs():
    with pytest.raises(ValueError, match="names an experiment and a target"):
        Goal(bench="time-to-accuracy", experiment="airbench")
    with pytest.raises(ValueError, match="no experiment or target"):
        Goal(bench="ladder", target=90.0)


def test_a_bad_goals_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("quick: {bench: time-to-accuracy, experiment: airbench, target: 90, seeds: 0}\n")
    with pytest.raises(
        ConfigError, match=r"bad.yaml: quick.seeds: Input should be greater than or equal to 1"
    ):
        load_goals(bad)
    with pytest.raises(
        ConfigError, match="no goals file .*nope.yaml; choose one of: fast, fast_bf16"
    ):
        load_goals("nope")


def test_the_goals_command_prints_each_goal_in_order(capsys):
    assert (
        main(
            [
                "bench",
                "goals",
                "fast",
                "--dry-run",
                "--only",
                "resnet20_fast",
                "--only",
                "ladder_ends",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "== goal 1/2 resnet20_fast: cifarkit bench time-to-accuracy resnet20_fast --profile cpu "
        "--target 88.5 --seeds 3 --set train.epochs=30 --set data.val_per_class=100",
        "== goal 2/2 ladder_ends: cifarkit bench ladder --profile cpu --seeds 1 --step 1 --step 8",
    ]
    assert main(["bench", "goals", "fast", "--only", "nosuch"]) == 2
