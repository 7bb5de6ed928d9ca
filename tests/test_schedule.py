"""What the local and the Ray runner share: the order runs start in, and the time left."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from cifarkit.runs.schedule import Eta, Job, Queue


def _job(folder: str, source: str | None = None) -> Job:
    config = SimpleNamespace(transfer=SimpleNamespace(source_run=source) if source else None)
    return Job(config, 0, folder)  # a stand-in config: the queue reads only its transfer source


def test_a_transfer_run_waits_for_its_source_run_and_capacity_is_filled_in_order():
    jobs = [
        _job("source"),
        _job("target", source="source"),
        _job("other"),
        _job("elsewhere", source="stored"),
    ]
    queue = Queue(jobs, capacity=2)
    assert queue.ready(running=0) == [
        0,
        2,
    ]  # the target waits; a source the list does not train does not
    assert queue.ready(running=2) == []
    queue.finish(0)
    assert queue.ready(running=1) == [1]  # one slot free: the target, now that its source is done
    assert queue.waiting == [3]
    assert Queue(jobs).ready(running=5) == [0, 2, 3]  # no capacity: every run whose source is ready


def test_the_eta_takes_the_estimates_until_enough_runs_set_the_pace(monkeypatch):
    now = [0.0]
    monkeypatch.setattr("cifarkit.runs.schedule.time.perf_counter", lambda: now[0])
    eta = Eta([2.0, 2.0, 4.0, 4.0], at_once=2, settle=2)
    assert eta.left(range(4)) == pytest.approx(6.0)  # 12 estimated minutes, two at a time
    now[0] = 60.0 * 3
    eta.finish(0)
    assert eta.left(range(1, 4)) == pytest.approx(5.0)  # one run is not a pace yet
    now[0] = 60.0 * 8
    eta.finish(1)
    assert eta.elapsed() == pytest.approx(8.0)
    assert eta.left([2, 3]) == pytest.approx(16.0)  # 8 min for 4 estimated: twice the estimates
