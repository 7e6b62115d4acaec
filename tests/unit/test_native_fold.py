"""The compiled batch fold (native/src/fold.rs, `Engine.fold_records`) against the Python
reference (`decode_event`, `Engine.apply`, `PartitionState.route_interaction`, one record
at a time): random streams folded both ways through the consumer's loop
(`consumer.fold_records`) must leave the same state, byte for byte.

The streams mix interactions, posts, follower counts, re-sends, late events, invalid
messages and interactions in unusual forms; a hot set of two accounts and an account cap
(unpacks, packs, evictions), few posts per account (a post evicted), many actors (sketches
past their exact capacity), a short window (several actor buckets, expiry of dedupe
hours) and a small dedupe cap (the memory's oldest hour forgotten)."""

from __future__ import annotations

import dataclasses
import random
import struct
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import msgpack
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service import consumer, events, fetched_records
from service.consumer import fold_records
from service.dead_letter import DeadLetter
from service.engine import Engine, EngineConfig, dedupe, packing
from service.engine.account import Account
from service.engine.audience import AudienceSignal, InteractionBatch, pack_signals
from service.engine.engine import FOLD_OUTCOMES, NATIVE_FOLD_AVAILABLE
from service.engine.store import AccountStore
from service.partition_state import PartitionState
from service.responses import score_json
from service.settings import Settings
from tests.events import T0, at, decoded
from tests.unit import test_replay_golden as golden
from tests.unit.record_batches import record_batch

pytestmark = pytest.mark.skipif(not NATIVE_FOLD_AVAILABLE, reason="native/ is not built")
FetchedRecords = fetched_records.FetchedRecords

PARTITION = 1
PARTITIONS = 3
NOW = 2e9
HOUR = 3_600.0


@dataclass(frozen=True)
class Record:
    """What the consumer reads of a record as fetched (service/fetched_records.py)."""

    key: bytes | None
    value: bytes | None
    offset: int
    timestamp: int = 0
    headers: tuple[tuple[str, bytes | None], ...] = ()


def stream(seed: int, length: int, accounts: int, actors: int, pace: float = 1.0,
           followers: float = 0.0) -> list[Record]:
    """`pace` scales the gaps between events: small, many events share an actor bucket
    (sketches fill past their exact capacity). `followers`: the share of events that are
    follower counts besides the usual mix (histories long enough to be thinned)."""
    rng = random.Random(seed)
    account_ids = [f"acct-{number}" for number in range(accounts)]
    moment = rng.uniform(0, 10 * HOUR)
    sent: list[Record] = []
    records: list[Record] = []

    def add(key: bytes | None, value: bytes | None) -> None:
        records.append(Record(key, value, len(records) + 1_000))

    for _ in range(length):
        moment += pace * rng.choice((0.0, 0.5, 7.0, 120.0, 0.3 * HOUR, 2 * HOUR))
        account = rng.choice(account_ids)
        roll = rng.random()
        if rng.random() < followers:
            roll = 0.80
        # Mostly live; some a while back (a backfill), some past the horizon (late).
        when = moment - rng.choice((0.0,) * 12 + (5 * HOUR, 30 * HOUR, 200 * HOUR))
        post_id = f"{account}-p{rng.randrange(6)}"
        if roll < 0.70:
            event: dict[str, Any] = {
                "event_id": f"e{len(records)}", "type": rng.choice(("like", "like", "comment",
                                                                    "share")),
                "account_id": account, "post_id": post_id,
                "actor_id": f"actor-{rng.randrange(actors)}", "occurred_at": at(when)}
        elif roll < 0.78:
            event = {"event_id": f"e{len(records)}", "type": "post", "account_id": account,
                     "post_id": post_id, "sponsored": rng.random() < 0.2,
                     "topics": rng.choice(([], ["travel"], ["travel", "food"], ["x" * 64])),
                     "occurred_at": at(when)}
        elif roll < 0.82:
            event = {"event_id": f"e{len(records)}", "type": "followers",
                     "account_id": account, "followers": rng.randrange(10_000),
                     "occurred_at": at(when)}
        elif roll < 0.90 and sent:
            again = rng.choice(sent)  # a re-send
            add(again.key, again.value)
            continue
        elif roll < 0.93:
            add(account.encode(), rng.choice((b"{", b"null", b"[]", b'{"type": "like"}',
                                              b"\xff\xfe", None)))
            continue
        elif roll < 0.95:  # a key that is not the account
            event = {"event_id": f"e{len(records)}", "type": "like", "account_id": account,
                     "post_id": post_id, "actor_id": "a", "occurred_at": at(when)}
            add(b"someone-else", orjson.dumps(event))
            continue
        else:  # valid forms the compiled decoders may or may not take
            event = {"occurred_at": at(when).replace("Z", "+00:00"), "type": "share",
                     "account_id": account, "post_id": post_id, "actor_id": "act\u00e9",
                     "event_id": f"e{len(records)}", "extra": [1, {"x": None}]}
            add(account.encode(), b" " + orjson.dumps(event, option=orjson.OPT_INDENT_2))
            continue
        add(account.encode(), orjson.dumps(event))
        sent.append(records[-1])
    return records


def config(native: bool) -> EngineConfig:
    return EngineConfig(window_s=1 * 86_400.0, allowed_lateness_s=6 * HOUR, hot_accounts=2,
                        max_accounts=6, max_posts_per_account=4, max_event_ids=120,
                        native_fold=native, native_scoring=native)


CHECKPOINT_EVERY = 50


def fold(records: list[Record], native: bool, budget_s: float, compiled_dedupe: bool = True,
         packed_fold_max_bytes: int | None = None, in_place: bool = False
         ) -> tuple[PartitionState, Counter[tuple[str, str]], list[DeadLetter],
                    list[tuple[str, bytes | None]]]:
    """The reference (`native` off) decodes in Python too (msgspec and the contract).
    Every `CHECKPOINT_EVERY` records the changed accounts are drained as a checkpoint
    drains them (the quiet small hot ones left packed, the packed folds' allowance
    renewed); what the drains gave is returned last. `packed_fold_max_bytes`: a
    smaller allowance, so that events bring packed accounts into the hot set sooner.
    `in_place`: each chunk fetched as a Kafka record batch read in place
    (native/src/records.rs), as the consumer gets it."""
    dedupe.use_compiled(compiled_dedupe)
    try:
        state = PartitionState(PARTITION, config(native))
    finally:
        dedupe.use_compiled(True)
    if packed_fold_max_bytes is not None:
        state.engine.accounts.packed_fold_max_bytes = packed_fold_max_bytes
    assert state.clock.event_ids.compiled is (compiled_dedupe and dedupe.COMPILED_AVAILABLE)
    assert state.engine.folds_natively is native
    outcomes: Counter[tuple[str, str]] = Counter()
    rejected: list[DeadLetter] = []
    service_settings = Settings()
    index = 0
    events.use_native(native)
    drained: list[tuple[str, bytes | None]] = []
    try:
        for start in range(0, len(records), CHECKPOINT_EVERY):
            chunk: Sequence[Any] = records[start : start + CHECKPOINT_EVERY]
            if in_place:
                fetched = FetchedRecords.read(record_batch(
                    [(r.offset, 0, r.key, r.value, r.headers) for r in chunk]), chunk[0].offset)
                assert fetched is not None
                chunk = fetched
            index = 0
            while index < len(chunk):
                index = fold_records(state, chunk, index, settings=service_settings, now=NOW,
                                     partitions=PARTITIONS, budget_s=budget_s,
                                     outcomes=outcomes, rejected=rejected)
            if start + CHECKPOINT_EVERY < len(records):
                drained += sorted(state.engine.accounts.drain_packed())
    finally:
        events.use_native(True)
    return state, outcomes, rejected, drained


def observed(state: PartitionState, outcomes: Counter[tuple[str, str]],
             rejected: list[DeadLetter], drained: list[tuple[str, bytes | None]]
             ) -> dict[str, Any]:
    """Everything the fold may change, in comparable form."""
    engine = state.engine
    clock = state.clock
    store = engine.accounts
    return {
        "accounts": list(store.packed()),  # every account packed, in activity order
        "hot": store.hot_ids(),
        "changed": list(store.changed_folds().items()),  # with the folds since the checkpoint
        "drained": drained,
        "store": dataclasses.asdict(store.stats),  # unpacks, events folded packed
        "count": len(store),
        "changes": engine.changes,
        "event_ids": engine.remembered_event_ids,
        "stats": dataclasses.asdict(engine.stats),
        "stream_time": clock.stream_time,
        "dedupe": clock.event_ids.export(),
        "dedupe_floor": clock.event_ids.floor_hour,
        "dedupe_added": clock.event_ids.drain_added(),
        "dedupe_retired": clock.event_ids.drain_retired(),
        "routed": {target: batch.to_bytes()
                   for target, batch in sorted(state.interactions_out.items())},
        "position": state.position,
        "outcomes": dict(outcomes),
        "rejected": [(letter.record.offset, letter.rejection) for letter in rejected],
    }


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32), length=st.integers(1, 700), accounts=st.integers(1, 9),
       actors=st.sampled_from((3, 40, 500)), pace=st.sampled_from((1.0, 0.02)),
       budget_s=st.sampled_from((1e9, 0.0)), compiled_dedupe=st.booleans(),
       followers=st.sampled_from((0.0, 0.0, 0.5)),
       packed_fold_max_bytes=st.sampled_from((None, None, 150, 400, 900, 2**20)),
       in_place=st.booleans())
def test_the_compiled_fold_leaves_the_state_the_reference_does(
        seed: int, length: int, accounts: int, actors: int, pace: float, budget_s: float,
        compiled_dedupe: bool, followers: float, packed_fold_max_bytes: int | None,
        in_place: bool) -> None:
    """The reference: Python's fold with the reference dedupe memory; the compiled fold
    with either dedupe memory (the compiled one is reached without Python), from records
    or from a record batch read in place."""
    records = stream(seed, length, accounts, actors, pace, followers)
    native = observed(*fold(records, True, budget_s, compiled_dedupe, packed_fold_max_bytes,
                            in_place))
    reference = observed(*fold(records, False, 1e9, compiled_dedupe=False,
                               packed_fold_max_bytes=packed_fold_max_bytes))
    for name, value in reference.items():
        assert native[name] == value, name


@pytest.mark.parametrize("in_place", [False, True])
def test_a_long_stream_is_mostly_folded_natively_and_agrees(
        monkeypatch: pytest.MonkeyPatch, in_place: bool) -> None:
    """Not a stream of stops: most records are folded without Python (else the comparison
    above would prove little), from records or read in place, and the states still
    agree."""
    records = stream(7, 3_000, 5, 40, pace=0.05)
    by_python = 0
    python_fold = consumer._fold_one

    def counted(*arguments: Any) -> None:
        nonlocal by_python
        by_python += 1
        python_fold(*arguments)

    from service.engine.compiled_store import CompiledAccountStore

    monkeypatch.setattr(consumer, "_fold_one", counted)
    put_back_calls = 0
    for store_class in (AccountStore, CompiledAccountStore):
        def counted_put_back(store: Any, account: Account,
                             put_back: Any = store_class.put_back) -> None:
            nonlocal put_back_calls
            put_back_calls += 1
            put_back(store, account)

        monkeypatch.setattr(store_class, "put_back", counted_put_back)
    native = observed(*fold(records, True, 1e9, in_place=in_place))
    assert by_python < 0.4 * len(records)
    # Events for packed accounts of a full hot set folded into their bytes in compiled
    # code: none went through the copy that Python's fold makes and hands back.
    packed_folds = native["store"]["packed_folds"]
    assert packed_folds > 300
    assert put_back_calls < packed_folds // 10
    put_back_calls = 0
    reference = observed(*fold(records, False, 1e9))
    assert by_python > 0.4 * len(records)
    assert put_back_calls == packed_folds
    assert native == reference
    assert reference["outcomes"][("like", "counted")] > 500


def test_sketches_past_their_capacity_fold_packed_as_the_reference() -> None:
    """Four accounts and an allowance none of them spends: after the first checkpoint
    every event reaches an account that stays packed, and many of its sketches count past
    their exact capacity (Space-Saving's evictions and errors, the HyperLogLog) in the
    bytes themselves."""
    records = stream(5, 3_000, 4, 500, pace=0.02)
    folded = fold(records, True, 1e9, packed_fold_max_bytes=2**20)
    state = folded[0]
    native = observed(*folded)
    assert native["store"]["packed_folds"] > 1_500
    past_capacity = sum(1 for account_id, held in state.engine.accounts.packed()
                        for sketch in packing.unpack(account_id, held).actors
                        if sketch.errors)
    assert past_capacity > 10
    assert native == observed(*fold(records, False, 1e9, packed_fold_max_bytes=2**20))


def test_an_event_brings_a_busy_packed_account_into_the_hot_set_as_the_reference(
        ) -> None:
    """Accounts of ~6 KiB with ~12 events per checkpoint, a hot set of two: an event past
    the allowance unpacks its account and packs another one out, and a checkpoint leaves
    an account that took one event packed; both ways alike."""
    records = stream(5, 3_000, 4, 500, pace=0.02)
    native = observed(*fold(records, True, 1e9))
    assert native["store"]["packed_folds"] > 100
    assert native["store"]["unpacks"] > 500
    assert native["store"]["packed_out"] > 500
    assert native == observed(*fold(records, False, 1e9))


def fold_one_record(state: PartitionState, record: Record) -> None:
    fold_records(state, [record], 0, settings=Settings(), now=NOW, partitions=PARTITIONS,
                 budget_s=1e9, outcomes=Counter(), rejected=[])


def test_the_packed_folds_allowance_ends_at_the_same_byte_both_ways() -> None:
    """Likes from one actor leave an account's packed size the same, so an allowance of
    exactly three folds of that size admits the third and makes the account hot at the
    fourth, in the compiled fold as in the reference."""
    def like(n: int) -> Record:
        return Record(b"acct-0", orjson.dumps({
            "event_id": f"e{n}", "type": "like", "account_id": "acct-0", "post_id": "p",
            "actor_id": "a", "occurred_at": at(1_000.0 + n)}), n + 1)

    seen = []
    for native in (True, False):
        state = PartitionState(PARTITION, config(native))
        accounts = state.engine.accounts
        events.use_native(native)
        fold_one = partial(fold_one_record, state)
        try:
            fold_one(Record(b"acct-0", orjson.dumps({
                "event_id": "p", "type": "post", "account_id": "acct-0", "post_id": "p",
                "sponsored": False, "topics": [], "occurred_at": at(1_000.0)}), 0))
            fold_one(like(0))
            size = len(dict(accounts.drain_packed())["acct-0"] or b"")
            accounts.packed_fold_max_bytes = 3 * size
            for n in range(1, 4):
                fold_one(like(n))
            assert (accounts.stats.packed_folds, accounts.stats.unpacks, accounts.hot) == (
                3, 0, 0)
            fold_one(like(4))
            assert (accounts.stats.packed_folds, accounts.stats.unpacks, accounts.hot) == (
                3, 1, 1)
        finally:
            events.use_native(True)
        seen.append(list(accounts.packed()))
    assert seen[0] == seen[1]


@pytest.mark.parametrize("body", [
    b"\x93\x90\xdd\xff\xff\xff\xfe",  # followers: 2**32 - 2 values claimed, none there
    b"\x93\xdd\xff\xff\xff\xf0",  # posts: likewise
])
def test_a_corrupt_packed_account_raises_as_the_reference_without_folding(body: bytes) -> None:
    """Bytes the compiled reader cannot read go the Python way, which raises: a length
    in corrupt bytes must not make the compiled reader ask for gigabytes (that aborts the
    process) or fold anything."""
    account = Account("acct-0", PARTITION)
    account.touch(1_000.0, 1)
    corrupt = packing.pack(account)[:44] + body
    like = Record(b"acct-0", orjson.dumps({
        "event_id": "e1", "type": "like", "account_id": "acct-0", "post_id": "p",
        "actor_id": "a", "occurred_at": at(1_000.0)}), 1)
    for native in (True, False):
        state = PartitionState(PARTITION, config(native))
        state.engine.accounts.add(Account("acct-hot", PARTITION))
        state.engine.accounts.hot_capacity = 1
        state.engine.accounts.restore([("acct-0", corrupt)])
        events.use_native(native)
        try:
            with pytest.raises(ValueError, match="truncated"):
                fold_records(state, [like], 0, settings=Settings(), now=NOW,
                             partitions=PARTITIONS, budget_s=1e9, outcomes=Counter(),
                             rejected=[])
        finally:
            events.use_native(True)
        assert state.engine.accounts.packed_one("acct-0") == corrupt
        assert state.engine.accounts.stats.packed_folds == 0


class Raw(bytes):
    """msgpack bytes written as they are."""


class Long(list[Any]):
    """An array written with a 16-bit length, whatever its length."""


def encode(value: Any) -> bytes:
    """msgpack as `packing` writes it, but for the `Raw` and `Long` parts."""
    if isinstance(value, Raw):
        return bytes(value)
    if isinstance(value, list):
        length = len(value)
        head = (b"\xdc" + length.to_bytes(2, "big") if isinstance(value, Long)
                else bytes([0x90 | length]) if length < 16
                else b"\xdc" + length.to_bytes(2, "big"))
        return head + b"".join(encode(item) for item in value)
    packed: bytes = msgpack.packb(value)
    return packed


def account_of_every_part(like_at: float) -> Account:
    """Every part a packed fold of a like at `like_at` copies: a post with a topic and one
    known only from its interactions (pending times), follower counts, a sketch past its
    capacity (errors, registers) two buckets earlier and an exact one in the like's,
    and an audience signal."""
    bucket_s = config(False).actor_bucket_s
    older = like_at - 2 * bucket_s
    account = Account("acct-0", PARTITION)
    account.record_post("p0", older, False, ("travel",), 30.0, 4)
    for step in range(3):  # the second the oldest time the header's settled_from takes in
        account.record_followers(older - 100 + step, 300 + step)
    for step in range(40):
        account.record_interaction("like", "p0", older + step, 1 + 7 * step,
                                   int(older // bucket_s), 30.0, 4)
    account.record_interaction("comment", "p1", like_at - 5, 2**63 + 5,
                               int(like_at // bucket_s), 30.0, 4)
    account.record_audience(int(older // bucket_s), 3, 1, 0)
    account.touch(like_at - 5, 7)
    return account


def _set(path: tuple[int, ...], part: Any) -> Any:
    def change(tree: list[Any]) -> None:
        *within, last = path
        for index in within:
            tree = tree[index]
        tree[last] = part(tree[last]) if callable(part) else part
    return change


def _without_audience(tree: list[Any]) -> None:
    del tree[3]


# Each the account's bytes with one part in a form msgpack reads but `packing` does not
# write: a packed fold must not copy it (the reference writes it in its own form).
OTHER_FORMS = {
    "as written": None,
    "as written, without an audience": _without_audience,
    "a stale header": "header",
    "a count in a longer form": _set((1, 3), Raw(b"\xce\x00\x00\x01\x2c")),
    "a count in a signed form": _set((1, 3), Raw(b"\xd1\x01\x2c")),
    "a short string as str8": _set((0, 4, 0), Raw(b"\xd9\x06travel")),
    "a short array as array16": _set((0, 4), Long),
    "an empty audience": _set((3,), []),
    "empty errors": _set((2, 0, 3), []),
    "registers as bin32": _set((2, 0, 4), lambda registers: Raw(
        b"\xc6" + len(registers).to_bytes(4, "big") + registers)),
    "an actor in a longer form": _set((2, 0, 2, 0), Raw(b"\xcf" + (1).to_bytes(8, "big"))),
    "a time as float32": _set((0, 19, 0), Raw(b"\xca" + struct.pack(">f", 1024.0))),
}


@pytest.mark.parametrize("event", ["like on p0", "like on p1", "signal, known bucket",
                                   "signal, new bucket"])
@pytest.mark.parametrize("form", sorted(OTHER_FORMS))
def test_an_event_folds_packed_as_the_reference_whatever_form_the_bytes_hold(
        form: str, event: str) -> None:
    """The compiled folds rewrite only what a like or an audience signal changes and copy
    the rest (patch.rs): bytes in any form the reference reads, on a post with and
    without its time, give the reference's bytes; those in `packing`'s form without
    unpacking anything."""
    like_at = T0.timestamp() + 1_000_000.0
    packed = packing.pack(account_of_every_part(like_at))
    tree = msgpack.unpackb(packed[44:])
    change = OTHER_FORMS[form]
    if change == "header":
        packed = packed[:12] + bytes(8) + packed[20:28] + bytes(16) + packed[44:]
    elif change is not None:
        assert callable(change)
        change(tree)
        packed = packed[:44] + encode(tree)
        assert msgpack.unpackb(packed[44:]) is not None
    like = Record(b"acct-0", orjson.dumps({
        "event_id": "e1", "type": "like", "account_id": "acct-0", "post_id": event[-2:],
        "actor_id": "a", "occurred_at": at(1_000_000.0)}), 1)
    bucket_s = config(False).actor_bucket_s
    bucket = like_at // bucket_s - (2 if event.endswith("known bucket") else 1)
    signal = pack_signals([AudienceSignal("acct-0", bucket * bucket_s, 4, 1, 2)])
    seen = []
    for native in (True, False):
        state = PartitionState(PARTITION, config(native))
        accounts = state.engine.accounts
        accounts.add(Account("acct-hot", PARTITION))
        accounts.hot_capacity = 1
        accounts.restore([("acct-0", packed)])
        events.use_native(native)
        try:
            if event.startswith("like"):
                fold_records(state, [like], 0, settings=Settings(), now=NOW,
                             partitions=PARTITIONS, budget_s=1e9, outcomes=Counter(),
                             rejected=[])
            else:
                assert state.engine.fold_signals(signal) == 1
        finally:
            events.use_native(True)
        seen.append((list(accounts.packed()), accounts.stats.unpacks))
    assert seen[0] == seen[1]
    (first_id, first_bytes), _ = seen[0][0]
    assert first_id == "acct-0"
    assert first_bytes != packed
    if form.startswith("as written"):
        assert seen[0][1] == 0


def test_posts_and_follower_counts_are_folded_natively_and_agree(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Posts (new, after their interactions, announced twice, past the account's cap) and
    follower counts (in order, out of order, past the history's limit) in the usual forms
    never reach Python's fold of a record, and the states agree; the reference folds them
    all in Python."""
    records = stream(11, 4_000, 4, 40, pace=0.05, followers=0.3)
    kinds = Counter(orjson.loads(record.value)["type"] for record in records
                    if record.value is not None and record.value.startswith(b'{"'))
    assert kinds["post"] > 150
    assert kinds["followers"] > 1_000  # over 4 accounts: histories past their limit
    by_python: Counter[str] = Counter()
    python_fold = consumer._fold_one

    def counted(state: PartitionState, record: Record, *arguments: Any) -> None:
        if record.value is not None and record.value.startswith(b'{"'):
            by_python[orjson.loads(record.value).get("type")] += 1
        python_fold(state, record, *arguments)

    monkeypatch.setattr(consumer, "_fold_one", counted)
    # The rare steps the compiled fold leaves to the account's methods.
    rare: Counter[str] = Counter()
    for name in ("record_followers", "_new_post"):
        method = getattr(Account, name)

        def calling(*arguments: Any, name: str = name, method: Any = method) -> Any:
            rare[name] += 1
            return method(*arguments)

        monkeypatch.setattr(Account, name, calling)
    native = observed(*fold(records, True, 1e9))
    assert by_python["post"] == by_python["followers"] == 0
    assert 0 < rare["record_followers"] < kinds["followers"] // 2
    assert rare["_new_post"] > 0
    reference = observed(*fold(records, False, 1e9))
    assert by_python["post"] == kinds["post"]
    assert by_python["followers"] == kinds["followers"]
    assert native == reference
    assert reference["outcomes"][("post", "counted")] > 100
    assert reference["outcomes"][("followers", "counted")] > 1_000
    assert reference["outcomes"][("post", "duplicate")] > 0  # re-sends


def apply_record(engine: Engine, partition: int, record: Record) -> None:
    """What the consumer does with a record the compiled fold leaves to Python (the
    golden stream holds only valid events)."""
    assert record.value is not None
    engine.apply(decoded(orjson.loads(record.value)), partition)


def test_the_golden_replay_through_the_compiled_fold_gives_the_recorded_answers() -> None:
    """tests/unit/test_replay_golden.py's stream and checkpoints, each partition's run of
    events handed to `Engine.fold_records` as Kafka records (what it leaves to Python
    applied as the consumer does): the same score bodies, byte for byte, as recorded."""
    events = golden.stream()
    engine = Engine(EngineConfig(window_s=5 * golden.DAY, hot_accounts=2,
                                 max_accounts=golden.MAX_ACCOUNTS))
    assert engine.folds_natively
    account_ids = sorted({event["account_id"] for event in events})
    step = len(events) // golden.CHECKPOINTS
    cuts = sorted({*range(step, len(events), step), len(events)})
    bodies: list[bytes] = []
    counts = [0] * len(FOLD_OUTCOMES)
    routes: dict[int, InteractionBatch] = {}
    start = 0
    for cut in cuts:
        chunk = events[start:cut]
        index = 0
        while index < len(chunk):  # runs of one partition
            partition = zlib.crc32(chunk[index]["account_id"].encode()) % 3
            end = index
            while (end < len(chunk)
                   and zlib.crc32(chunk[end]["account_id"].encode()) % 3 == partition):
                end += 1
            run = chunk[index:end]
            records = [Record(event["account_id"].encode(), orjson.dumps(event), offset)
                       for offset, event in enumerate(run)]
            position = 0
            while position < len(records):
                position = engine.fold_records(
                    records, position, partition, routes, 3, now=2e9, max_event_bytes=8192,
                    max_future_skew_s=300, budget_s=1e9, outcomes=counts,
                    otherwise=partial(apply_record, engine, partition))
            index = end
        start = cut
        engine.expire()
        for account_id in account_ids:
            score = engine.score(account_id)
            bodies.append(b"null" if score is None else score_json(score))
    assert sum(counts) > len(events) // 2  # most of the stream folded natively
    answers = b"\n".join(bodies) + b"\n"
    assert answers.splitlines() == golden.GOLDEN.read_bytes().splitlines()
