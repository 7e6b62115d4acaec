"""The score-change stream at a bounded pace: what a budget-capped checkpoint leaves
waiting still reaches the stream, without new input, after a move too (the changelog's
gate records say what waits), and without holding live changes back."""

from __future__ import annotations

import random

import msgpack
import pytest

from service.consumer import engine_config
from service.partition_state import Checkpoint, PartitionState
from service.score_stream import RescoreBudget
from service.settings import Settings
from tests.events import decoded, interaction, post

TOPICS = ("events", "actors", "signals")


def _partition_with_accounts(count: int) -> PartitionState:
    state = PartitionState(0, engine_config(Settings()))
    for number in range(count):
        state.engine.apply(decoded(post(f"acc-{number}", "p1", float(number))))
    return state


def _restored_from(*checkpoints: Checkpoint) -> PartitionState:
    """A new owner's state, read from the changelog the checkpoints committed."""
    copy = PartitionState(0, engine_config(Settings()))
    for checkpoint in checkpoints:
        for key, value in checkpoint.changelog:
            copy.apply_changelog(key, value)
    copy.finish_restore()
    return copy


def test_what_waits_for_the_budget_is_scored_at_the_next_checkpoint_without_new_input(
) -> None:
    # A backfill ends, or the partition goes quiet: the accounts left over by the
    # budget must still reach the stream at the following checkpoints.
    state = _partition_with_accounts(5)
    first = state.checkpoint(*TOPICS, rescore_at_most=2)
    assert first is not None
    assert state.rescores_pending == 3
    second = state.checkpoint(*TOPICS, rescore_at_most=10)
    assert second is not None, "the backlog stalls until the partition gets an event"
    assert len(second.score_changes) == 3
    assert state.rescores_pending == 0


def test_a_tombstone_still_waiting_for_the_budget_is_not_lost_when_the_partition_moves(
) -> None:
    state = _partition_with_accounts(5)
    first = state.checkpoint(*TOPICS)
    assert first is not None
    assert len(first.score_changes) == 5
    # Much later, the five leave the window; one new account arrives. The budget lets
    # one account through: most tombstones wait.
    later = state.engine.config.horizon_s + 1_000.0
    state.engine.apply(decoded(post("acc-new", "p1", later)))
    list(state.engine.expire_in_slices())
    assert "acc-0" not in state.engine.accounts
    second = state.checkpoint(*TOPICS, rescore_at_most=1)
    assert second is not None
    assert state.rescores_pending >= 4
    published = {account for account, _ in first.score_changes + second.score_changes}
    tombstoned = {account for account, score in second.score_changes if score is None}
    # The partition moves (rebalance, crash, clean restart): the new owner restores
    # the committed changelog and must finish what the old owner left waiting.
    moved = _restored_from(first, second)
    after, _ = moved.score_changes(1_000)
    tombstoned |= {account for account, score in after if score is None}
    left = {f"acc-{number}" for number in range(5)}
    assert left <= published
    assert tombstoned == left, f"stale records never tombstoned: {sorted(left - tombstoned)}"


def test_a_live_change_after_a_takeover_is_not_queued_behind_every_restored_account(
) -> None:
    state = _partition_with_accounts(6)
    first = state.checkpoint(*TOPICS)
    assert first is not None
    assert len(first.score_changes) == 6
    moved = _restored_from(first)
    # Past the interval: the restored accounts are not deferred, each costs a score.
    moved.engine.apply(decoded(post("acc-new", "p1", 1_000.0)))
    checkpoint = moved.checkpoint(*TOPICS, rescore_at_most=2)
    assert checkpoint is not None
    # A brand-new account must be published now, not after len(accounts) / allowance
    # checkpoints (hours for a large partition at the default share).
    assert "acc-new" in [account for account, _ in checkpoint.score_changes]


def test_the_allowance_after_a_long_stall_does_not_block_the_loop_for_long() -> None:
    # The loop was stalled for 5 minutes (broker timeouts, a long batch): the next
    # checkpoint may not spend share x 300 s = 30 s re-scoring synchronously, three
    # session timeouts (ENGAGEMENT_SESSION_TIMEOUT_S=10) with the loop blocked.
    budget = RescoreBudget(share=0.1, commit_interval_s=1.0, first_cost_s=100e-6)
    blocked_s = budget.allowances(300.0, {0: 10**9})[0] * budget.cost_s
    assert blocked_s <= RescoreBudget.MOST_BLOCK_S + 1e-9  # a partition at a time


def test_what_waits_travels_in_the_changelog_and_the_local_snapshot_and_only_that() -> None:
    state = _partition_with_accounts(5)
    first = state.checkpoint(*TOPICS, rescore_at_most=2)
    assert first is not None
    emitted = {account for account, _ in first.score_changes}
    waiting = {f"acc-{number}" for number in range(5)} - emitted
    moved = _restored_from(first)
    assert moved.rescores_pending == 3
    assert {account for account, _ in moved.score_changes(10)[0]} == waiting
    from_snapshot = PartitionState(0, engine_config(Settings()))
    from_snapshot.load_snapshot(state.snapshot_header(), state.packed_accounts())
    from_snapshot.finish_restore()
    assert from_snapshot.rescores_pending == 3
    # Once offered, the changelog says nothing waits any more.
    second = state.checkpoint(*TOPICS, rescore_at_most=10)
    assert second is not None
    assert _restored_from(first, second).rescores_pending == 0


def test_live_traffic_writes_no_gate_record_beyond_the_ones_emitted() -> None:
    state = _partition_with_accounts(5)
    checkpoint = state.checkpoint(*TOPICS)
    assert checkpoint is not None
    gate_records = [key for key, _ in checkpoint.changelog if key.startswith(b"!gate/")]
    assert len(gate_records) == len(checkpoint.score_changes) == 5


def _waiting_in_memory(state: PartitionState) -> set[str]:
    return {account for account in state._offered} | {
        account for account in state.engine.accounts if state.gate.holds(account)}


@pytest.mark.parametrize("seed", range(6))
def test_a_restore_waits_for_exactly_what_the_owner_has_waiting_after_failed_checkpoints_too(
    seed: int,
) -> None:
    """Account records say that their account waits, gate records say when it stops
    (or starts without a change): over random traffic, budgets and checkpoints that fail
    (given back, their records written with the next one), a state restored from what
    committed waits for the accounts the owner has waiting, no more, no fewer."""
    rng = random.Random(seed)
    state = PartitionState(0, engine_config(Settings().model_copy(
        update={"score_change_interval_s": 30.0})))
    committed: list[Checkpoint] = []
    clock = 0.0
    for _ in range(40):
        for _ in range(rng.randrange(0, 6)):
            clock += rng.random() * 20
            account = f"acc-{rng.randrange(12)}"
            state.engine.apply(decoded(
                post(account, "p1", clock) if rng.random() < 0.3 else
                interaction("like", account, "p1", f"u{rng.randrange(50)}", clock)))
        checkpoint = state.checkpoint(*TOPICS, rescore_at_most=rng.randrange(0, 4))
        if checkpoint is None:
            continue
        if rng.random() < 0.3:
            state.requeue_checkpoint(checkpoint)  # its transaction failed
            continue
        committed.append(checkpoint)
        restored = PartitionState(0, state.engine.config)
        for done in committed:
            for key, value in done.changelog:
                restored.apply_changelog(key, value)
        assert set(restored._marked) == _waiting_in_memory(state)


def test_a_changelog_written_with_a_gate_record_for_every_waiting_account_restores_as_written(
) -> None:
    """Session 5's checkpoints wrote `[None, None, None, true]` for each account left
    waiting, and `[tier, credibility, emitted_at, false]` once one was offered."""
    state = _partition_with_accounts(3)
    packed = dict(state.packed_accounts())
    records = [
        (b"acc-0", packed["acc-0"]), (b"!gate/acc-0", msgpack.packb([None, None, None, True])),
        (b"acc-1", packed["acc-1"]),
        (b"!gate/acc-1", msgpack.packb(["nano", 40.0, 100.0, False])),
        (b"acc-2", packed["acc-2"]), (b"!gate/acc-2", msgpack.packb(["nano", 40.0, 100.0, True])),
    ]
    restored = PartitionState(0, engine_config(Settings()))
    for key, value in records:
        restored.apply_changelog(key, value)
    assert list(restored._marked) == ["acc-0", "acc-2"]
    assert restored.gate.last("acc-0") is None
    assert restored.gate.last("acc-1") is not None
    restored.finish_restore()
    assert restored.rescores_pending == 2
