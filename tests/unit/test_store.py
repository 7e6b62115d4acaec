"""Packed accounts: packing loses nothing, and a tiny hot set answers like a huge one."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from service.engine import Engine, EngineConfig, packing, store
from service.simulation import AUTHENTIC_MICRO, MEGA_LOW, POD_PUMPED, account_events
from tests.events import T0, decoded, followers, interaction, post

DAY = 86_400.0
PROFILES = {"authentic": AUTHENTIC_MICRO, "pod": POD_PUMPED, "mega": MEGA_LOW}


def interleaved_stream(seed: int) -> list[dict[str, Any]]:
    """Three kinds of account over 40 days, in event-time order; the mega account's
    audience outgrows the exact sketch, so Space-Saving and HyperLogLog state is packed."""
    rng = random.Random(seed)
    events = [event for name, profile in PROFILES.items()
              for event in account_events(name, profile, T0.timestamp(), 6 * DAY, rng)]
    events.sort(key=lambda event: event["occurred_at"])
    return events


def test_pack_then_unpack_gives_back_the_same_account() -> None:
    engine = Engine(EngineConfig(window_s=10 * DAY))
    for event in interleaved_stream(5):
        engine.apply(decoded(event))
    for account_id in PROFILES:
        account = engine.accounts.get(account_id)
        assert account is not None
        packed = packing.pack(account)
        again = packing.unpack(account_id, packed)
        assert packing.pack(again) == packed
        assert again.posts.keys() == account.posts.keys()
        assert again.followers == account.followers
        for mine, theirs in zip(again.actors, account.actors, strict=True):
            assert (mine.bucket, mine.interactions, mine.counts, mine.registers) == (
                theirs.bucket, theirs.interactions, theirs.counts, theirs.registers)
            # Order matters: Space-Saving evicts the first of equal minimum counters.
            assert list(mine.counts) == list(theirs.counts)
    assert not engine.accounts.get("mega").actors[-1].exact  # type: ignore[union-attr]


def test_a_hot_set_of_one_answers_exactly_like_an_unbounded_one() -> None:
    tiny = Engine(EngineConfig(window_s=10 * DAY, hot_accounts=1))
    roomy = Engine(EngineConfig(window_s=10 * DAY))
    for index, event in enumerate(interleaved_stream(6)):
        tiny.apply(decoded(event))
        roomy.apply(decoded(event))
        if index % 20 == 0:  # a checkpoint
            assert dict(tiny.accounts.drain_packed()) == dict(roomy.accounts.drain_packed())
        if index % 500 == 0:
            tiny.expire()
            roomy.expire()
            for account_id in PROFILES:
                assert tiny.score(account_id) == roomy.score(account_id)
    assert tiny.accounts.hot == 1
    assert tiny.accounts.stats.packed_folds > 1_000  # events folded where they lie
    assert tiny.accounts.stats.unpacks > 10  # queries
    assert tiny.stats == roomy.stats


def test_a_large_hot_set_gives_up_accounts_in_batches_and_answers_the_same() -> None:
    capacity = store.BATCHED_HOT_SETS
    batched = Engine(EngineConfig(window_s=10 * DAY, hot_accounts=capacity))
    roomy = Engine(EngineConfig(window_s=10 * DAY))
    rng = random.Random(7)
    stream = [followers(f"a-{n}", 100 + n, n) for n in range(3 * capacity)]
    stream += [interaction("like", f"a-{rng.randrange(3 * capacity)}", "p",
                           f"u-{rng.randrange(50)}", 10_000 + n) for n in range(6_000)]
    smallest = capacity  # once full
    for index, event in enumerate(map(decoded, stream)):
        batched.apply(event)
        roomy.apply(event)
        assert batched.accounts.hot <= capacity
        if index >= capacity:
            smallest = min(smallest, batched.accounts.hot)
    assert smallest == capacity - store.EVICTION_BATCH + 1
    assert batched.accounts.stats.packed_folds > 1_000
    for n in range(0, 3 * capacity, 97):
        assert batched.score(f"a-{n}") == roomy.score(f"a-{n}")
    assert dict(batched.accounts.packed()) == dict(roomy.accounts.packed())


def test_draining_packs_each_changed_account_as_packed_one_does() -> None:
    engine = Engine(EngineConfig(window_s=10 * DAY, hot_accounts=40))
    for index, event in enumerate(interleaved_stream(8)[:3_000]):
        engine.apply(decoded(event))
        engine.apply(decoded(followers(f"extra-{index % 100}", index, 10.0 * index)))
    engine.accounts.evict_least_active()  # one removed: drained as None
    changed = set(engine.accounts.changed_folds())
    expected = {account_id: engine.accounts.packed_one(account_id) for account_id in changed}
    assert None in expected.values()
    assert dict(engine.accounts.drain_packed()) == expected
    assert len(expected) > 2 * store.EVICTION_BATCH
    assert not engine.accounts.changed_count()
    assert engine.accounts.drain_packed() == []


def test_a_packed_account_folds_packed_until_its_allowance_is_spent_then_turns_hot() -> None:
    """However much room the hot set has: an event for a packed account is folded into
    its bytes while its folds since the last checkpoint, this one included, times its
    size stay within `packed_fold_max_bytes`; the next one makes it hot. A checkpoint's
    drain renews the allowance, and leaves a changed hot account packed if as many folds
    would have stayed packed."""
    engine = Engine(EngineConfig(window_s=10 * DAY, hot_accounts=1_000))
    accounts = engine.accounts
    engine.apply(decoded(post("a", "p", 1_000.0)))
    engine.apply(decoded(interaction("like", "a", "p", "fan", 1_000.0)))
    assert "a" in accounts.hot_ids()
    assert accounts.changed_folds() == {"a": 2}
    drained = dict(accounts.drain_packed())
    assert "a" not in accounts.hot_ids()  # two folds of a small account: left packed
    assert accounts.packed_one("a") == drained["a"]
    size = len(drained["a"] or b"")
    accounts.packed_fold_max_bytes = 3 * size  # three folds, the last one to the byte
    for n in range(3):
        assert len(accounts.packed_one("a") or b"") == size  # a repeated like: as long
        engine.apply(decoded(interaction("like", "a", "p", "fan", 1_001.0 + n)))
        assert accounts.changed_folds() == {"a": n + 1}
        assert "a" not in accounts.hot_ids()
    assert (accounts.stats.packed_folds, accounts.stats.unpacks) == (3, 0)
    engine.apply(decoded(interaction("like", "a", "p", "fan", 1_010.0)))
    assert "a" in accounts.hot_ids()  # the fourth would pass the allowance
    assert (accounts.stats.packed_folds, accounts.stats.unpacks) == (3, 1)
    accounts.drain_packed()
    assert "a" in accounts.hot_ids()  # four folds: packed, the fourth would have made it hot
    engine.apply(decoded(interaction("like", "a", "p", "fan", 1_011.0)))
    accounts.drain_packed()
    assert "a" not in accounts.hot_ids()  # one fold: left packed again
    engine.apply(decoded(interaction("like", "a", "p", "fan", 1_012.0)))
    assert (accounts.stats.packed_folds, accounts.stats.unpacks) == (4, 1)  # renewed
    assert engine.score("a") is not None  # a query makes it hot
    assert "a" in accounts.hot_ids()
    assert accounts.stats.unpacks == 2


def test_a_checkpoint_leaves_large_accounts_hot() -> None:
    """An account larger than the allowance stays hot at the drain, even after one
    event: packed, that event would have made it hot."""
    engine = Engine(EngineConfig(window_s=10 * DAY, hot_accounts=1_000))
    for n in range(120):
        engine.apply(decoded(interaction("like", "big", f"p{n}", f"fan-{n}", 1_000.0 + n)))
    engine.accounts.drain_packed()
    engine.apply(decoded(interaction("like", "big", "p0", "fan", 2_000.0)))
    engine.apply(decoded(interaction("like", "small", "p", "fan", 1_000.0)))
    drained = dict(engine.accounts.drain_packed())
    assert len(drained["big"] or b"") > engine.accounts.packed_fold_max_bytes
    assert len(drained["small"] or b"") < engine.accounts.packed_fold_max_bytes
    assert engine.accounts.hot_ids() == ["big"]


def test_expiry_of_packed_accounts_drops_what_it_drops_for_objects() -> None:
    tiny = Engine(EngineConfig(window_s=DAY, allowed_lateness_s=0, hot_accounts=1))
    roomy = Engine(EngineConfig(window_s=DAY, allowed_lateness_s=0))
    stream = [followers(f"quiet-{n}", 100 + n, n) for n in range(20)]
    stream += [post(f"quiet-{n}", "p", 60 + n) for n in range(20)]
    stream += [interaction("like", f"quiet-{n}", "p", "u", 120 + n) for n in range(20)]
    stream += [post("busy", f"p{day}", day * DAY) for day in range(1, 4)]
    for event in stream:
        tiny.apply(decoded(event))
        roomy.apply(decoded(event))
    assert tiny.expire() == roomy.expire() == 20
    assert set(tiny.accounts) == set(roomy.accounts) == {"busy"}
    assert tiny.score("busy") == roomy.score("busy")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["post", "like", "followers"]),
                          st.integers(0, 3), st.floats(0, 20 * DAY)), min_size=1),
       st.floats(-DAY, 25 * DAY), st.integers(-1, 30))
def test_the_header_verdict_on_expiry_is_right(
    actions: list[tuple[str, int, float]], horizon: float, first_live_bucket: int
) -> None:
    engine = Engine(EngineConfig(window_s=30 * DAY, allowed_lateness_s=30 * DAY))
    for kind, number, moment in actions:
        if kind == "post":
            engine.apply(decoded(post("acc", f"p{number}", moment)))
        elif kind == "like":
            engine.apply(decoded(interaction("like", "acc", f"p{number}", f"u{number}",
                                             moment)))
        else:
            engine.apply(decoded(followers("acc", 100 * number, moment)))
    account = engine.accounts.get("acc")
    assert account is not None
    packed = packing.pack(account)
    verdict = packing.expiry(packed, {0: (horizon, first_live_bucket)})
    left = account.expire(horizon, first_live_bucket)
    if verdict is packing.Expiry.NOTHING:
        assert left
        assert packing.pack(account) == packed
    elif verdict is packing.Expiry.EVERYTHING:
        assert not left


def test_a_sweep_slice_ends_after_its_budget_of_unpacked_accounts() -> None:
    engine = Engine(EngineConfig(window_s=DAY, allowed_lateness_s=0, hot_accounts=1))
    # Old posts, fresh follower counts: expiry changes part of each account.
    stream = [post(f"a{n}", "old", n) for n in range(10)]
    stream += [followers(f"a{n}", 10, 2 * DAY + n) for n in range(10)]
    for event in stream:
        engine.apply(decoded(event))
    engine.apply(decoded(followers("clock", 1, 2 * DAY + 100)))
    slices = list(engine.expire_in_slices(accounts_per_slice=100, opened_per_slice=3))
    assert len(slices) == 4  # 10 packed accounts opened, 3 per slice (the last with 1)
    assert sum(slices) == 0
    assert all(not engine.accounts.get(f"a{n}").posts for n in range(10))  # type: ignore[union-attr]
