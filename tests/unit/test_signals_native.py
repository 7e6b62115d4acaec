"""The audience signals' two ends in compiled code (native/src/signals.rs) against the
Python reference, both ways:

- the actor side: `ActorActivity.observe_routed` packs each target partition's message
  of the signal topic as it judges; the reference (`observe_packed`, then
  `routing.partition_for` and `pack_signals` per target, what `PartitionState` did) must
  give the same messages byte for byte, in the same order, and the same statistics;
- the account side: `Engine.fold_signals` folds a message into hot accounts in place;
  `unpack_signals` and `Engine.apply_audience` per signal must leave every account the
  same (packed byte for byte), with the same versions, changed set, order of use in the
  store, engine counter and statistics."""

from __future__ import annotations

import dataclasses
import random
import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.engine import Engine, EngineConfig
from service.engine.account import Account
from service.engine.audience import (
    ActorActivity,
    ActorInteraction,
    AudienceSignal,
    RoutedSignals,
    pack_interactions,
    pack_signals,
    unpack_signals,
)
from service.engine.engine import NATIVE_SIGNALS_AVAILABLE
from service.partition_state import PartitionState
from service.routing import partition_for
from tests.unit.test_audience_native import (
    ACCOUNTS,
    ACTORS,
    Setting,
    moments,
    pack_v1,
    settings_of_activity,
)

pytestmark = pytest.mark.skipif(not NATIVE_SIGNALS_AVAILABLE, reason="native/ is not built")
engagement_native = pytest.importorskip("engagement_native")

DAY = 86_400.0
T0 = 1_764_000_000.0


def test_the_compiled_paths_are_selected_where_the_engine_folds_natively() -> None:
    assert Engine()._signal_fold is not None
    assert Engine(EngineConfig(native_fold=False))._signal_fold is None
    assert RoutedSignals().packed is not None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30) | st.sampled_from(ACCOUNTS), st.integers(1, 1_000))
def test_the_partition_of_an_account_is_kafkas(account_id: str, partitions: int) -> None:
    assert (engagement_native.partition_for(account_id, partitions)
            == partition_for(account_id, partitions))


# --- the actor side --------------------------------------------------------------------

def reference_routed(activity: ActorActivity, data: bytes, partitions: int,
                     out: RoutedSignals) -> int:
    """What `PartitionState.observe_actors` does on the reference path."""
    judged = activity.stats.observed
    for signal in activity.observe_packed(data):
        out.add(partition_for(signal.account_id, partitions), signal)
    return activity.stats.observed - judged


@st.composite
def routed_streams(draw: st.DrawFn) -> tuple[Setting, int, list[tuple[object, ...]]]:
    setting = draw(settings_of_activity)
    actors = draw(st.lists(st.sampled_from(ACTORS) | st.integers(0, 2**64 - 1), min_size=1,
                           max_size=8, unique=True))
    accounts = draw(st.lists(st.sampled_from(ACCOUNTS) | st.text(max_size=12), min_size=1,
                             max_size=12, unique=True))
    interactions = st.tuples(st.sampled_from(actors), st.sampled_from(accounts))
    at = moments(setting.bucket_s, draw(st.integers(0, 14)))
    operation = st.one_of(
        st.tuples(st.just("batch"), st.sampled_from([1, 2]),
                  st.lists(st.tuples(interactions, at), max_size=40)),
        st.tuples(st.just("take")),
    )
    partitions = draw(st.sampled_from([1, 2, 3, 6, 12, 64]))
    return setting, partitions, draw(st.lists(operation, min_size=1, max_size=20))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(routed_streams())
def test_the_actor_side_packs_the_reference_messages(
        stream: tuple[Setting, int, list[tuple[object, ...]]]) -> None:
    setting, partitions, operations = stream
    reference, compiled, python = (setting.activity(flag) for flag in (True, True, False))
    out_reference, out_python, out_compiled = RoutedSignals(), RoutedSignals(), RoutedSignals()
    for operation in [*operations, ("take",)]:
        if operation[0] == "batch":
            _, version, raw = operation
            records = [ActorInteraction(actor, account, moment)
                       for (actor, account), moment in raw]  # type: ignore[misc, union-attr]
            data = pack_v1(records) if version == 1 else pack_interactions(records)
            judged = compiled.observe_routed(data, partitions, out_compiled)
            assert judged == len(records)
            assert reference_routed(reference, data, partitions, out_reference) == judged
            assert reference_routed(python, data, partitions, out_python) == judged
            assert len(out_compiled) == len(out_reference)
            assert bool(out_compiled) == bool(out_reference)
        else:
            messages = out_compiled.take()
            assert messages == out_reference.take() == out_python.take()
            assert not out_compiled
        assert compiled.stats == reference.stats == python.stats
        assert compiled.snapshot() == reference.snapshot()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(routed_streams())
def test_a_replayed_batch_leaves_the_activity_of_the_reference(
        stream: tuple[Setting, int, list[tuple[object, ...]]]) -> None:
    """`replay_packed` (a restore, a standby): the activity and statistics that
    `observe_packed` leaves, without the signals."""
    setting, _, operations = stream
    reference, compiled, python = (setting.activity(flag) for flag in (True, True, False))
    for operation in operations:
        if operation[0] != "batch":
            continue
        _, version, raw = operation
        records = [ActorInteraction(actor, account, moment)
                   for (actor, account), moment in raw]  # type: ignore[misc, union-attr]
        data = pack_v1(records) if version == 1 else pack_interactions(records)
        assert compiled.replay_packed(data) == python.replay_packed(data) == len(records)
        reference.observe_packed(data)
        assert compiled.stats == reference.stats == python.stats
        assert compiled.snapshot() == reference.snapshot() == python.snapshot()


def test_a_big_batch_routes_as_the_reference_over_many_partitions() -> None:
    rng = random.Random(7)
    reference, compiled = ActorActivity(), ActorActivity()
    out_reference, out_compiled = RoutedSignals(), RoutedSignals()
    for round_ in range(3):
        records = [ActorInteraction(rng.getrandbits(64) if rng.random() < 0.3
                                    else rng.randrange(300), f"acc-{rng.randrange(5_000)}",
                                    T0 + round_ * DAY + rng.uniform(0, 6 * DAY))
                   for _ in range(20_000)]
        data = pack_interactions(records)
        compiled.observe_routed(data, 12, out_compiled)
        reference_routed(reference, data, 12, out_reference)
    messages = out_compiled.take()
    assert messages == out_reference.take()
    assert sorted(target for target, _ in messages) == list(range(12))
    assert compiled.stats == reference.stats


def test_a_batch_that_does_not_read_or_pack_is_refused_and_changes_nothing() -> None:
    compiled = ActorActivity()
    out = RoutedSignals()
    compiled.observe_routed(pack_interactions([ActorInteraction(1, "a", T0)]), 3, out)
    before, taken = compiled.snapshot(), len(out)
    # A bucket start past 64 bits: the reference's checkpoint could not pack its signal.
    far = pack_interactions([ActorInteraction(2, "b", T0),
                             ActorInteraction(3, "c", 2.0**64)])
    for data in (b"\x07", b"", far):
        with pytest.raises(ValueError, match="interaction batch"):
            compiled.observe_routed(data, 3, out)
    with pytest.raises(ValueError, match="partitions"):
        compiled.observe_routed(pack_interactions([]), 0, out)
    assert compiled.snapshot() == before
    assert len(out) == taken
    assert compiled.stats.observed == 1


def test_the_partition_state_produces_the_same_messages_either_way() -> None:
    rng = random.Random(3)
    states = [PartitionState(0, EngineConfig(native_fold=flag)) for flag in (True, False)]
    for _ in range(4):
        data = pack_interactions([ActorInteraction(rng.randrange(400), f"acc-{rng.randrange(90)}",
                                                   T0 + rng.uniform(0, 3 * DAY))
                                  for _ in range(2_000)])
        judged = {state.observe_actors(data, 6) for state in states}
        assert judged == {2_000}
    assert states[0].signals_out.packed  # the compiled path packed them
    checkpoints = [state.checkpoint("events", "actors", "signals") for state in states]
    assert checkpoints[0] is not None
    assert checkpoints[1] is not None
    assert checkpoints[0].produced == checkpoints[1].produced
    assert {topic for topic, *_ in checkpoints[0].produced} == {"signals"}
    assert not states[0].uncommitted
    assert not states[1].uncommitted


# --- the account side ------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Store:
    """Accounts of an engine, as drawn: each with its audience buckets, the first
    `hot` of the most recently used hot, the rest packed."""

    window_s: float
    hot: int
    accounts: tuple[tuple[str, tuple[tuple[int, int, int, int], ...]], ...]


def build(store: Store, native: bool) -> Engine:
    engine = Engine(EngineConfig(window_s=store.window_s, hot_accounts=max(1, store.hot),
                                 native_fold=native))
    for number, (account_id, buckets) in enumerate(store.accounts):
        account = Account(account_id, zlib.crc32(account_id.encode()) % 3)
        account.version = number
        for bucket, interactions, busy, farm in buckets:
            account.record_audience(bucket, interactions, busy, farm)
        engine.accounts.add(account)  # past the hot set, the least recently used is packed
    engine.changes = len(store.accounts)
    engine.accounts.drain_changed()
    return engine


IDS = ["acc-0", "acc-1", "acc-2", "b", "ü-ñ", "x" * 40, "", "z", "acc-10", "c-3"]
stores = st.builds(
    Store,
    window_s=st.sampled_from([30 * DAY, 6 * DAY, 6.0, 4.5, 1e-3]),
    hot=st.integers(0, 8),
    accounts=st.lists(st.tuples(st.sampled_from(IDS), st.lists(
        st.tuples(st.integers(-3, 12), st.integers(0, 50), st.integers(0, 9),
                  st.integers(0, 9)), max_size=5).map(tuple)),
        max_size=8, unique_by=lambda entry: entry[0]).map(tuple),
)


@st.composite
def signal_messages(draw: st.DrawFn, store: Store) -> list[AudienceSignal]:
    actor_bucket_s = store.window_s / 6
    known = [account_id for account_id, _ in store.accounts]
    ids = st.sampled_from([*known, "unknown", "ü"]) if known else st.sampled_from(IDS)
    starts = (st.integers(-4, 14).map(lambda bucket: bucket * actor_bucket_s)
              | st.integers(-2**40, 2**40).map(float)
              | st.sampled_from([0.0, -1.0, 1.5e15, -1.5e15]))  # past 9e18 buckets: Python's
    signal = st.builds(AudienceSignal, ids, starts.map(lambda start: float(int(start))),
                       st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
                       st.integers(0, 2**32 - 1))
    return draw(st.lists(signal, max_size=30))


def same_engine(compiled: Engine, reference: Engine) -> None:
    assert compiled.changes == reference.changes
    assert compiled.stats == reference.stats
    assert list(compiled.accounts.changed_folds().items()) == list(
        reference.accounts.changed_folds().items())
    assert compiled.accounts.hot_ids() == reference.accounts.hot_ids()  # order of use
    assert list(compiled.accounts.packed()) == list(reference.accounts.packed())
    for account_id in reference.accounts:
        held = reference.accounts.packed_one(account_id)
        assert compiled.accounts.packed_one(account_id) == held


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), stores)
def test_a_signal_message_folds_as_the_reference(data: st.DataObject, store: Store) -> None:
    compiled, reference = build(store, True), build(store, False)
    assert compiled._signal_fold is not None
    assert reference._signal_fold is None
    for _ in range(data.draw(st.integers(1, 3))):
        message = pack_signals(data.draw(signal_messages(store)))
        assert compiled.fold_signals(message) == reference.fold_signals(message)
        same_engine(compiled, reference)
        assert compiled.accounts.stats == reference.accounts.stats  # the same unpacks


def test_a_message_that_does_not_read_changes_nothing_and_raises_as_the_reference() -> None:
    store = Store(30 * DAY, 2, tuple((f"acc-{n}", ((3, 1, 0, 0),)) for n in range(4)))
    good = pack_signals([AudienceSignal(f"acc-{n}", 3 * 5 * DAY, 2, 1, 0) for n in range(4)])
    bad_utf8 = good[:-1] + b"\xff"
    other_version = b"\x02" + good[1:]
    for message in (good[:5 + 10], good[:3], other_version, bad_utf8, b""):
        compiled, reference = build(store, True), build(store, False)
        with pytest.raises((ValueError, struct.error)) as raised:
            reference.fold_signals(message)
        with pytest.raises(raised.type):
            compiled.fold_signals(message)
        same_engine(compiled, build(store, False))
    # The last id cut short reads short in the reference (a slice): folded alike.
    short = good[:-2]
    compiled, reference = build(store, True), build(store, False)
    assert compiled.fold_signals(short) == reference.fold_signals(short) == 4
    same_engine(compiled, reference)
    assert reference.stats.audience_signals_unmatched == 1  # "acc"


def test_many_signals_over_a_hot_set_fold_as_the_reference() -> None:
    rng = random.Random(5)
    store = Store(30 * DAY, 300, tuple((f"acc-{n}", ()) for n in range(1_000)))
    compiled, reference = build(store, True), build(store, False)
    bucket_s = 5 * DAY
    for _ in range(5):
        signals = [AudienceSignal(f"acc-{rng.randrange(1_100)}",
                                  float(rng.randrange(20) * bucket_s), rng.randrange(5),
                                  rng.randrange(3), rng.randrange(2)) for _ in range(3_000)]
        message = pack_signals(signals)
        assert compiled.fold_signals(message) == reference.fold_signals(message) == 3_000
        same_engine(compiled, reference)
    # A full hot set: signals for packed accounts folded into their bytes, none unpacked.
    assert compiled.accounts.stats.packed_folds > 1_000
    assert compiled.accounts.stats.unpacks == 0
    assert compiled.stats.audience_signals_unmatched > 100


def test_signals_bring_large_packed_accounts_into_a_full_hot_set_as_the_reference() -> None:
    rng = random.Random(6)
    store = Store(30 * DAY, 50, tuple(
        (f"acc-{n}", tuple((bucket, 1, 0, 0) for bucket in range(n % 9))) for n in range(300)))
    compiled, reference = build(store, True), build(store, False)
    for engine in (compiled, reference):
        engine.accounts.packed_fold_max_bytes = 70
    bucket_s = 5 * DAY
    signals = [AudienceSignal(f"acc-{rng.randrange(300)}", float(rng.randrange(20) * bucket_s),
                              1, 0, 0) for _ in range(3_000)]
    message = pack_signals(signals)
    assert compiled.fold_signals(message) == reference.fold_signals(message)
    same_engine(compiled, reference)
    assert compiled.accounts.stats == reference.accounts.stats
    assert compiled.accounts.stats.unpacks > 100
    assert compiled.accounts.stats.packed_folds > 100


def test_signals_of_one_account_and_bucket_add_up_until_the_checkpoint() -> None:
    """Each message judged gives a signal per account it touched: until the checkpoint
    takes them, one account and bucket keep one record, its counts the sum; a count past
    32 bits begins a new record, which the next signals of the key then add to."""
    out = RoutedSignals()
    out.add(1, AudienceSignal("a", 0.0, 3, 1, 0))
    out.add(1, AudienceSignal("b", 0.0, 1, 0, 0))
    out.add(1, AudienceSignal("a", 0.0, 2, 0, 1))
    out.add(1, AudienceSignal("a", 172_800.0, 1, 0, 0))  # another bucket
    out.add(2, AudienceSignal("a", 0.0, 1, 0, 0))  # another partition
    assert len(out) == 4
    messages = dict(out.take())
    assert unpack_signals(messages[1]) == [AudienceSignal("a", 0.0, 5, 1, 1),
                                           AudienceSignal("b", 0.0, 1, 0, 0),
                                           AudienceSignal("a", 172_800.0, 1, 0, 0)]
    assert unpack_signals(messages[2]) == [AudienceSignal("a", 0.0, 1, 0, 0)]
    assert not out
    most = 2**32 - 1
    out.add(0, AudienceSignal("a", 0.0, most - 1, 0, 0))
    out.add(0, AudienceSignal("a", 0.0, 2, 0, 0))  # past 32 bits: a record of its own
    out.add(0, AudienceSignal("a", 0.0, 3, 0, 0))
    assert unpack_signals(out.take()[0][1]) == [AudienceSignal("a", 0.0, most - 1, 0, 0),
                                                AudienceSignal("a", 0.0, 5, 0, 0)]


@given(st.lists(st.tuples(st.sampled_from([0, 1, 2]), st.sampled_from([0, 172_800, -172_800]),
                          st.sampled_from([0, 1, 7, 2**31, 2**32 - 2, 2**32 - 1]),
                          st.sampled_from([0, 1, 2**32 - 1]), st.sampled_from([0, 3]),
                          st.sampled_from(["a", "b", "acct-1", ""])), max_size=30))
def test_the_compiled_batches_add_up_as_the_reference(
        signals: list[tuple[int, int, int, int, int, str]]) -> None:
    """The same signals into `SignalBatches` and the reference `RoutedSignals`: the same
    messages, merges and 32-bit overflows included."""
    compiled, reference = engagement_native.SignalBatches(), RoutedSignals()
    for target, bucket, interactions, busy, farm_like, account_id in signals:
        compiled.add(target, bucket, interactions, busy, farm_like, account_id)
        reference.add(target, AudienceSignal(account_id, float(bucket), interactions, busy,
                                             farm_like))
    assert len(compiled) == len(reference)
    assert compiled.take() == reference.take()
