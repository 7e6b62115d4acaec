"""One Kafka partition's state and the offsets it reflects: the unit of ownership,
checkpoint, changelog and restore (compare Quix Streams' `StorePartition`).

A `PartitionState` owns the partition's `Engine` (pure), the next input offset its state
reflects, and what the changelog needs: which accounts changed since the last checkpoint,
the event ids remembered since then, and which id segments have left the window.

Changelog records (key -> value), all in the partition of the same number:
    <account id>           -> the packed account (service/engine/packing.py); None when
                              the account left the window or was evicted (a tombstone).
                              Either way the account changed, so a change of it waits
                              to be offered to the score-change gate: the record says
                              so, until a later gate record of the account says not
    !ids/<sequence>        -> msgpack {"max_hour", "hours": {hour: hashes}}: the event
                              ids (8-byte hashes, service/engine/dedupe.py) remembered
                              since the last checkpoint; written once, tombstoned when
                              every hour in it has left the horizon
    !gate/<account id>     -> msgpack [tier, credibility, emitted_at, pending]: what the
                              score-change stream last said of the account (its gate; the
                              first three None if nothing yet), written with the record,
                              and whether a change of the account still waits to be
                              offered (for the budget or its interval): a new owner
                              offers those again. None: nothing said, nothing waiting.
                              Written when the account is emitted, or when its waiting
                              differs from what its newest records say (an account
                              record alone says it waits: a checkpoint that leaves a
                              changed account waiting writes no gate record for it)
    !clock                 -> msgpack {"position", "actors_position", "signals_position",
                              "stream_time", "changes", "sequence"}: the input offsets
                              the state reflects, written last in every checkpoint

The partition also runs the actor side of the cross-account audience signal for the
partition of the same number of the actors' repartition topic (service/engine/audience.py):
counted interactions go out re-keyed by actor, what the actors' activity says comes back
as signals keyed by account. Both outputs are produced in the checkpoint's transaction,
with the offsets of all three inputs, so each interaction is judged once and each signal
folded once. The actor activity is not in the changelog: the local snapshot holds it
with the repartition offset it reflects, and a restore replays the repartition partition
from there (from its beginning without a snapshot) up to its committed offset through
it, which emits nothing.
Account ids cannot contain "!" (service/events.py), so the keys never collide.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import msgpack

from service.engine import Engine, EngineConfig
from service.engine.audience import (
    ActorActivity,
    RoutedBatch,
    RoutedSignals,
    actor_partition,
)
from service.engine.engine import DEDUPE_BUCKET_S, AccountScore, PartitionClock
from service.engine.persistence import export_partitions, import_state
from service.engine.score_changes import ChangeGate, ChangePolicy
from service.routing import partition_for

CLOCK_KEY = b"!clock"
IDS_PREFIX = b"!ids/"
GATE_PREFIX = b"!gate/"
# Kafka refuses records over max.message.bytes (1 MB by default); id segments stay well
# below it, compressed or not.
MAX_SEGMENT_BYTES = 256 * 1024

Record = tuple[bytes, bytes | None]
Headers = tuple[tuple[str, bytes], ...]
Produced = tuple[str, int, bytes | None, bytes | None, Headers]  # topic, partition, key, value
# What the score-change gate compared, unrounded, in each record's headers: consumers of
# the stream can filter without parsing the body.
GATE_HEADERS = ("score.tier", "score.credibility", "score.as_of")
# Accounts re-scored for the score-change gate per checkpoint at most, unless the caller
# says otherwise (the consumer's `RescoreBudget` does, from their measured cost); the
# rest wait for the next checkpoint.
OFFERS_PER_CHECKPOINT = 2_000


@dataclass(slots=True)
class Checkpoint:
    """What one transaction commits for a partition."""

    changelog: list[Record]
    produced: list[Produced]  # re-keyed interactions and audience signals
    positions: dict[str, int]  # input topic -> next offset
    # The score-change stream's records: (account, its score), or None for a tombstone.
    score_changes: list[tuple[str, AccountScore | None]] = dataclasses.field(
        default_factory=list)
    rescored: int = 0  # accounts scored afresh for the gate
    rescore_seconds: float = 0.0  # and how long that took


class Status(enum.StrEnum):
    RESTORING = "restoring"
    ACTIVE = "active"
    STANDBY = "standby"  # a warm copy of a partition another instance owns


@dataclass(frozen=True, slots=True)
class CatchUpEnd:
    """How a partition's wait to catch up after a move ended (`note_input`)."""

    waited_s: float
    # Input records not yet consumed: 0 once caught up; more, or None (its end never
    # known), where the wait's limit ended it and the partition answers while behind.
    behind: int | None


@dataclass(slots=True)
class Freshness:
    """How current a partition's answers are, for callers and /readyz."""

    partition: int
    lag_messages: int | None
    seconds_since_progress: float | None


class PartitionState:
    def __init__(self, partition: int, config: EngineConfig,
                 change_policy: ChangePolicy | None = None) -> None:
        self.partition = partition
        # What the score-change stream last said per account, and who may have moved:
        # in the order they came to wait (by checkpoint), each once however often it
        # moved since.
        self.gate = ChangeGate(change_policy)
        self._to_offer: deque[str] = deque()
        self._offered: set[str] = set()  # what _to_offer holds
        self._left: set[str] = set()  # of those, the accounts that left the window
        # Accounts whose newest records in the changelog say a change waits, in the
        # order they came to (what a restore read so); and the accounts queued since
        # the last checkpoint.
        self._marked: dict[str, None] = {}
        self._queued_since_checkpoint: set[str] = set()
        # The changelog carries the dedupe ids added between checkpoints.
        config = dataclasses.replace(config, track_dedupe_changes=True)
        self.engine = Engine(config)
        self.engine.clock(partition)
        self.status = Status.RESTORING
        self.position: int | None = None  # next input offset; None: from the beginning
        self.changelog_next = 0  # next changelog offset after what the state reflects
        self.sequence = 0  # of id segments written
        self.segments: dict[bytes, int] = {}  # id segment key -> newest hour in it
        self.lag: int | None = None
        self.last_progress_at: float | None = None
        self.restored_records = 0
        # Id segments and gate records written in a checkpoint that failed.
        self._pending_records: list[Record] = []
        self._checkpointed_position: int | None = None  # of the last checkpoint made
        self.actors = ActorActivity()
        self.actors_position: int | None = None  # of the repartition topic's partition
        self.signals_position: int | None = None  # of the signal topic's partition
        # How far a restore or a standby has read the repartition partition (into the
        # actor activity).
        self.actors_warm_next = 0
        # Outputs gathered since the last checkpoint, by target partition.
        self.interactions_out: dict[int, RoutedBatch] = {}
        self.signals_out = RoutedSignals()
        self._pending_produced: list[Produced] = []
        self._checkpointed_sides: tuple[int | None, int | None] = (None, None)
        # After a move: whether answers wait for the fold to get as far as the input
        # reached at the takeover (`catch_up`), that end once a fetch has told it, and
        # until when at most.
        self._catching_up = False
        self._catch_up_to: int | None = None
        self._catch_up_since = self._catch_up_until = 0.0

    @property
    def clock(self) -> PartitionClock:
        return self.engine.clock(self.partition)

    def catch_up(self, at_most_s: float) -> None:
        """Holds answers back, for at most `at_most_s`, until the input is consumed as far
        as it reached when the partition was taken over (`note_input`). The previous
        owner answered from events it had folded but not yet committed; this state
        starts from the committed ones, so until it has folded them again it would
        answer with counts that go back in time. An owner that died before its first
        commit answered too, so this holds without a committed position as well."""
        if at_most_s > 0:
            self._catch_up_since = time.monotonic()
            self._catch_up_until = self._catch_up_since + at_most_s
            self._catch_up_to = None
            self._catching_up = True

    @property
    def catching_up(self) -> bool:
        return self._catching_up

    def note_input(self, consumed: int, input_end: int | None) -> CatchUpEnd | None:
        """The consumer's position in the input (past transaction markers, which no
        record's offset shows) and the input's end by the newest fetch (None before the
        first one): the first end seen after the takeover is what it waits for. Returns
        how the wait ended, if it has just ended: caught up, or its limit passed."""
        if not self._catching_up:
            return None
        if self._catch_up_to is None:
            self._catch_up_to = input_end
        target = self._catch_up_to
        now = time.monotonic()
        if target is not None and consumed >= target:
            behind: int | None = 0
        elif now >= self._catch_up_until:
            behind = None if target is None else target - consumed
        else:
            return None
        self._catching_up = False
        return CatchUpEnd(now - self._catch_up_since, behind)

    def behind_previous_owner(self) -> int | None:
        """None once the partition answers (see `catch_up`); else the input records still
        to consume (0 while the input's end is not known yet). Past the wait's limit it
        answers, whether or not `note_input` has ended the wait yet."""
        if not self._catching_up or time.monotonic() >= self._catch_up_until:
            return None
        if self._catch_up_to is None:
            return 0
        return max(0, self._catch_up_to - (self.position or 0))

    def freshness(self) -> Freshness:
        since = (None if self.last_progress_at is None
                 else round(time.monotonic() - self.last_progress_at, 3))
        return Freshness(self.partition, self.lag, since)

    @property
    def uncommitted(self) -> bool:
        """Whether the state holds changes that no checkpoint has committed yet."""
        return bool(self.engine.accounts.changed_count() or self._pending_records
                    or self.interactions_out or self.signals_out or self._pending_produced)

    @property
    def committed(self) -> bool:
        """Whether the state is exactly what the changelog holds up to `changelog_next`:
        the last checkpoint committed and nothing has happened since (no input consumed,
        no output gathered, nothing queued for the score-change gate). A checkpoint in
        flight looks committed here; the caller must know that none is."""
        return (not self.uncommitted and self.position == self._checkpointed_position
                and (self.actors_position, self.signals_position) == self._checkpointed_sides
                and not self.clock.event_ids.has_added and not self._queued_since_checkpoint)

    def become_standby(self) -> None:
        """The partition moves to another owner and this instance keeps it warm: from
        its committed state on, it follows the changelog like a standby loaded from a
        local snapshot of that checkpoint, whose actor side has already read the
        repartition partition up to the committed offset. The accounts waiting for the
        score-change gate are not queued any more: the changelog's gate records say who
        waits (`_marked`), and a takeover offers those again."""
        if not self.committed:
            raise ValueError(f"partition {self.partition} has uncommitted changes")
        self._to_offer.clear()
        self._offered.clear()
        self._left.clear()
        self.actors_warm_next = self.actors_position or 0
        self.lag = None
        self.status = Status.STANDBY

    def progressed(self) -> None:
        self.last_progress_at = time.monotonic()

    # --- the cross-account audience signal -----------------------------------------

    def route_interaction(self, actor: int, account_id: str, occurred_at: float,
                          partitions: int) -> None:
        """A counted interaction, re-keyed by its actor (`actor_hash(actor_id)`) for the
        actor side."""
        target = actor_partition(actor, partitions)
        batch = self.interactions_out.get(target)
        if batch is None:
            batch = self.interactions_out[target] = self.engine.new_interaction_batch()
        batch.add(actor, account_id, occurred_at)

    def observe_actors(self, message: bytes, partitions: int) -> int:
        """A batch of re-keyed interactions (this partition of the repartition topic):
        the actors' activity judges each; the signals go to the accounts' partitions.
        Packed by the compiled core as judged where the engine folds natively
        (`ENGAGEMENT_NATIVE_FOLD`); the Python path is the reference."""
        actors = self.actors
        if self.engine.config.native_fold and actors.compiled:
            return actors.observe_routed(message, partitions, self.signals_out)
        judged = actors.stats.observed
        signals_out = self.signals_out
        for signal in actors.observe_packed(message):
            signals_out.add(partition_for(signal.account_id, partitions), signal)
        return actors.stats.observed - judged

    def warm_actors(self, message: bytes) -> None:
        """A batch the actor side already judged before a move: activity only."""
        self.actors.replay_packed(message)

    @property
    def actors_next(self) -> int:
        """The repartition offset the actor activity reflects: an owner has judged every
        record up to its position (`actors_warm_next` stays where its restore stopped);
        a restore or a standby has read up to `actors_warm_next`."""
        if self.status is Status.ACTIVE:
            return self.actors_position or 0
        return self.actors_warm_next

    def actors_replay_from(self, begin: int) -> int:
        """Where to read the repartition partition from into the actor activity, given
        the partition's first offset still held. Activity that reflects less than the
        records before `begin` would miss the ones retention deleted: it is discarded,
        and rebuilt from the beginning, as without a snapshot."""
        if self.actors_warm_next < begin and (self.actors_warm_next or len(self.actors)):
            self.actors = ActorActivity()
            self.actors_warm_next = 0
        return max(begin, self.actors_warm_next)

    def fold_signals(self, message: bytes) -> int:
        return self.engine.fold_signals(message)

    # --- checkpoint: what the changelog gets ---------------------------------------

    def checkpoint(self, events: str, actors: str, signals: str,
                   rescore_at_most: int = OFFERS_PER_CHECKPOINT) -> Checkpoint | None:
        """Everything the next transaction commits (None if nothing happened since the
        last one): the changelog records, the outputs, the input offsets, and the
        score-change records of at most `rescore_at_most` accounts scored afresh. A
        checkpoint whose transaction fails must be given back with `requeue`."""
        sides = (self.actors_position, self.signals_position)
        if (not self.uncommitted and self.position == self._checkpointed_position
                and sides == self._checkpointed_sides
                and not self.clock.event_ids.has_added and not self._to_offer):
            return None  # (what waits for the budget drains without new input too)
        self._checkpointed_sides = sides
        positions = {topic: offset for topic, offset in
                     ((events, self.position), (actors, self.actors_position),
                      (signals, self.signals_position)) if offset is not None}
        produced, self._pending_produced = self._pending_produced, []
        produced += [(actors, target, None, batch.to_bytes(), ())
                     for target, batch in self.interactions_out.items()]
        produced += [(signals, target, None, message, ())
                     for target, message in self.signals_out.take()]
        self.interactions_out = {}
        drained = self.engine.accounts.drain_packed()
        changelog = self._changelog(drained)
        # Each drained account offered and marked as `_offer` and the gate's records do
        # one at a time, here in bulk (tens of thousands per checkpoint; the ids are
        # distinct): what its record says is that it waits (see the module doc).
        ids = [account_id for account_id, _ in drained]
        self._offer_all(ids)
        self._marked.update(dict.fromkeys(ids))
        left = self._left
        if left:
            left.difference_update(ids)
        # Left the window: its tombstone is not held back.
        left.update([account_id for account_id, packed in drained if packed is None])
        started = time.perf_counter()
        taken: set[str] = set()
        scores, rescored = self.score_changes(rescore_at_most, taken)
        rescore_seconds = time.perf_counter() - started
        # What the gate now says goes into the changelog too (before the clock, which
        # stays last): a restore or a standby rebuilds the gate from a few bytes per
        # account instead of reading the stream's score bodies back.
        changelog[-1:-1] = self._gate_records({account_id for account_id, _ in scores},
                                              taken | self._queued_since_checkpoint)
        self._queued_since_checkpoint = set()
        return Checkpoint(changelog, produced, positions, scores, rescored, rescore_seconds)

    def _gate_records(self, emitted: set[str], maybe_changed: set[str]) -> list[Record]:
        """Gate records of the accounts emitted, and of those whose waiting changed
        (queued, held for their interval, or offered) since the changelog last said so:
        in live traffic, an account that changes within its interval adds one record
        when it is offered (its account record said that it waits); one that waits for
        the budget, none until it is offered."""
        records = []
        gate, marked = self.gate, self._marked
        for account_id in emitted | maybe_changed:
            pending = account_id in self._offered or gate.holds(account_id)
            if account_id not in emitted and pending == (account_id in marked):
                continue
            if pending:
                marked[account_id] = None
            else:
                marked.pop(account_id, None)
            records.append((GATE_PREFIX + account_id.encode(),
                            _gate_value(gate, account_id, pending)))
        return records

    @property
    def rescores_pending(self) -> int:
        """Accounts that moved and wait to be offered to the score-change gate."""
        return len(self._to_offer)

    def _offer(self, account_id: str) -> None:
        if account_id not in self._offered:
            self._offered.add(account_id)
            self._to_offer.append(account_id)
            self._queued_since_checkpoint.add(account_id)

    def _offer_all(self, account_ids: list[str]) -> None:
        """`_offer` of each of `account_ids` (distinct), in their order."""
        offered = self._offered
        fresh = [account_id for account_id in account_ids if account_id not in offered]
        offered.update(fresh)
        self._to_offer.extend(fresh)
        self._queued_since_checkpoint.update(fresh)

    def score_changes(self, rescore_at_most: int = OFFERS_PER_CHECKPOINT,
                      taken: set[str] | None = None
                      ) -> tuple[list[tuple[str, AccountScore | None]], int]:
        """Accounts whose record in the score-change stream is due: (id, its score), or
        (id, None) for a tombstone (it left the window), and how many accounts were
        scored afresh to find them. The gate records them as emitted: the caller puts
        them into this checkpoint's transaction.

        Accounts are offered in the order they came to wait, at most `rescore_at_most`
        scored per call; the rest wait, each once however often it moves meanwhile. So
        when history arrives faster than real time (a backfill, a catch-up), the
        stream's cost stays bounded and its records coalesce: it publishes fewer
        intermediate scores, never a wrong one, and catches up when the input does.
        An account held by the interval is deferred without being scored."""
        stream_time = self.clock.stream_time
        gate = self.gate
        for account_id in gate.due(stream_time):
            self._offer(account_id)
        waiting, offered, left = self._to_offer, self._offered, self._left
        emit: list[tuple[str, AccountScore | None]] = []
        rescored = 0
        while waiting and rescored < rescore_at_most:
            account_id = waiting.popleft()
            offered.discard(account_id)
            if taken is not None:
                taken.add(account_id)
            if account_id in left:
                left.discard(account_id)
            elif gate.defer(account_id, stream_time):
                continue  # its interval is not over: `due` offers it again then
            rescored += 1
            score = self.engine.score(account_id)
            if score is None:
                if gate.leave(account_id):
                    emit.append((account_id, None))
            elif gate.offer(account_id, score.tier, score.credibility.score, score.as_of):
                emit.append((account_id, score))
        return emit, rescored

    def requeue_checkpoint(self, checkpoint: Checkpoint) -> None:
        self.requeue(checkpoint.changelog)
        self._pending_produced = checkpoint.produced + self._pending_produced
        self._checkpointed_sides = (None, None)

    def checkpoint_records(self) -> list[Record]:
        """The records that bring the changelog up to this state: one per account changed
        since the last checkpoint, new id segments, tombstones of expired segments, and
        the clock last. Draining marks them written; a checkpoint whose transaction
        fails calls `checkpoint_records` again later and rewrites every account still
        marked, so the caller must `requeue` what it drained if the write fails."""
        return self._changelog(self.engine.accounts.drain_packed())

    def _changelog(self, drained: list[tuple[str, bytes | None]]) -> list[Record]:
        """`checkpoint_records` with the accounts already drained."""
        self._checkpointed_position = self.position
        # What a failed checkpoint wrote goes first: its gate records are older than
        # this checkpoint's account records, which say that their accounts wait.
        records, self._pending_records = self._pending_records, []
        records.extend((account_id.encode(), packed) for account_id, packed in drained)
        records.extend(self._new_segments())
        records.extend(self._expired_segments())
        records.append((CLOCK_KEY, self._clock_value()))
        return records

    def requeue(self, records: Iterable[Record]) -> None:
        """A checkpoint that did not commit: its accounts are written next time (their
        newest state then); id segments and the tombstones of expired ones (no longer in
        `segments`, so never found again) are kept under their keys and rewritten."""
        accounts = self.engine.accounts
        self._checkpointed_position = -1  # the clock must be written again
        for key, value in records:
            if key == CLOCK_KEY:
                continue
            if key.startswith((GATE_PREFIX, IDS_PREFIX)):
                self._pending_records.append((key, value))
                continue
            accounts.mark_changed(key.decode())

    def _new_segments(self) -> Iterator[Record]:
        event_ids = self.clock.event_ids
        event_ids.drain_retired()  # their segments go by their newest hour, below
        added = event_ids.drain_added()
        if not added:
            return
        chunk: dict[int, bytes] = {}
        size = 0
        for hour, payload in added.items():
            for piece in _split(payload, MAX_SEGMENT_BYTES):
                if size + len(piece) > MAX_SEGMENT_BYTES and chunk:
                    yield self._segment(chunk)
                    chunk, size = {}, 0
                chunk[hour] = chunk.get(hour, b"") + piece
                size += len(piece)
        if chunk:
            yield self._segment(chunk)

    def _segment(self, hours: dict[int, bytes]) -> Record:
        self.sequence += 1
        key = IDS_PREFIX + b"%012d" % self.sequence
        newest = max(hours)
        self.segments[key] = newest
        return key, msgpack.packb({"max_hour": newest, "hours": hours})

    def _expired_segments(self) -> Iterator[Record]:
        first_live = self._first_live_hour()
        for key in [k for k, newest in self.segments.items() if newest < first_live]:
            del self.segments[key]
            yield key, None

    def _first_live_hour(self) -> float:
        stream_time = self.clock.stream_time
        if stream_time == -math.inf:
            return -math.inf
        return (stream_time - self.engine.config.horizon_s) // DEDUPE_BUCKET_S

    def _clock_value(self) -> bytes:
        value: bytes = msgpack.packb({
            "position": self.position, "actors_position": self.actors_position,
            "signals_position": self.signals_position, "stream_time": self.clock.stream_time,
            "changes": self.engine.changes, "sequence": self.sequence,
        })
        return value

    # --- restore: the changelog back into state --------------------------------------

    def apply_changelog(self, key: bytes, value: bytes | None) -> None:
        """One changelog record, read in offset order; the newest record of a key wins."""
        self.restored_records += 1
        if key[:1] != b"!":  # an account, the most frequent record: tested first
            account_id = key.decode()
            self.engine.accounts.put_packed(account_id, value)
            self._marked[account_id] = None  # changed: it waits for the gate
        elif key == CLOCK_KEY:
            if value is not None:
                clock = msgpack.unpackb(value)
                self.position = clock["position"]
                self.actors_position = clock.get("actors_position")
                self.signals_position = clock.get("signals_position")
                self.clock.stream_time = float(clock["stream_time"])
                self.engine.changes = max(self.engine.changes, int(clock["changes"]))
                self.sequence = max(self.sequence, int(clock["sequence"]))
        elif key.startswith(GATE_PREFIX):
            account_id = key[len(GATE_PREFIX):].decode()
            marked = self._marked
            if value == _WAITING_ONLY:  # waits, never emitted: a changelog written before
                # account records said so has one per changed account
                self.gate.leave(account_id)
                marked[account_id] = None
                return
            marked.pop(account_id, None)
            if value is None:
                self.gate.leave(account_id)
                return
            tier, credibility, emitted_at, *waiting = msgpack.unpackb(value)
            if tier is None:
                self.gate.leave(account_id)
            else:
                self.gate.record(account_id, tier, credibility, emitted_at)
            if waiting and waiting[0]:
                marked[account_id] = None
        elif key.startswith(IDS_PREFIX):
            if value is None:
                self.segments.pop(key, None)
                return
            segment = msgpack.unpackb(value, strict_map_key=False)
            self.segments[key] = int(segment["max_hour"])
            event_ids = self.clock.event_ids
            for hour, payload in segment["hours"].items():
                event_ids.merge(int(hour), payload)

    def forget_expired(self) -> None:
        """A standby's trim, as the owner's expiry does it: event ids and actor activity
        older than the horizon go (its accounts leave by the changelog's tombstones)."""
        stream_time = self.clock.stream_time
        if stream_time == -math.inf:
            return
        event_ids = self.clock.event_ids
        event_ids.retire_before(int(self._first_live_hour()))
        event_ids.drain_retired()
        self.actors.expire(stream_time)

    def finish_restore(self) -> None:
        """After the changelog: ids counted again, nothing marked as changed (the
        changelog already holds all of it), and answers may be served."""
        self.engine.recount_event_ids()
        self.engine.accounts.discard_changes()
        self.clock.event_ids.drain_added()
        self.clock.event_ids.drain_retired()
        self._checkpointed_position = self.position
        self._checkpointed_sides = (self.actors_position, self.signals_position)
        # Changes the previous owner had not yet offered to the gate (waiting for the
        # budget or their interval) are offered here: none stays unpublished after a
        # move. Their records already say so.
        # In bulk, in the order they came to wait (sorted and one by one, this was a
        # fifth of the restore when every account waits: `bench.restore`).
        offered = self._offered
        waiting = [account_id for account_id in self._marked if account_id not in offered]
        offered.update(waiting)
        self._to_offer.extend(waiting)
        self._queued_since_checkpoint = set()
        self.status = Status.ACTIVE
        self.progressed()

    # --- the local snapshot: the same state as plain values --------------------------

    def snapshot_header(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "position": self.position,
            "actors_position": self.actors_position,
            "actors_next": self.actors_next,  # what `self.actors.snapshot()` reflects
            "signals_position": self.signals_position,
            "changelog_next": self.changelog_next,
            "sequence": self.sequence,
            "segments": {key.decode(): hour for key, hour in self.segments.items()},
            "changes": self.engine.changes,
            "clock": export_partitions(self.engine).get(self.partition),
            "gate": [list(row) for row in self.gate.export()],
            "waiting": list(self._marked),  # as the changelog says at this checkpoint
        }

    def packed_accounts(self) -> Iterator[tuple[str, bytes]]:
        return self.engine.accounts.packed()

    def load_snapshot(self, header: dict[str, Any], accounts: Iterable[tuple[str, bytes]],
                      actors: bytes | None = None) -> None:
        """`actors`: the actor activity as of `header["actors_next"]`; without it (a
        format 3 file) the activity is replayed from the repartition topic's beginning."""
        if actors is not None:
            activity = ActorActivity()
            activity.restore(actors)
            self.actors = activity
            self.actors_warm_next = int(header["actors_next"])
        self.position = header["position"]
        self.actors_position = header.get("actors_position")
        self.signals_position = header.get("signals_position")
        self.changelog_next = int(header["changelog_next"])
        self.sequence = int(header["sequence"])
        self.segments = {key.encode(): int(hour) for key, hour in header["segments"].items()}
        self.gate.restore(tuple(row) for row in header.get("gate", ()))
        self._marked = dict.fromkeys(header.get("waiting", ()))
        clocks = {} if header["clock"] is None else {self.partition: header["clock"]}
        self.engine = import_state(self.engine.config, clocks, accounts,
                                   int(header["changes"]))


# The gate value of an account that waits and was never emitted.
_WAITING_ONLY: bytes = msgpack.packb([None, None, None, True])


def _gate_value(gate: ChangeGate, account_id: str, pending: bool) -> bytes | None:
    emitted = gate.last(account_id)
    if emitted is None and not pending:
        return None
    said = ([None, None, None] if emitted is None
            else [emitted.tier, emitted.credibility, emitted.emitted_at])
    value: bytes = msgpack.packb([*said, pending])
    return value


def _split(payload: bytes, limit: int) -> Iterator[bytes]:
    """8-byte hashes in pieces of at most `limit` bytes, cut between hashes."""
    step = limit - limit % 8
    for start in range(0, len(payload), step):
        yield payload[start:start + step]
