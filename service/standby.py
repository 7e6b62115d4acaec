"""Standby replicas: warm copies of partitions that another instance owns.

Kafka Streams' standby tasks (`num.standby.replicas`), with the same sources as a restore
(service/consumer.py): a standby follows the partition's changelog (accounts, ids, the
score-change gate, the clock with the committed input offsets) and the actor side's
repartition partition, both `read_committed`. When the owner dies and the group gives the
partition to this instance, `take` hands the warm state to the restore, which reads only
what the standby had not yet read: failover costs the session timeout and a short
catch-up, not a full restore.

The actor activity is a function of the repartition records *judged* by the owner, i.e.
those below the committed `actors_position` that the clock carries. Records above it are
held back until a clock covers them: the new owner judges them itself after a move.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from service.partition_state import PartitionState, Status

log = logging.getLogger(__name__)
FETCH_RECORDS = 20_000
TRIM_INTERVAL_S = 60.0  # as often as the owner's expiry runs by default


@dataclass(frozen=True, slots=True)
class StandbyTopics:
    changelog: str
    actors: str


class Standbys:
    """Owns the standby states of this instance and the one reader that feeds them."""

    def __init__(self, reader: Callable[[], AIOKafkaConsumer], topics: StandbyTopics,
                 new_state: Callable[[int], PartitionState],
                 load_snapshot: Callable[[PartitionState], Any]) -> None:
        self._new_reader = reader
        self._topics = topics
        self._new_state = new_state
        self._load_snapshot = load_snapshot  # async: the local snapshot, if there is one
        self.states: dict[int, PartitionState] = {}
        self._wanted: frozenset[int] = frozenset()
        # The states the reader's assignment was made for: one adopted or taken since
        # waits for the next `_reassign`, and records fetched for a partition whose state
        # has changed meanwhile are not applied to the new one.
        self._assigned: dict[int, PartitionState] = {}
        self._held_actors: dict[int, list[tuple[int, bytes]]] = {}
        self._changed = asyncio.Event()
        self._reader: AIOKafkaConsumer | None = None

    # --- what the processor says -----------------------------------------------------

    def want(self, partitions: frozenset[int]) -> None:
        """The partitions the group wants kept warm here (active ones excluded)."""
        if partitions != self._wanted:
            self._wanted = partitions
            self._changed.set()

    def adopt(self, state: PartitionState) -> None:
        """A partition that was active here and that the group now names this instance a
        standby of: its state, exactly as committed (`PartitionState.committed`), goes
        on as the standby copy from where it is, instead of one rebuilt from the local
        snapshot and the changelog after it."""
        state.become_standby()
        partition = state.partition
        self.states[partition] = state
        self._held_actors[partition] = []
        self._wanted = self._wanted | {partition}
        self._changed.set()
        log.info("standby adopted the active state", extra={
            "partition": partition, "changelog_next": state.changelog_next,
            "accounts": len(state.engine.accounts)})

    def take(self, partition: int) -> PartitionState | None:
        """The warm state of a partition that becomes active here, if there is one; it is
        followed no more. The caller restores the rest (from the state's positions)."""
        state = self.states.pop(partition, None)
        self._held_actors.pop(partition, None)
        self._wanted = self._wanted - {partition}
        self._changed.set()
        if state is not None:
            state.status = Status.RESTORING
        return state

    def lag(self, state: PartitionState) -> int | None:
        """Changelog records this standby has yet to read."""
        reader = self._reader
        if reader is None:
            return None
        tp = TopicPartition(self._topics.changelog, state.partition)
        end = reader.last_stable_offset(tp) if tp in reader.assignment() else None
        return None if end is None else max(0, end - state.changelog_next)

    # --- the reader's loop -----------------------------------------------------------

    async def run(self, stopping: asyncio.Event) -> None:
        """Follows the wanted partitions until stopped; the processor restarts it if it
        fails (the states are rebuilt then)."""
        reader = self._new_reader()
        await reader.start()
        self._reader = reader
        next_trim = time.monotonic() + TRIM_INTERVAL_S
        try:
            while not stopping.is_set():
                if time.monotonic() >= next_trim:
                    for state in self.states.values():
                        state.forget_expired()
                    next_trim = time.monotonic() + TRIM_INTERVAL_S
                if self._changed.is_set():
                    self._changed.clear()
                    await self._reassign(reader)
                if not self._assigned:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), 1.0)
                    continue
                batch = await reader.getmany(timeout_ms=200, max_records=FETCH_RECORDS)
                self._apply(batch)
                await self._note_positions(reader)
        finally:
            self._reader = None
            self.states.clear()
            self._held_actors.clear()
            self._assigned = {}
            with contextlib.suppress(Exception):
                await asyncio.wait_for(reader.stop(), 5.0)

    async def _reassign(self, reader: AIOKafkaConsumer) -> None:
        wanted = self._wanted
        for partition in [p for p in self.states if p not in wanted]:
            del self.states[partition]
            self._held_actors.pop(partition, None)
            log.info("standby dropped", extra={"partition": partition})
        for partition in sorted(wanted - set(self.states)):
            state = self._new_state(partition)
            await self._load_snapshot(state)
            if partition not in self._wanted or partition in self.states:
                continue  # taken, adopted or no longer wanted while the snapshot loaded
            state.status = Status.STANDBY
            self.states[partition] = state
            self._held_actors[partition] = []
            log.info("standby started", extra={"partition": partition,
                                               "changelog_next": state.changelog_next})
        self._assigned = assigned = dict(self.states)
        topics = self._topics
        tps = [TopicPartition(topic, p) for p in sorted(assigned)
               for topic in (topics.changelog, topics.actors)]
        reader.assign(tps)  # positions start over: seek each to what its state has read
        if not tps:
            return
        begins = await reader.beginning_offsets(tps)
        ends = await reader.end_offsets(tps)
        for partition, state in assigned.items():
            if self.states.get(partition) is not state:
                continue  # taken (or adopted anew) meanwhile: the next `_reassign` seeks
            changelog = TopicPartition(topics.changelog, partition)
            if not begins[changelog] <= state.changelog_next <= ends[changelog]:
                log.warning("local snapshot does not match the changelog; the standby "
                            "reads it all", extra={"partition": partition})
                state = self._new_state(partition)
                state.status = Status.STANDBY
                self.states[partition] = assigned[partition] = state
                self._held_actors[partition] = []
            reader.seek(changelog, max(begins[changelog], state.changelog_next))
            actors = TopicPartition(topics.actors, partition)
            reader.seek(actors, state.actors_replay_from(begins[actors]))

    async def _note_positions(self, reader: AIOKafkaConsumer) -> None:
        """Transaction markers take offsets too: a standby that has read everything is at
        the reader's position, past the last marker, not at the last record + 1."""
        for partition, state in list(self._assigned.items()):
            if self.states.get(partition) is state:
                state.changelog_next = await reader.position(
                    TopicPartition(self._topics.changelog, partition))

    def _followed(self, partition: int) -> PartitionState | None:
        """The partition's standby state, if the reader's records are for it."""
        state = self.states.get(partition)
        return state if state is not None and self._assigned.get(partition) is state \
            else None

    def _apply(self, batch: dict[TopicPartition, list[Any]]) -> None:
        topics = self._topics
        # The changelog first: its clock says how far the actor side's judging went.
        for tp, records in batch.items():
            state = self._followed(tp.partition)
            if state is None or tp.topic != topics.changelog:
                continue
            for record in records:
                state.apply_changelog(record.key, record.value)
            state.engine.accounts.discard_changes()  # a standby writes no changelog
        for tp, records in batch.items():
            state = self._followed(tp.partition)
            if state is None:
                continue
            if tp.topic == topics.actors:
                self._held_actors[tp.partition].extend((r.offset, r.value) for r in records)
        for partition, held in self._held_actors.items():
            state = self.states[partition]
            judged_until = state.actors_position or 0
            ready = 0
            for offset, value in held:
                if offset >= judged_until:
                    break
                state.warm_actors(value)
                state.actors_warm_next = offset + 1
                ready += 1
            if ready:
                del held[:ready]
