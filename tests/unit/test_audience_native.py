"""The compiled actor core (native/src/actors.rs) against the Python reference
(`ActorActivity` with `compiled=False`): the same random interaction streams give the same
verdicts, signals, statistics, snapshots and distinct-account estimates."""

from __future__ import annotations

import dataclasses
import random
import struct
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.engine import audience
from service.engine.audience import (
    ActorActivity,
    ActorInteraction,
    AudienceSignal,
    pack_interactions,
)
from tests.unit.malloc_in_use import malloc_in_use

engagement_native = pytest.importorskip("engagement_native")

T0 = 1_764_000_000.0
ACTORS = [0, 1, 2, 3, 2**63, 2**64 - 1, 0x9E3779B97F4A7C15, 12_345_678_901]
ACCOUNTS = ["acc-0", "acc-1", "acc-2", "b", "ü-ñ", "x" * 40, "acc-10", "acc-11", "", "z"]


def test_the_compiled_core_is_installed_and_selected() -> None:
    # `make install` builds it; without it the suite would test the reference twice.
    assert audience.COMPILED_AVAILABLE
    assert audience.compiled_in_use()
    assert ActorActivity().compiled
    assert not ActorActivity(compiled=False).compiled


@dataclass(frozen=True)
class Setting:
    bucket_s: float
    buckets: int
    busy_accounts: float
    farm_accounts: float
    max_actors: int
    rotating_accounts: int
    month_accounts: float
    month_slots: int
    month_span: int
    month_turnover: int

    def activity(self, compiled: bool) -> ActorActivity:
        return ActorActivity(self.bucket_s, self.buckets, self.busy_accounts,
                             self.farm_accounts, self.max_actors, self.rotating_accounts,
                             self.month_accounts, self.month_slots, self.month_span,
                             self.month_turnover, compiled=compiled)

    def both(self) -> tuple[ActorActivity, ActorActivity]:
        """The reference and the compiled core, alike."""
        return self.activity(False), self.activity(True)


settings_of_activity = st.builds(
    Setting,
    bucket_s=st.sampled_from([172_800.0, 3_600.0, 100.0, 0.75, 7_777.7]),
    buckets=st.integers(1, 5),
    busy_accounts=st.floats(0.5, 40.0),
    farm_accounts=st.floats(1.0, 300.0),  # past ~266: never by breadth alone
    max_actors=st.integers(1, 10),
    rotating_accounts=st.integers(1, 4),
    # Months of a few buckets, so that the streams (up to 14 buckets) slide them.
    month_accounts=st.floats(0.5, 40.0),
    month_slots=st.integers(1, 3),
    month_span=st.integers(1, 5),
    month_turnover=st.integers(0, 3),
)


@st.composite
def moments(draw: st.DrawFn, bucket_s: float, span: int) -> float:
    """Times a few buckets apart, on and just off bucket boundaries, forward and back."""
    bucket = draw(st.integers(0, span))
    within = draw(st.sampled_from([0.0, 0.5, 0.999_999]) | st.floats(0.0, 1.0))
    return T0 + (bucket + within) * bucket_s


@st.composite
def streams(draw: st.DrawFn) -> tuple[Setting, list[tuple[object, ...]]]:
    setting = draw(settings_of_activity)
    # Few actors in a few buckets: they come back, turn busy, rotate; many: eviction.
    actors = draw(st.lists(st.sampled_from(ACTORS), min_size=1, max_size=8, unique=True))
    interactions = st.tuples(st.sampled_from(actors), st.sampled_from(ACCOUNTS))
    at = moments(setting.bucket_s, draw(st.integers(0, 14)))
    operation = st.one_of(
        st.tuples(st.just("batch"), st.sampled_from([0, 1, 2]),  # 0: observe_batch
                  st.lists(st.tuples(interactions, at), max_size=40)),
        st.tuples(st.just("one"), interactions, at),
        st.tuples(st.just("expire"), at),
        st.tuples(st.just("restore"), st.booleans()),
    )
    return setting, draw(st.lists(operation, min_size=1, max_size=25))


def pack_v1(records: list[ActorInteraction]) -> bytes:
    """Version 1 of a batch (an account id per record), as the release before wrote it."""
    return struct.pack("<BI", 1, len(records)) + b"".join(
        struct.pack("<QdH", r.actor, r.occurred_at, len(r.account_id.encode()))
        + r.account_id.encode() for r in records)


def same_state(reference: ActorActivity, compiled: ActorActivity) -> None:
    assert compiled.stats == reference.stats
    assert len(compiled) == len(reference)
    assert compiled.snapshot() == reference.snapshot()
    for actor in ACTORS:
        assert compiled.distinct_accounts(actor) == reference.distinct_accounts(actor)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_the_compiled_core_judges_every_stream_as_the_reference(
        stream: tuple[Setting, list[tuple[object, ...]]]) -> None:
    setting, operations = stream
    reference, compiled = setting.both()
    for operation in operations:
        kind = operation[0]
        if kind == "batch":
            _, version, raw = operation
            records = [ActorInteraction(actor, account, at)
                       for (actor, account), at in raw]
            if version == 0:
                signals = reference.observe_batch(records)
                assert compiled.observe_batch(records) == signals
            else:
                data = pack_v1(records) if version == 1 else pack_interactions(records)
                signals = reference.observe_packed(data)
                assert compiled.observe_packed(data) == signals
            assert sum(s.interactions for s in signals) == len(records)
        elif kind == "one":
            _, (actor, account), at = operation
            assert (compiled.observe(actor, account, at)
                    == reference.observe(actor, account, at))
        elif kind == "expire":
            assert compiled.expire(operation[1]) == reference.expire(operation[1])
        else:
            # Each side's snapshot restored into the other: eviction order goes on alike.
            data = reference.snapshot()
            crossed = compiled.snapshot() if operation[1] else data
            stats = reference.stats
            reference, compiled = setting.both()
            reference.restore(crossed)
            compiled.restore(data)
            reference.stats, compiled.stats = stats, dataclasses.replace(stats)
        same_state(reference, compiled)


@settings(max_examples=300, deadline=None)
@given(st.floats(1.0, 4e9), st.floats(0.001, 1e6))
def test_an_interaction_falls_in_the_same_bucket_as_in_the_reference(
        occurred_at: float, bucket_s: float) -> None:
    if occurred_at // bucket_s >= 2**32:
        return
    reference, compiled = (ActorActivity(bucket_s, compiled=flag) for flag in (False, True))
    data = pack_interactions([ActorInteraction(7, "acc", occurred_at)])
    assert compiled.observe_packed(data) == reference.observe_packed(data)


def test_a_big_batch_over_a_few_buckets_gives_the_reference_signals() -> None:
    rng = random.Random(11)
    reference, compiled = ActorActivity(compiled=False), ActorActivity()
    for round_ in range(3):
        records = [ActorInteraction(rng.getrandbits(64) if rng.random() < 0.3
                                    else rng.randrange(300), f"acc-{rng.randrange(500)}",
                                    T0 + round_ * 86_400 + rng.uniform(0, 6 * 86_400))
                   for _ in range(20_000)]
        data = pack_interactions(records)
        assert compiled.observe_packed(data) == reference.observe_packed(data)
        same_state(reference, compiled)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_eviction_and_expiry_by_the_thousand_keep_the_reference_order(seed: int) -> None:
    """Past 1,024 evicted or expired actors the compiled core compacts its records and
    rebuilds its index: the order of first sight, and so of eviction, stays the same."""
    rng = random.Random(seed)
    reference, compiled = (ActorActivity(3_600.0, 4, 3.0, 12.0, 300, compiled=flag)
                           for flag in (False, True))
    pool = [rng.getrandbits(64) for _ in range(2_000)]
    at = T0
    for round_ in range(40):
        records = [ActorInteraction(rng.choice(pool), f"acc-{rng.randrange(50)}",
                                    at + rng.uniform(-7_200, 3_600)) for _ in range(500)]
        at += rng.uniform(0, 4_000)
        data = pack_interactions(records)
        assert compiled.observe_packed(data) == reference.observe_packed(data)
        if round_ % 7 == 6:
            assert compiled.expire(at) == reference.expire(at)
        same_state(reference, compiled)
    assert reference.stats.evicted_actors + reference.stats.expired_actors > 5_000


def test_a_batch_that_does_not_read_is_refused_and_changes_nothing() -> None:
    compiled = ActorActivity()
    good = pack_interactions([ActorInteraction(n, f"acc-{n}", T0) for n in range(10)])
    compiled.observe_packed(good)
    before = compiled.snapshot()
    bad_index = bytearray(good)
    struct.pack_into("<I", bad_index, len(good) - 4, 99)  # the last record's account
    timeless = pack_interactions([ActorInteraction(1, "a", T0),
                                  ActorInteraction(2, "b", float("inf"))])
    for data in (good[:-3], bytes(bad_index), timeless, b"\x07", b""):
        with pytest.raises(ValueError, match="interaction batch"):
            compiled.observe_packed(data)
    assert compiled.snapshot() == before
    assert compiled.stats.observed == 10


def test_an_interaction_before_1970_counts_as_too_old_and_judges_its_actor_ordinary() -> None:
    # Valid in the event contract; the reference would keep a negative state (and fail
    # to write its snapshot), the compiled core keeps its 32-bit bucket numbers.
    compiled = ActorActivity()
    bot = 99
    compiled.observe_batch([ActorInteraction(bot, f"acc-{n}", T0) for n in range(100)])
    old = -86_400.0 * 365
    signals = compiled.observe_batch([ActorInteraction(bot, "acc-0", old),
                                      ActorInteraction(3, "acc-1", old)])
    bucket_start = (old // 172_800.0) * 172_800.0
    assert signals == [AudienceSignal("acc-0", bucket_start, 1, 0, 0),
                       AudienceSignal("acc-1", bucket_start, 1, 0, 0)]
    assert compiled.stats.too_old == 2
    assert len(compiled) == 1
    assert compiled.observe(3, "acc-1", old) == 0
    assert compiled.stats.too_old == 3
    restored = ActorActivity()
    restored.restore(compiled.snapshot())
    assert restored.snapshot() == compiled.snapshot()


def test_memory_per_actor_of_the_compiled_core_stays_under_100_bytes() -> None:
    # Rust's allocations are not traced by tracemalloc: what the extension counts of its
    # own (the process's resident size moved with whatever else the suite had freed).
    rng = random.Random(4)
    actors = 200_000
    compiled = ActorActivity()
    hashes = [rng.getrandbits(64) for _ in range(actors)]
    before = malloc_in_use()
    for bucket in range(4):
        batch = audience.InteractionBatch()
        for actor in hashes:
            batch.add(actor, f"acc-{actor % 1000}", T0 + bucket * 172_800.0)
        data = batch.to_bytes()
        del batch
        compiled.observe_packed(data)
        del data
    used = malloc_in_use() - before
    assert len(compiled) == actors
    # The allocator counts the hash table's whole capacity (a power of two), also slots
    # never touched: ~91 bytes here, where the resident size said ~75 (and 85.7 at 1 M
    # actors, docs/benchmarks.md section 12).
    assert used / actors < 100, used / actors


def test_signals_are_the_reference_objects() -> None:
    compiled = ActorActivity()
    [signal] = compiled.observe_batch([ActorInteraction(1, "acc", T0)])
    assert type(signal) is AudienceSignal
    assert signal == AudienceSignal("acc", (T0 // 172_800.0) * 172_800.0, 1, 0, 0)
