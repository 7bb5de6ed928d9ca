"""Power in the plan: the detectable difference against a simulation, and design errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from cifarkit.studies import power


@pytest.mark.parametrize("n", [3, 5, 8])
def test_the_detectable_difference_is_detected_four_times_in_five(n):
    sd = 0.01
    effect = power.detectable_difference(sd, n)
    rng = np.random.default_rng(n)
    diffs = rng.normal(effect, sd, size=(40_000, n))
    p = sps.ttest_1samp(diffs, 0.0, axis=1).pvalue
    assert np.mean(p < 0.05) == pytest.approx(power.POWER, abs=0.01)
    # More seeds detect less; the interval narrows as 1/sqrt(n) times the t quantile.
    assert power.detectable_difference(sd, n + 1) < effect
    assert power.expected_half_width(sd, n) == pytest.approx(
        sps.t.ppf(0.975, n - 1) * sd / np.sqrt(n)
    )


def test_five_seeds_at_the_pilot_spread_can_call_or_bound_and_fewer_cannot():
    assert (
        power.expected_half_width(power.PILOT_SD, 5)
        < 0.015
        < power.expected_half_width(power.PILOT_SD, 3)
    )
    assert power.detectable_difference(1.0, 1) == float("inf")


@pytest.mark.data  # the transfer study's target configs name the source run, whose key holds the data hash
def test_the_default_plan_powers_every_primary_and_the_smoke_plan_reports_its_design_errors():
    cpu = power.power_table(power.primaries("cpu"))
    assert set(cpu["chapter"]) == {"baseline", "ablations", "transfer", "fast_training"}
    assert len(cpu[cpu["chapter"] == "ablations"]) == 4  # one primary per group
    assert (cpu["seeds"] >= 5).all()
    assert not power.design_errors(cpu[cpu["spread from"] == "pilot estimate"])
    smoke = power.power_table(power.primaries("smoke"))
    errors = power.design_errors(smoke)
    assert errors and all(
        line.startswith("design error: ") and "fewer than the 5" in line for line in errors
    )
    assert "pilot estimate of 1.0 points" in power.power_text(cpu)
