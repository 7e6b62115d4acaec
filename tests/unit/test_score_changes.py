"""When the score-change stream emits: tier changes, steps of credibility, one per interval."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.consumer import engine_config
from service.engine.score_changes import (
    ChangeGate,
    ChangePolicy,
    Emitted,
    Verdict,
    decide,
)
from service.partition_state import PartitionState
from service.score_stream import RescoreBudget
from service.settings import Settings
from tests.events import decoded, interaction, post

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


# --- the stream's pace: PartitionState offers what moved, within a budget ---------------

def _partition_with_accounts(count: int) -> PartitionState:
    state = PartitionState(0, engine_config(Settings()))
    for number in range(count):
        state.engine.apply(decoded(post(f"acc-{number}", "p1", float(number))))
    return state


def test_a_checkpoint_scores_at_most_its_allowance_and_the_rest_wait_their_turn() -> None:
    state = _partition_with_accounts(5)
    checkpoint = state.checkpoint("events", "actors", "signals", rescore_at_most=2)
    assert checkpoint is not None
    first = [account for account, _ in checkpoint.score_changes]
    assert len(first) == 2
    assert checkpoint.rescored == 2
    assert state.rescores_pending == 3
    waiting = sorted({f"acc-{number}" for number in range(5)} - set(first))
    # One that waits moves again: it is still offered once, in its place, before an
    # account that moved after it.
    state.engine.apply(decoded(interaction("like", waiting[0], "p1", "u1", 10.0)))
    state.engine.apply(decoded(post("acc-9", "p1", 11.0)))
    checkpoint = state.checkpoint("events", "actors", "signals", rescore_at_most=10)
    assert checkpoint is not None
    second = [account for account, _ in checkpoint.score_changes]
    assert sorted(second[:3]) == waiting
    assert second[3:] == ["acc-9"]
    assert state.rescores_pending == 0


def test_an_account_held_by_its_interval_is_not_scored_and_costs_no_allowance() -> None:
    state = _partition_with_accounts(3)
    assert state.checkpoint("events", "actors", "signals") is not None  # all emitted
    for number in range(3):
        state.engine.apply(decoded(interaction("like", f"acc-{number}", "p1", "u1", 20.0)))
    checkpoint = state.checkpoint("events", "actors", "signals", rescore_at_most=1)
    assert checkpoint is not None
    assert checkpoint.rescored == 0
    assert checkpoint.score_changes == []
    assert state.rescores_pending == 0  # held by the gate, which offers them when due


def test_the_budget_shares_the_time_by_what_waits_at_the_measured_cost() -> None:
    budget = RescoreBudget(share=0.1, commit_interval_s=1.0, first_cost_s=100e-6)
    # 0.1 s at 100 us: 1,000 accounts, three to one by what waits, each partition at
    # most 25 ms (250 accounts) at a time.
    assert budget.allowances(1.0, {0: 100, 1: 100, 2: 100, 3: 300}) == {
        0: 166, 1: 166, 2: 166, 3: 250}
    assert budget.allowances(0.5, {0: 300, 1: 100}) == {0: 250, 1: 125}
    budget.spent(1_000, 0.05)  # 50 us each: the average moves towards it
    assert budget.cost_s == pytest.approx(90e-6)
    assert budget.allowances(0.1, {0: 5}) == {0: 111}
    least = RescoreBudget.AT_LEAST_PER_PARTITION
    assert budget.allowances(0.0, {0: 5, 1: 0}) == {0: least, 1: least}
    assert budget.allowances(1.0, {}) == {}
    with pytest.raises(ValueError, match="share"):
        RescoreBudget(share=0)
