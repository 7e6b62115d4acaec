"""When the score-change stream emits: tier changes, steps of credibility, one per interval."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

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


def test_a_recently_emitted_account_is_held_unscored_until_its_interval_is_over() -> None:
    gate = ChangeGate(POLICY)
    assert not gate.defer("new", 0.0)  # never emitted: score it now
    assert gate.offer("a", "micro", 50.0, 0.0)
    assert gate.defer("a", 10.0)
    assert gate.defer("a", 20.0)  # held once
    assert gate.due(59.0) == []
    assert gate.due(60.0) == ["a"]
    assert not gate.defer("a", 60.0)


@given(st.lists(st.tuples(st.floats(0.0, 90.0), st.sampled_from(["micro", "mid"]),
                          st.floats(0.0, 100.0)), max_size=30))
def test_deferring_emits_exactly_what_offering_every_change_emits(
    changes: list[tuple[float, str, float]],
) -> None:
    """Checkpoints at every change and every 10 s: scoring only what `defer` lets through
    gives the same records at the same times as scoring every changed account."""
    timeline: list[tuple[float, tuple[str, float] | None]] = []
    now = 0.0
    for gap, tier, credibility in changes:
        now += gap
        timeline.append((now, (tier, credibility)))
    timeline += [(t * 10.0, None) for t in range(int(now // 10) + 8)]
    timeline.sort(key=lambda item: (item[0], item[1] is None))

    def run(defer: bool) -> list[tuple[float, str, float]]:
        gate = ChangeGate(POLICY)
        current: tuple[str, float] | None = None
        emitted = []
        for time_, change in timeline:
            changed = []
            if change is not None:
                current = change
                if not (defer and gate.defer("a", time_)):
                    changed = ["a"]
            for account in gate.due(time_) + changed:
                assert current is not None
                if gate.offer(account, current[0], current[1], time_):
                    emitted.append((time_, *current))
        return emitted

    assert run(defer=True) == run(defer=False)
