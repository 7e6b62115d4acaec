"""The actor side of the cross-account audience signal. Pure; no I/O.

An account alone cannot tell a fan from a farm's bot: the difference is what the actor
does elsewhere. A fan comes back to the same few accounts; a bot of an engagement farm
or pod serves many accounts, and a farm rotates its customers (CopyCatch, Beutel et al.
2013: fraud shows as actors engaging with many of the same targets in a short time).

The actor view needs all accounts, while accounts are spread over partitions, so the
interactions are re-keyed by actor (`ActorInteraction`, like a Kafka Streams `groupBy`
into a repartition topic). `ActorActivity` keeps, per actor, the distinct accounts it
engaged with in a sliding period as a small bitmap per time bucket (linear counting,
Whang et al. 1990), and judges every interaction by its actor's breadth at that moment.
An actor is busy when it engaged with many accounts in the period, or over the month
with most of them before the period (a month view of two 16-day bitmaps: a bot moving
on to ever new customers, as few a week as a fan, is still caught), farm-like when with
very many, or when it keeps moving on to accounts it never comes back to (rotating: a
bot that serves as few accounts as a fan still has to change customers; a fan does
not). What it learns goes back keyed by account as `AudienceSignal`: "in this time
bucket, this account got N interactions, B of them from busy actors, F from farm-like
ones",
which the account side folds into its state (`Engine.apply_audience`). On Kafka both
travel in batches, one message per partition per consumer batch (`pack_interactions`,
`pack_signals`; `actor_partition` picks an actor's repartition partition).

Records are deltas, so the path is at-least-once with a bounded effect: a replayed
batch re-sends its signals, which count its interactions twice in N and in B and F alike
(the account's share of suspect interactions moves towards the replayed batch's share,
by at most the batch's size over the account's N); the actor bitmaps are idempotent.
Producing the signals and committing the repartition offsets in one Kafka transaction
makes it exactly-once.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from service.engine.sketches import actor_hash

try:
    import engagement_native
except ImportError:  # not built: the reference serves, slower (docs/benchmarks.md)
    engagement_native = None  # type: ignore[assignment]

DAY_S = 86_400.0
ACTIVITY_BUCKET_S = 2 * DAY_S
ACTIVITY_BUCKETS = 4  # the period is the newest bucket and the 3 before: 6 to 8 days
BITMAP_BITS = 64  # account_bit() takes the top 6 bits of a 64-bit word
# Distinct accounts in the period at which an actor counts as busy / farm-like. A fan of
# a niche engages with a stable handful of accounts: in the labelled set (bench/scoring.py)
# 95 % of real people engage with at most 8; power users (1 %) reach 20-45. Busy actors
# count half in the account's suspect share, so a few power users cost little.
BUSY_ACCOUNTS = 10.0
FARM_ACCOUNTS = 40.0
MAX_ACTORS = 2_000_000
# The month view: a bitmap per MONTH_SPAN_BUCKETS buckets (16 days), MONTH_SLOTS of them
# alternating, so their union covers the last 16 to 32 days. A person engages with a
# bounded set of accounts; a bot's set keeps growing as its farm moves it on, so an actor
# with >= MONTH_ACCOUNTS distinct accounts over the month is busy too, whatever its
# period (docs/scoring.md: the narrow docs reader's bots serve 3 accounts per 8 days,
# like people, and a median 13 distinct ones over the labelled set's month, where 90 %
# of people's interactions come from people with at most 9 ever). 10, the period's own
# busy mark: the month view sees 16-32 days, and a bot is judged at each interaction,
# before its set is complete (measured, with MONTH_TURNOVER 3: 11 or 12 left the
# ablation at 0.898, 13 at 0.796, 10 at 0.956; bench/scoring.py).
MONTH_SPAN_BUCKETS = 8
MONTH_SLOTS = 2
MONTH_ACCOUNTS = 10.0
# ... and at least MONTH_TURNOVER times its accounts in the period: a person of many
# accounts meets a good part of them in any period (and is busy by the period if they
# are many); a bot that moves on met most of its month's accounts before its period.
# 3, not 2: with 10 accounts over the month, 3 keeps the authentic accounts within 0.3
# points of credibility of the build before the month view (13 and 2 cost 0.9 and left
# unflagged sponsoring at 0.949); 4 lets the narrow docs reader's bots through (0.738).
MONTH_TURNOVER = 3
# Rotating: an actor active in at least ROTATING_ACTIVE_SLOTS of the period's buckets, at
# least ROTATING_ACCOUNTS of whose accounts, and three quarters, were met in one bucket
# only. A fan comes back; a bot as narrow as a fan still moves on from customer to
# customer (docs/scoring.md: the labelled set's narrow docs reader).
ROTATING_ACCOUNTS = 3
ROTATING_ACTIVE_SLOTS = 3
# An interaction's verdict: flags of its actor at that moment.
BUSY = 1
FARM_LIKE = 2

_BUCKET_BITS = 32
_BUCKET_MASK = (1 << _BUCKET_BITS) - 1
_SLOT_MASK = (1 << BITMAP_BITS) - 1
_FORMAT_VERSION = 1
_SIGNAL = struct.Struct("<BqIII")  # version, bucket_start, interactions, busy, farm_like
_INTERACTION = struct.Struct("<BQd")  # version, actor hash, occurred_at
_SNAPSHOT = struct.Struct("<BdI")  # version, bucket_s, buckets
# Version 2 adds the month view: its slots and their span in buckets, then per actor the
# month bitmaps after the period's. Version 1 (no month view) still loads.
_SNAPSHOT_V2 = 2
_SNAPSHOT_MONTH = struct.Struct("<II")  # month slots, month span in buckets


@dataclass(frozen=True, slots=True)
class ActorInteraction:
    """One interaction re-keyed by its actor: the repartition topic's record (its Kafka
    key is the actor id, so one instance sees all of an actor's interactions)."""

    actor: int  # actor_hash(actor_id)
    account_id: str
    occurred_at: float

    @classmethod
    def of(cls, actor_id: str, account_id: str, occurred_at: float) -> ActorInteraction:
        return cls(actor_hash(actor_id), account_id, occurred_at)

    def to_bytes(self) -> bytes:
        return (_INTERACTION.pack(_FORMAT_VERSION, self.actor, self.occurred_at)
                + self.account_id.encode())

    @classmethod
    def from_bytes(cls, data: bytes) -> ActorInteraction:
        version, actor, occurred_at = _INTERACTION.unpack_from(data)
        if version != _FORMAT_VERSION:
            raise ValueError(f"actor interaction of unknown version {version}")
        return cls(actor, data[_INTERACTION.size :].decode(), occurred_at)


@dataclass(frozen=True, slots=True)
class AudienceSignal:
    """What the actor side learned about one account in one time bucket, as a delta.
    Its Kafka key is the account id, so it reaches the instance that owns the account."""

    account_id: str
    bucket_start: float  # epoch seconds: start of the ACTIVITY_BUCKET_S bucket
    interactions: int
    busy: int  # of them, from actors with >= BUSY_ACCOUNTS distinct accounts in the period
    # of them, from actors with >= FARM_ACCOUNTS, or rotating (not a subset of `busy`)
    farm_like: int

    def to_bytes(self) -> bytes:
        return (_SIGNAL.pack(_FORMAT_VERSION, int(self.bucket_start), self.interactions,
                             self.busy, self.farm_like) + self.account_id.encode())

    @classmethod
    def from_bytes(cls, data: bytes) -> AudienceSignal:
        version, bucket_start, interactions, busy, farm_like = _SIGNAL.unpack_from(data)
        if version != _FORMAT_VERSION:
            raise ValueError(f"audience signal of unknown version {version}")
        return cls(data[_SIGNAL.size :].decode(), float(bucket_start), interactions, busy,
                   farm_like)


_BATCH = struct.Struct("<BI")  # version, records
_INTERACTION_IN_BATCH = struct.Struct("<QdH")  # actor hash, occurred_at, account id bytes
# Version 2 of an interaction batch: each distinct account id once, then fixed-size
# records that `struct.iter_unpack` reads in C (the repartition path's unpacking and
# packing were a quarter of its cost with an object per interaction).
_INTERACTIONS_V2 = 2
_BATCH_V2 = struct.Struct("<BII")  # version, records, distinct accounts
_ACCOUNT_LENGTH = struct.Struct("<H")
_RECORD = struct.Struct("<QdI")  # actor hash, occurred_at, index into the batch's accounts
_SIGNAL_IN_BATCH = struct.Struct("<qIIIH")  # bucket_start, counts, account id bytes
_MOST_COUNT = 2**32 - 1


def actor_partition(actor: int, partitions: int) -> int:
    """The repartition topic's partition of an actor: its 64-bit hash is uniform, so the
    remainder spreads actors evenly, and every instance computes the same one."""
    return actor % partitions


class RoutedBatch(Protocol):
    """What a checkpoint gathers for one repartition partition: `InteractionBatch`, or
    its compiled twin (`engagement_native.InteractionBatch`, native/src/routes.rs), which
    the compiled fold adds to without a Python dict lookup per interaction."""

    @property
    def count(self) -> int: ...

    def add(self, actor: int, account_id: str, occurred_at: float) -> None: ...

    def to_bytes(self) -> bytes: ...


class InteractionBatch:
    """Re-keyed interactions bound for one repartition partition, packed as they come
    (version 2): no object per interaction, and one Kafka message per checkpoint. The
    reference of the compiled batch."""

    __slots__ = ("_accounts", "_records", "count")

    def __init__(self) -> None:
        self._accounts: dict[str, int] = {}
        self._records = bytearray()
        self.count = 0

    def add(self, actor: int, account_id: str, occurred_at: float) -> None:
        accounts = self._accounts
        index = accounts.get(account_id)
        if index is None:
            index = accounts[account_id] = len(accounts)
        self._records += _RECORD.pack(actor, occurred_at, index)
        self.count += 1

    def to_bytes(self) -> bytes:
        ids = [account_id.encode() for account_id in self._accounts]
        table = b"".join(_ACCOUNT_LENGTH.pack(len(raw)) + raw for raw in ids)
        return (_BATCH_V2.pack(_INTERACTIONS_V2, self.count, len(ids)) + table
                + bytes(self._records))


def pack_interactions(records: Iterable[ActorInteraction]) -> bytes:
    """Many re-keyed interactions of one repartition partition as one Kafka message: a
    record per interaction would cost the producer more than the rest of the ingest."""
    batch = InteractionBatch()
    for record in records:
        batch.add(record.actor, record.account_id, record.occurred_at)
    return batch.to_bytes()


def read_interactions(data: bytes) -> tuple[list[str], Iterator[tuple[int, float, int]]]:
    """A batch's distinct account ids, and its records as (actor, occurred_at, index of
    the account id). Reads version 1 too (written before version 2 existed)."""
    version = data[0] if data else 0
    if version == _INTERACTIONS_V2:
        _, count, accounts = _BATCH_V2.unpack_from(data)
        offset = _BATCH_V2.size
        ids = []
        for _ in range(accounts):
            (length,) = _ACCOUNT_LENGTH.unpack_from(data, offset)
            offset += _ACCOUNT_LENGTH.size
            ids.append(data[offset : offset + length].decode())
            offset += length
        body = memoryview(data)[offset : offset + count * _RECORD.size]
        return ids, _RECORD.iter_unpack(body)
    if version == _FORMAT_VERSION:
        legacy = _unpack_interactions_v1(data)
        index: dict[str, int] = {}
        records = [(r.actor, r.occurred_at, index.setdefault(r.account_id, len(index)))
                   for r in legacy]
        return list(index), iter(records)
    raise ValueError(f"interaction batch of unknown version {version}")


def unpack_interactions(data: bytes) -> list[ActorInteraction]:
    ids, records = read_interactions(data)
    return [ActorInteraction(actor, ids[index], occurred_at)
            for actor, occurred_at, index in records]


def _unpack_interactions_v1(data: bytes) -> list[ActorInteraction]:
    _, count = _BATCH.unpack_from(data)
    records = []
    offset = _BATCH.size
    unpack = _INTERACTION_IN_BATCH.unpack_from
    size = _INTERACTION_IN_BATCH.size
    for _ in range(count):
        actor, occurred_at, length = unpack(data, offset)
        offset += size
        records.append(ActorInteraction(actor, data[offset : offset + length].decode(),
                                        occurred_at))
        offset += length
    return records


def pack_signals(signals: Iterable[AudienceSignal]) -> bytes:
    """Many signals for one partition of the signal topic as one Kafka message."""
    parts = []
    count = 0
    pack = _SIGNAL_IN_BATCH.pack
    for signal in signals:
        account = signal.account_id.encode()
        parts.append(pack(int(signal.bucket_start), signal.interactions, signal.busy,
                          signal.farm_like, len(account)))
        parts.append(account)
        count += 1
    return _BATCH.pack(_FORMAT_VERSION, count) + b"".join(parts)


def unpack_signals(data: bytes) -> list[AudienceSignal]:
    version, count = _BATCH.unpack_from(data)
    if version != _FORMAT_VERSION:
        raise ValueError(f"signal batch of unknown version {version}")
    signals = []
    offset = _BATCH.size
    unpack = _SIGNAL_IN_BATCH.unpack_from
    size = _SIGNAL_IN_BATCH.size
    for _ in range(count):
        bucket_start, interactions, busy, farm_like, length = unpack(data, offset)
        offset += size
        signals.append(AudienceSignal(data[offset : offset + length].decode(),
                                      float(bucket_start), interactions, busy, farm_like))
        offset += length
    return signals


class RoutedSignals:
    """Signals bound for the signal topic since the last checkpoint, by target partition:
    at the checkpoint one `pack_signals` message per partition, partitions and signals in
    the order they came. The reference keeps the signals (`add`) and packs them when the
    messages are taken; `packed` is filled by the compiled actor core
    (`ActorActivity.observe_routed`), which packs each signal as it is judged, the same
    bytes without a Python object per signal (native/src/signals.rs).

    A signal for an account and bucket that already has one adds its counts to it: each
    repartition message judged gives a signal per account it touched, and with more
    accounts than interactions per message (50,000 accounts, ~20,000 interactions a
    message in the wide benchmark) nearly every interaction became a signal of its own,
    folded into its account a second time. The account side adds the counts up anyway;
    the sum of a checkpoint's signals is what it receives, in fewer of them."""

    __slots__ = ("_records", "_signals", "packed")

    def __init__(self) -> None:
        self._signals: dict[int, list[AudienceSignal]] = {}
        # (target, bucket start as the message carries it, account id) -> its signal's
        # place in its target's list
        self._records: dict[tuple[int, int, str], int] = {}
        self.packed = (engagement_native.SignalBatches() if COMPILED_AVAILABLE
                       else None)

    def add(self, target: int, signal: AudienceSignal) -> None:
        batch = self._signals.get(target)
        if batch is None:
            batch = self._signals[target] = []
        key = (target, int(signal.bucket_start), signal.account_id)
        place = self._records.get(key)
        if place is not None:
            known = batch[place]
            counts = (known.interactions + signal.interactions, known.busy + signal.busy,
                      known.farm_like + signal.farm_like)
            if max(counts) <= _MOST_COUNT:  # a message's counts are 32-bit
                batch[place] = AudienceSignal(known.account_id, known.bucket_start, *counts)
                return
        self._records[key] = len(batch)
        batch.append(signal)

    def __len__(self) -> int:
        return (sum(len(batch) for batch in self._signals.values())
                + (len(self.packed) if self.packed is not None else 0))

    def __bool__(self) -> bool:
        return bool(self._signals) or bool(self.packed)

    def take(self) -> list[tuple[int, bytes]]:
        """(target partition, message) per partition, and empty again. One path fills it
        in a process (`ENGAGEMENT_NATIVE_FOLD`), so the two never mix."""
        messages = [(target, pack_signals(batch)) for target, batch in self._signals.items()]
        self._signals = {}
        self._records = {}
        if self.packed is not None and self.packed:
            messages += self.packed.take()
        return messages


def estimate_distinct(bitmap: int) -> float:
    """Linear counting on a BITMAP_BITS-bit bitmap; a full bitmap says "at least" the
    estimate at one zero bit (~266 for 64 bits)."""
    zeros = BITMAP_BITS - bitmap.bit_count()
    return BITMAP_BITS * math.log(BITMAP_BITS / max(zeros, 1))


_FIBONACCI = 0x9E3779B97F4A7C15
_WORD = (1 << 64) - 1


def account_bit(account_id: str) -> int:
    """Which of the BITMAP_BITS bits an account sets. A stable hash, not str's (salted
    per process): another instance replaying the repartition topic must set the same
    bits. CRC-32 is ~5x cheaper than blake2b, but its low bits are structured for ids
    that differ in their last characters (acc-1, acc-2: the estimate was 2x too high at
    80 accounts); the top bits of a Fibonacci multiple mix all 32 of them."""
    return ((zlib.crc32(account_id.encode()) * _FIBONACCI) & _WORD) >> (64 - 6)


# The distinct count at which the bitmap union reaches each threshold: comparing bit
# counts avoids a logarithm per interaction.
def _bits_for(accounts: float) -> int:
    return math.ceil(BITMAP_BITS * (1.0 - math.exp(-accounts / BITMAP_BITS)))


COMPILED_AVAILABLE = engagement_native is not None
_compiled_selected = COMPILED_AVAILABLE


def use_compiled(compiled: bool) -> None:
    """Selects the compiled actor core (native/src/actors.rs, if it is installed) or the
    Python reference below for every `ActorActivity` made from now on. Both give the same
    verdicts, signals, statistics and snapshots (tests/unit/test_audience_native.py)."""
    global _compiled_selected
    _compiled_selected = compiled and COMPILED_AVAILABLE


def compiled_in_use() -> bool:
    return _compiled_selected


@dataclass(slots=True)
class ActivityStats:
    observed: int = 0
    too_old: int = 0  # older than the period at the actor's newest bucket: judged, not kept
    evicted_actors: int = 0
    expired_actors: int = 0


class ActorActivity:
    """Per-actor distinct accounts over a sliding period, and the signals they yield.

    One actor is one dict entry: its hash -> one int holding its newest bucket number
    (low 32 bits), a BITMAP_BITS-bit bitmap of account hashes per bucket slot, then one
    per month slot (~175 bytes resident per actor with the dict entry, `bench.actors`;
    under 200 in tests/unit/test_audience.py). Actors are forgotten when nothing of
    theirs is left in the month view (`expire`), not the period.

    With the compiled core selected (`use_compiled`, or `compiled=` for one object), the
    public methods hand the work to it and the Python state below stays empty: the same
    state as fixed-size words, ~86 bytes an actor (70 without the month view), and a
    batch judged without a Python object per interaction. The methods here are the
    reference it is held to, for times from 1970 on (before, the core counts an
    interaction as too old and its actor as ordinary: its bucket numbers are 32-bit, as
    the reference's state assumes).
    """

    def __init__(self, bucket_s: float = ACTIVITY_BUCKET_S, buckets: int = ACTIVITY_BUCKETS,
                 busy_accounts: float = BUSY_ACCOUNTS, farm_accounts: float = FARM_ACCOUNTS,
                 max_actors: int = MAX_ACTORS,
                 rotating_accounts: int = ROTATING_ACCOUNTS,
                 month_accounts: float = MONTH_ACCOUNTS, month_slots: int = MONTH_SLOTS,
                 month_span: int = MONTH_SPAN_BUCKETS,
                 month_turnover: int = MONTH_TURNOVER,
                 compiled: bool | None = None) -> None:
        self.bucket_s = bucket_s
        self.buckets = buckets
        self.busy_accounts = busy_accounts
        self.farm_accounts = farm_accounts
        self.max_actors = max_actors
        self.rotating_accounts = rotating_accounts
        self.month_accounts = month_accounts
        if month_slots < 1 or month_span < 1:
            raise ValueError("month_slots and month_span must be positive")
        self.month_slots = month_slots
        self.month_span = month_span
        self.month_turnover = month_turnover
        self.stats = ActivityStats()
        self._busy_bits = _bits_for(busy_accounts)
        self._farm_bits = _bits_for(farm_accounts)
        self._month_bits = _bits_for(month_accounts)
        self._actors: dict[int, int] = {}
        # Shifts that bring each later slot's bitmap down to the first slot's place.
        self._slot_shifts = tuple(_BUCKET_BITS + BITMAP_BITS * slot
                                  for slot in range(1, buckets))
        # The month bitmaps follow the period's.
        self._month_base = _BUCKET_BITS + BITMAP_BITS * buckets
        self._month_shifts = tuple(self._month_base + BITMAP_BITS * slot
                                   for slot in range(month_slots))
        self._period_mask = ((1 << (BITMAP_BITS * buckets)) - 1) << _BUCKET_BITS
        if compiled is None:
            compiled = _compiled_selected
        self._core = (engagement_native.NativeActors(
            bucket_s, buckets, self._busy_bits, self._farm_bits, max_actors,
            rotating_accounts, ROTATING_ACTIVE_SLOTS, self._month_bits, month_slots,
            month_span, month_turnover)
            if compiled and COMPILED_AVAILABLE else None)

    @property
    def compiled(self) -> bool:
        return self._core is not None

    def _take_counts(self, core: engagement_native.NativeActors) -> None:
        too_old, evicted = core.take_counts()
        self.stats.too_old += too_old
        self.stats.evicted_actors += evicted

    def __len__(self) -> int:
        if self._core is not None:
            return len(self._core)
        return len(self._actors)

    def distinct_accounts(self, actor: int) -> float:
        """Estimated distinct accounts of the actor in its period (0 if unknown)."""
        if self._core is not None:
            return estimate_distinct(self._core.union(actor))
        state = self._actors.get(actor)
        if state is None:
            return 0.0
        union = state >> _BUCKET_BITS
        for shift in self._slot_shifts:
            union |= state >> shift
        return estimate_distinct(union & _SLOT_MASK)

    def month_accounts_of(self, actor: int) -> float:
        """Estimated distinct accounts of the actor over its month view (0 if unknown)."""
        if self._core is not None:
            return estimate_distinct(self._core.month_union(actor))
        state = self._actors.get(actor)
        if state is None:
            return 0.0
        return estimate_distinct(self._month_union(state))

    def _month_union(self, state: int) -> int:
        union = 0
        for shift in self._month_shifts:
            union |= state >> shift
        return union & _SLOT_MASK

    def observe(self, actor: int, account_id: str, occurred_at: float) -> int:
        """Records one interaction; returns its actor's flags (BUSY, FARM_LIKE, both or
        0 for an ordinary actor), judged on its accounts in the period and in the month
        view, this one included."""
        self.stats.observed += 1
        core = self._core
        if core is not None:
            verdict = core.observe(actor, account_bit(account_id), occurred_at)
            self._take_counts(core)
            return verdict
        return self._observe(actor, account_bit(account_id), int(occurred_at // self.bucket_s))

    def _observe(self, actor: int, bit: int, bucket: int) -> int:
        # The per-interaction path of the actor side: a dict lookup and a handful of
        # operations on one ~300-bit int (~1 us).
        actors = self._actors
        state = actors.get(actor)
        if state is None:
            if len(actors) >= self.max_actors:
                # The oldest entry in insertion order: an actor first seen long ago.
                del actors[next(iter(actors))]
                self.stats.evicted_actors += 1
            state = bucket
        newest = state & _BUCKET_MASK
        slots = self.buckets
        if bucket > newest:
            state = self._advance(state, newest, bucket)
            newest = bucket
        if bucket > newest - slots:
            state |= 1 << (_BUCKET_BITS + BITMAP_BITS * (bucket % slots) + bit)
        else:
            self.stats.too_old += 1
        # The month view keeps what is too old for the period but within its slots.
        month = bucket // self.month_span
        if month > newest // self.month_span - self.month_slots:
            state |= 1 << (self._month_base + BITMAP_BITS * (month % self.month_slots) + bit)
        actors[actor] = state
        # The union of the slots (the accounts of the period), and the accounts met in
        # more than one slot (the ones the actor came back to).
        union = state >> _BUCKET_BITS
        returned = 0
        active_slots = 1 if union & _SLOT_MASK else 0
        for shift in self._slot_shifts:
            slot = state >> shift
            if slot & _SLOT_MASK:
                active_slots += 1
            returned |= union & slot
            union |= slot
        union &= _SLOT_MASK
        bits = union.bit_count()
        month_bits = self._month_union(state).bit_count()
        verdict = (BUSY if bits >= self._busy_bits
                   or (month_bits >= self._month_bits
                       and month_bits >= self.month_turnover * bits) else 0)
        if bits >= self._farm_bits:
            return verdict | FARM_LIKE
        # Rotating: active in several slots, yet most of its accounts, and several, met
        # in one slot only (a fan comes back; a farm's bot moves on to new customers).
        # An actor seen in fewer slots has had no time to come back: not judged.
        once = bits - (returned & _SLOT_MASK).bit_count()
        if (active_slots >= ROTATING_ACTIVE_SLOTS and once >= self.rotating_accounts
                and 4 * once >= 3 * bits):
            verdict |= FARM_LIKE
        return verdict

    def observe_batch(self, interactions: Iterable[ActorInteraction]) -> list[AudienceSignal]:
        """Observes a batch and returns its signals, one per (account, bucket) touched."""
        if self._core is not None:
            return self.observe_packed(pack_interactions(interactions))
        index: dict[str, int] = {}
        records = [(i.actor, i.occurred_at, index.setdefault(i.account_id, len(index)))
                   for i in interactions]
        return self._observe_records(list(index), records)

    def observe_packed(self, data: bytes) -> list[AudienceSignal]:
        """`observe_batch` of a packed batch (the repartition topic's message), without an
        object per interaction."""
        core = self._core
        if core is not None:
            rows, count = core.observe_packed(data)
            self.stats.observed += count
            self._take_counts(core)
            bucket_s = self.bucket_s
            return [AudienceSignal(account_id, bucket * bucket_s, n, busy, farm)
                    for account_id, bucket, n, busy, farm in rows]
        ids, records = read_interactions(data)
        return self._observe_records(ids, records)

    def replay_packed(self, data: bytes) -> int:
        """`observe_packed` of a batch whose signals were produced before (a restore or a
        standby replaying the repartition topic): the activity only, without the signals
        (the compiled core makes none). Returns how many interactions were judged."""
        core = self._core
        if core is None:
            observed = self.stats.observed
            self.observe_packed(data)
            return self.stats.observed - observed
        count = core.replay_packed(data)
        self.stats.observed += count
        self._take_counts(core)
        return count

    def observe_routed(self, data: bytes, partitions: int, out: RoutedSignals) -> int:
        """`observe_packed`, with each signal packed into `out` for its account's partition
        of the signal topic (`routing.partition_for` over `partitions`, which the core
        replicates): no Python object per signal. Returns how many interactions were
        judged. The compiled core only."""
        core = self._core
        if core is None or out.packed is None:
            raise RuntimeError("observe_routed needs the compiled actor core")
        count = core.observe_routed(data, partitions, out.packed)
        self.stats.observed += count
        self._take_counts(core)
        return count

    def _observe_records(self, ids: list[str], records: Iterable[tuple[int, float, int]]
                         ) -> list[AudienceSignal]:
        # bucket -> account index -> [interactions, busy, farm_like]; a batch spans one or
        # two buckets, so the outer dict is tiny.
        pending: dict[int, dict[int, list[int]]] = {}
        bucket_s = self.bucket_s
        observe = self._observe
        bits = [account_bit(account_id) for account_id in ids]
        count = 0
        for actor, occurred_at, index in records:
            count += 1
            bucket = int(occurred_at // bucket_s)
            verdict = observe(actor, bits[index], bucket)
            accounts = pending.get(bucket)
            if accounts is None:
                accounts = pending[bucket] = {}
            counts = accounts.get(index)
            if counts is None:
                counts = accounts[index] = [0, 0, 0]
            counts[0] += 1
            if verdict:
                counts[1] += verdict & BUSY
                counts[2] += verdict >> 1
        self.stats.observed += count
        return [AudienceSignal(ids[index], bucket * bucket_s, n, busy, farm)
                for bucket, accounts in pending.items()
                for index, (n, busy, farm) in accounts.items()]

    def snapshot(self) -> bytes:
        """All actors as bytes, for a snapshot or a changelog: a header (version, bucket
        length, bucket count, month slots and span) and one fixed-size record per actor
        (hash, then its state int). 8 + 52 bytes an actor with the default 4 buckets and
        2 month slots."""
        width = self._state_bytes(self.buckets + self.month_slots)
        header = (_SNAPSHOT.pack(_SNAPSHOT_V2, self.bucket_s, self.buckets)
                  + _SNAPSHOT_MONTH.pack(self.month_slots, self.month_span))
        if self._core is not None:
            return header + self._core.snapshot_records()
        parts = [header]
        parts += [actor.to_bytes(8, "little") + state.to_bytes(width, "little")
                  for actor, state in self._actors.items()]
        return b"".join(parts)

    def restore(self, data: bytes) -> None:
        """Replaces the actors with a snapshot's (in its order, so eviction goes on in
        first-seen order); refused if taken with other buckets or another month view.
        A version 1 snapshot (before the month view) loads with each period slot's
        accounts in the month slot of its bucket."""
        version, bucket_s, buckets = _SNAPSHOT.unpack_from(data)
        if version not in (_FORMAT_VERSION, _SNAPSHOT_V2):
            raise ValueError(f"actor snapshot of unknown version {version}")
        if (bucket_s, buckets) != (self.bucket_s, self.buckets):
            raise ValueError(f"actor snapshot of {buckets} buckets of {bucket_s} s, "
                             f"not {self.buckets} of {self.bucket_s} s")
        body = memoryview(data)[_SNAPSHOT.size :]
        if version == _SNAPSHOT_V2:
            month = _SNAPSHOT_MONTH.unpack_from(body)
            if month != (self.month_slots, self.month_span):
                raise ValueError(f"actor snapshot of {month[0]} month slots of {month[1]} "
                                 f"buckets, not {self.month_slots} of {self.month_span}")
            body = body[_SNAPSHOT_MONTH.size :]
            if self._core is not None:  # the core's own records: no Python int per actor
                record = 8 + self._state_bytes(self.buckets + self.month_slots)
                if len(body) % record:
                    raise ValueError("actor snapshot: a record is incomplete")
                self._core.restore_records(bytes(body))
                return
            states = self._read_states(body, self.buckets + self.month_slots)
        else:
            states = [(actor, self._with_month(state))
                      for actor, state in self._read_states(body, self.buckets)]
        if self._core is not None:
            width = self._state_bytes(self.buckets + self.month_slots)
            self._core.restore_records(b"".join(
                actor.to_bytes(8, "little") + state.to_bytes(width, "little")
                for actor, state in states))
            return
        self._actors = dict(states)

    def _read_states(self, body: memoryview, bitmaps: int) -> list[tuple[int, int]]:
        record = 8 + self._state_bytes(bitmaps)
        if len(body) % record:
            raise ValueError("actor snapshot: a record is incomplete")
        from_bytes = int.from_bytes
        return [(from_bytes(body[start : start + 8], "little"),
                 from_bytes(body[start + 8 : start + record], "little"))
                for start in range(0, len(body), record)]

    def _with_month(self, state: int) -> int:
        """A state written without the month view, with it: each period slot's accounts
        in the month slot of the bucket it holds."""
        newest = state & _BUCKET_MASK
        slots = self.buckets
        for slot in range(slots):
            bitmap = (state >> (_BUCKET_BITS + BITMAP_BITS * slot)) & _SLOT_MASK
            bucket = newest - (newest - slot) % slots
            month = (bucket // self.month_span) % self.month_slots
            state |= bitmap << (self._month_base + BITMAP_BITS * month)
        return state

    @staticmethod
    def _state_bytes(bitmaps: int) -> int:
        return (_BUCKET_BITS + BITMAP_BITS * bitmaps + 7) // 8

    def expire(self, now: float) -> int:
        """Forgets actors with nothing in the month view ending at `now` (its slots: 16
        to 32 days by default); returns how many."""
        first_live = (int(now // self.bucket_s) // self.month_span - self.month_slots
                      + 1) * self.month_span
        if self._core is not None:
            expired = self._core.expire(first_live)
            self.stats.expired_actors += expired
            return expired
        stale = [actor for actor, state in self._actors.items()
                 if state & _BUCKET_MASK < first_live]
        for actor in stale:
            del self._actors[actor]
        self.stats.expired_actors += len(stale)
        return len(stale)

    def _advance(self, state: int, newest: int, bucket: int) -> int:
        """The state with its newest bucket moved to `bucket`: slots of buckets that
        left the period are cleared."""
        slots = self.buckets
        if bucket - newest >= slots:
            state &= ~self._period_mask
        else:
            for stale in range(newest + 1, bucket + 1):
                state &= ~(_SLOT_MASK << (_BUCKET_BITS + BITMAP_BITS * (stale % slots)))
        span, months = self.month_span, self.month_slots
        old_month, new_month = newest // span, bucket // span
        for stale in range(max(old_month + 1, new_month - months + 1), new_month + 1):
            state &= ~(_SLOT_MASK << (self._month_base + BITMAP_BITS * (stale % months)))
        return (state & ~_BUCKET_MASK) | bucket
