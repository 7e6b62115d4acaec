"""When the score-change stream emits: tier changes, steps of credibility, one per interval."""

from __future__ import annotations

import pytest

from service.engine.score_changes import (
    ChangeGate,
    ChangePolicy,
    Emitted,
    Verdict,
    decide,
)

POLICY = ChangePolicy(credibility_step=5.0, interval_s=60.0)


@pytest.mark.parametrize(("previous", "tier", "credibility", "now", "verdict"), [
    (None, "micro", 50.0, 0.0, Verdict.EMIT),
    (Emitted("micro", 50.0, 0.0), "micro", 54.99, 100.0, Verdict.SKIP),
    (Emitted("micro", 50.0, 0.0), "micro", 55.0, 100.0, Verdict.EMIT),
    (Emitted("micro", 50.0, 0.0), "micro", 45.0, 100.0, Verdict.EMIT),
    (Emitted("micro", 50.0, 0.0), "mid", 50.0, 100.0, Verdict.EMIT),
    (Emitted("micro", 50.0, 0.0), "mid", 50.0, 59.9, Verdict.HOLD),
    (Emitted("micro", 50.0, 0.0), "micro", 80.0, 30.0, Verdict.HOLD),
    (Emitted("micro", 50.0, 0.0), "micro", 51.0, 30.0, Verdict.SKIP),
])
def test_decision(previous: Emitted | None, tier: str, credibility: float, now: float,
                  verdict: Verdict) -> None:
    assert decide(previous, tier, credibility, now, POLICY) is verdict


def test_small_moves_add_up_against_the_last_emitted_record() -> None:
    gate = ChangeGate(POLICY)
    assert gate.offer("a", "micro", 50.0, 0.0)
    offers = [gate.offer("a", "micro", 50.0 + step, 100.0 * step) for step in (2, 4, 6)]
    assert offers == [False, False, True]
    assert gate.last("a") == Emitted("micro", 56.0, 600.0)


def test_a_held_change_comes_due_once_its_interval_is_over() -> None:
    gate = ChangeGate(POLICY)
    assert gate.offer("a", "micro", 50.0, 0.0)
    assert not gate.offer("a", "mid", 50.0, 10.0)
    assert not gate.offer("a", "mid", 52.0, 20.0)  # still held, not queued twice
    assert gate.due(59.0) == []
    assert gate.due(60.0) == ["a"]
    assert gate.due(61.0) == []
    assert gate.offer("a", "mid", 52.0, 60.0)


def test_a_held_change_that_went_back_is_no_longer_due() -> None:
    gate = ChangeGate(POLICY)
    gate.offer("a", "micro", 50.0, 0.0)
    assert not gate.offer("a", "micro", 70.0, 10.0)
    assert not gate.offer("a", "micro", 51.0, 20.0)
    assert gate.due(100.0) == []


def test_leaving_the_window_tombstones_only_what_the_stream_had() -> None:
    gate = ChangeGate(POLICY)
    gate.offer("a", "micro", 50.0, 0.0)
    assert gate.leave("a")
    assert not gate.leave("a")
    assert not gate.leave("never-emitted")
    assert gate.offer("a", "micro", 50.0, 1.0)  # back in the window: a record again


def test_export_and_restore_keep_records_and_held_changes() -> None:
    gate = ChangeGate(POLICY)
    gate.offer("a", "micro", 50.0, 0.0)
    gate.offer("b", "nano", 20.0, 0.0)
    gate.offer("b", "micro", 20.0, 30.0)  # held until 60
    restored = ChangeGate(POLICY)
    restored.restore(gate.export())
    assert restored.last("a") == Emitted("micro", 50.0, 0.0)
    assert len(restored) == 2
    assert restored.due(60.0) == ["b"]


def test_policy_refuses_a_step_of_zero() -> None:
    with pytest.raises(ValueError, match="credibility_step"):
        ChangePolicy(credibility_step=0)
