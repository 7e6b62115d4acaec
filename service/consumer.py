"""Kafka in: the partitions this instance owns, their restore, batches, checkpoints.

One `StreamProcessor.run()` is one life of the consumer: connect (retrying with back-off
while the broker is away), check the topics, join the group, then loop. The group's
assignment decides which partitions live here; each one is a `PartitionState`.

Exactly-once state, across instances, with Kafka transactions (Kafka Streams' EOS with
one producer per task): every `commit_interval_s`, each partition's changes (one record
per changed account, new event-id segments, the clock with the input position) go to its
changelog partition, and its consumer offset goes with them, in one transaction of a
producer whose transactional id is derived from the partition. The loop goes on folding
while a checkpoint's transactions are in flight; what it folds meanwhile goes into the
next checkpoint (one in flight at a time). A partition that moves
is restored by the new owner from its local snapshot (if it has one) plus the
changelog read with `read_committed`, so the state is exactly that of the last
committed transaction and the events after its offset are consumed once. Starting that
producer fences the old owner: its next transaction fails with ProducerFenced, and it
drops the partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError, ProducerFenced

from service import snapshot_child, snapshots
from service.dead_letter import DeadLetter, DeadLetterPublisher, SourceRecord
from service.engine import AccountScore, EngineConfig, Outcome
from service.engine.engine import FOLD_OUTCOMES, NATIVE_FOLD_AVAILABLE
from service.engine.score_changes import ChangePolicy
from service.engine.sketches import actor_hash
from service.engine.store import hot_capacity_for
from service.events import CommentEvent, LikeEvent, Rejection, ShareEvent, decode_event
from service.fetched_records import records_of
from service.kafka_clients import (
    Backoff,
    FatalConfigError,
    KafkaClients,
    RecordBatch,
    wait_for_topics,
    with_retries,
)
from service.membership import ClusterMap, MembershipAssignor
from service.metrics import Metrics
from service.partition_state import (
    GATE_HEADERS,
    CatchUpEnd,
    Checkpoint,
    Freshness,
    Headers,
    PartitionState,
    Produced,
    Status,
)
from service.responses import score_json
from service.routing import partition_for
from service.score_stream import RescoreBudget
from service.settings import Settings
from service.standby import Standbys, StandbyTopics

log = logging.getLogger(__name__)
# A batch of 2,000 events takes ~20 ms; queries should not wait behind all of it: the
# loop lets them in once it has computed this long (checked every few records).
YIELD_AFTER_S = 0.005
YIELD_CHECK_RECORDS = 32
LAG_INTERVAL_S = 5.0
# A partition that moved here learns this often whether it has caught up (see `locate`).
CATCH_UP_CHECK_INTERVAL_S = 0.02
CATCH_UP_POSITION_WAIT_S = 0.05
# Lag reads and commits wait on the broker (aiokafka's own request timeout is 40 s);
# bounded, so that a lost broker cannot hold up the loop, shutdown or its final snapshot.
BROKER_CALL_TIMEOUT_S = 5.0
RESTORE_FETCH_RECORDS = 20_000
_INTERACTIONS = (LikeEvent, CommentEvent, ShareEvent)


def engine_config(settings: Settings, partitions: int = 1) -> EngineConfig:
    """Caps are per instance in the settings; each partition's engine gets its share of
    the account cap and of the memory budget (an instance owning every partition has all
    of it). The hot set is sized from that share unless set as a count."""
    max_accounts = max(1, settings.max_accounts // partitions)
    hot_accounts = settings.hot_accounts or hot_capacity_for(
        settings.account_memory_budget // partitions, max_accounts)
    return EngineConfig(
        window_s=settings.window_days * 86_400.0,
        allowed_lateness_s=settings.allowed_lateness_s,
        burst_window_s=settings.burst_window_s,
        tier_scheme=settings.tier_scheme,
        max_accounts=max_accounts,
        max_posts_per_account=settings.max_posts_per_account,
        max_event_ids=max(1_000, settings.max_event_ids // partitions),
        hot_accounts=hot_accounts,
        native_fold=settings.native_fold,
        native_scoring=settings.native_scoring,
    )


def fold_records(state: PartitionState, records: Sequence[Any], start: int, *,
                 settings: Settings,
                 now: float, partitions: int, budget_s: float,
                 outcomes: Counter[tuple[str, str]], rejected: list[DeadLetter]) -> int:
    """Folds the partition's `records[start:]` until the end or, checked every
    YIELD_CHECK_RECORDS records, until `budget_s` is spent; returns the index of the first
    record not folded, and `state.position` is past the last one folded. Compiled
    (`Engine.fold_records`) where the engine folds natively, with the records it leaves
    to Python folded by `_fold_one` in their place; otherwise each by `_fold_one`."""
    engine = state.engine
    index = start
    if engine.folds_natively:
        counts = [0] * len(FOLD_OUTCOMES)

        def otherwise(record: Any) -> None:
            _fold_one(state, record, settings, now, partitions, outcomes, rejected)

        index = engine.fold_records(
            records, start, state.partition, state.interactions_out, partitions, now=now,
            max_event_bytes=settings.max_event_bytes,
            max_future_skew_s=settings.max_future_skew_s, budget_s=budget_s,
            outcomes=counts, otherwise=otherwise)
        for outcome, count in zip(FOLD_OUTCOMES, counts, strict=True):
            if count:
                outcomes[outcome] += count
    else:
        deadline = time.perf_counter() + budget_s
        while index < len(records):
            if ((index - start) % YIELD_CHECK_RECORDS == YIELD_CHECK_RECORDS - 1
                    and time.perf_counter() > deadline):
                break
            _fold_one(state, records[index], settings, now, partitions, outcomes, rejected)
            index += 1
    if index > start:
        state.position = records[index - 1].offset + 1
    return index


def _fold_one(state: PartitionState, record: Any, settings: Settings, now: float,
              partitions: int, outcomes: Counter[tuple[str, str]],
              rejected: list[DeadLetter]) -> None:
    """One record, the Python way (the reference)."""
    result = decode_event(
        record.key, record.value, now=now,
        max_event_bytes=settings.max_event_bytes,
        max_future_skew_s=settings.max_future_skew_s,
    )
    if isinstance(result, Rejection):
        source = SourceRecord.of(settings.events_topic, state.partition, record)
        rejected.append(DeadLetter(source, result))
        outcomes["invalid", "dead_lettered"] += 1
    elif isinstance(result, _INTERACTIONS):
        actor = actor_hash(result.actor_id)  # once: for the fold and the route
        outcome = state.engine.apply(result, state.partition, actor)
        outcomes[result.type, outcome] += 1
        if outcome is Outcome.COUNTED:
            state.route_interaction(actor, result.account_id, result.occurred_at_s,
                                    partitions)
    else:
        outcome = state.engine.apply(result, state.partition)
        outcomes[result.type, outcome] += 1


# A partition's next transaction as taken: its producer (None: it has none, nothing is
# taken) and its checkpoint (None: nothing new since the last one).
Taken = tuple[PartitionState, AIOKafkaProducer | None, Checkpoint | None]
# One record a transaction sends to a partition: key, value, headers.
Outgoing = tuple[bytes | None, bytes | None, Headers]


@dataclass(frozen=True, slots=True)
class SnapshotResult:
    path: str
    size_bytes: int
    accounts: int
    offsets: dict[int, int]
    pause_s: float
    duration_s: float


@dataclass(frozen=True, slots=True)
class Owned:
    """The account's partition is here and answers."""

    state: PartitionState


@dataclass(frozen=True, slots=True)
class Elsewhere:
    """Another instance owns the account's partition."""

    owner_url: str
    generation: int


@dataclass(frozen=True, slots=True)
class Unavailable:
    """Nobody can answer for the partition right now (restoring, moving, no owner)."""

    reason: str


Location = Owned | Elsewhere | Unavailable


async def _close(client: AIOKafkaConsumer | AIOKafkaProducer, name: str) -> None:
    """Stops a Kafka client; its failure must neither hide the other clients' close nor
    fail a shutdown that has already written its snapshot. With the broker gone, aiokafka
    can raise CancelledError from `stop()` although nobody cancelled this task (seen in
    tests/integration/test_broker_loss.py); a real cancellation still propagates."""
    try:
        await asyncio.wait_for(client.stop(), BROKER_CALL_TIMEOUT_S)
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
        log.warning("kafka client stop was cancelled inside aiokafka", extra={"client": name})
    except Exception as error:  # the process is stopping; say so and go on
        log.warning("kafka client did not stop cleanly",
                    extra={"client": name, "reason": repr(error)})


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: StreamProcessor) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await self._owner.partitions_revoked(sorted({tp.partition for tp in revoked}))

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        # The three inputs are co-partitioned and assigned together (membership.py).
        await self._owner.partitions_assigned(sorted({tp.partition for tp in assigned}))


class StreamProcessor:
    def __init__(self, settings: Settings, metrics: Metrics,
                 clients: KafkaClients | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.clients = clients or KafkaClients(settings)
        self.states: dict[int, PartitionState] = {}
        self.partition_count: int | None = None
        self.cluster = ClusterMap()
        self.joined = False  # an assignment has arrived in this life of the consumer
        self.last_joined_at: float | None = None  # wall clock, over all lives
        self.dead_letters: DeadLetterPublisher | None = None
        self.broker_unreachable_since: float | None = None  # wall clock
        self.last_snapshot_at: float | None = None
        self._producers: dict[int, AIOKafkaProducer] = {}
        self._restores: dict[int, asyncio.Task[None]] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._stopping = asyncio.Event()
        self._snapshot_requests: list[asyncio.Future[SnapshotResult]] = []
        self._in_flight: asyncio.Task[SnapshotResult] | None = None
        self.standbys = Standbys(
            self.clients.changelog_reader,
            StandbyTopics(settings.changelog, settings.actors),
            self._new_state, self._load_local_snapshot)
        self._assignor = MembershipAssignor(settings.own_url, self._held_partitions,
                                            self._membership_changed,
                                            warm=lambda: sorted(self.standbys.states),
                                            standby_replicas=settings.standby_replicas)
        self._membership_event = asyncio.Event()
        self._failure: Exception | None = None  # found in a callback; raised by the loop
        self._checkpointing = asyncio.Lock()
        self._commit_task: asyncio.Task[list[PartitionState]] | None = None
        self._assigned: set[int] = set()  # the group's latest assignment to this member
        self._change_policy = ChangePolicy(settings.score_change_step,
                                           settings.score_change_interval_s)
        self._rescore = RescoreBudget(settings.score_change_share, settings.commit_interval_s)
        self._last_checkpoint_at = time.monotonic()
        # Told (partition, accounts) of what each checkpoint carries: discovery follows it.
        self.on_checkpoint: Callable[[int, Iterable[str]], None] | None = None
        # Told each score the checkpoint computed for the change stream: discovery indexes
        # it instead of scoring the account a second time.
        self.on_scored: Callable[[int, str, AccountScore | None], None] | None = None
        metrics.watch_partitions(lambda: list(self.states.values()),
                                 lambda: self.last_snapshot_at)
        # Events, and the two internal topics of the audience signal, co-partitioned.
        self._inputs = [settings.events_topic, settings.actors, settings.signals]

    # --- what the HTTP layer reads ----------------------------------------------------

    @property
    def ready(self) -> bool:
        return all(self.readiness().values())

    def readiness(self) -> dict[str, bool]:
        return {
            "broker_reachable": self.broker_unreachable_since is None and self.joined,
            "partitions_restored": self.joined and all(
                state.status is Status.ACTIVE for state in self.states.values()),
            # After a move, until each has folded again what its previous owner answered
            # from (`PartitionState.catch_up`): its queries answer 503 meanwhile.
            "partitions_caught_up": all(
                state.behind_previous_owner() is None for state in self.states.values()),
            "dead_letter_topic_writable": self.dead_letters is not None
            and self.dead_letters.healthy,
        }

    def locate(self, account_id: str) -> tuple[int | None, Location]:
        """Where an account's score can be read, and the partition it lives in."""
        partitions = self.partition_count
        if partitions is None:
            return None, Unavailable("this instance has not reached Kafka yet")
        partition = partition_for(account_id, partitions)
        state = self.states.get(partition)
        if state is not None:
            if state.status is Status.ACTIVE:
                if (behind := state.behind_previous_owner()) is not None:
                    to_go = f" ({behind} records to go)" if behind else ""
                    return partition, Unavailable(
                        f"partition {partition} moved to this instance and answers once it "
                        f"has consumed its input as far as it reached then{to_go}: its "
                        "previous owner may have answered from those records")
                return partition, Owned(state)
            return partition, Unavailable(
                f"partition {partition} is being restored on this instance")
        owner = self.cluster.owner_of(partition)
        if owner is None:
            return partition, Unavailable(f"partition {partition} has no owner right now "
                                          "(the group is rebalancing)")
        if owner == self.settings.own_url:
            return partition, Unavailable(f"partition {partition} is moving to this instance")
        return partition, Elsewhere(owner, self.cluster.generation)

    def score(self, account_id: str) -> tuple[AccountScore | None, Freshness] | None:
        """The local answer for an account whose partition is active here, else None."""
        _, where = self.locate(account_id)
        if not isinstance(where, Owned):
            return None
        return where.state.engine.score(account_id), where.state.freshness()

    async def membership_changed(self, since_generation: int, timeout_s: float) -> bool:
        """Waits until the group's generation moves past `since_generation`."""
        deadline = time.monotonic() + timeout_s
        while self.cluster.generation <= since_generation:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._membership_event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._membership_event.wait(), remaining)
        return True

    def local_partitions(self) -> list[dict[str, Any]]:
        """Owned partitions (active or restoring), then standby copies: for a standby,
        the lag is the changelog records it has yet to read."""
        owned = [
            {"partition": p, "state": s.status.value, "lag_messages": s.lag,
             "position": s.position,
             "seconds_since_progress": s.freshness().seconds_since_progress,
             "accounts": len(s.engine.accounts),
             "restored_records": s.restored_records}
            for p, s in sorted(self.states.items())
        ]
        return owned + [
            {"partition": p, "state": s.status.value, "lag_messages": self.standbys.lag(s),
             "position": s.position, "seconds_since_progress": None,
             "accounts": len(s.engine.accounts), "restored_records": s.restored_records}
            for p, s in sorted(self.standbys.states.items())
        ]

    # --- the consumer's life ----------------------------------------------------------

    def stop(self) -> None:
        self._stopping.set()

    async def request_snapshot(self) -> SnapshotResult:
        future: asyncio.Future[SnapshotResult] = asyncio.get_running_loop().create_future()
        self._snapshot_requests.append(future)
        return await future

    async def run(self) -> None:
        """Connects (retrying), checks topics, consumes until stopped. Raises when the
        consumer cannot go on; the supervisor decides whether to start it again."""
        settings = self.settings
        self.joined = False
        admin = self.clients.admin()
        backoff = Backoff(settings.connect_retry_initial_s, settings.connect_retry_max_s)
        started = await with_retries("connect", admin.start, backoff,
                                     self._connect_attempt, self._stopping)
        if started is None and self._stopping.is_set():
            await _close_admin(admin)
            return
        try:
            topology = await wait_for_topics(admin, settings, self._stopping)
        finally:
            await _close_admin(admin)
        if topology is None:
            return
        self._check_local_state(topology.partitions)
        self.partition_count = topology.partitions
        producer = self.clients.producer()
        consumer = self.clients.group_consumer(self._assignor)
        self._consumer = consumer
        consumer.subscribe(self._inputs, listener=_Rebalance(self))
        try:
            await with_retries("start producer", producer.start, backoff,
                               self._connect_attempt, self._stopping)
            await with_retries("start consumer", consumer.start, backoff,
                               self._connect_attempt, self._stopping)
            self.dead_letters = DeadLetterPublisher(
                producer, settings.dlq_topic, self.metrics,
                settings.dlq_retry_initial_s, settings.dlq_retry_max_s,
                settings.dlq_send_timeout_s,
            )
            log.info("consuming", extra={"topic": settings.events_topic,
                                         "group": settings.consumer_group,
                                         "partitions": topology.partitions,
                                         "advertised_url": settings.own_url,
                                         "native_fold": settings.native_fold
                                         and NATIVE_FOLD_AVAILABLE})
            standbys = asyncio.create_task(self._follow_standbys(), name="standbys")
            try:
                await self._consume(consumer)
            finally:
                standbys.cancel()
                await asyncio.gather(standbys, return_exceptions=True)
            active = sum(1 for s in self.states.values() if s.status is Status.ACTIVE)
            committed = len(await self._checkpoint_all())
            await self._finish_in_flight()
            await self._write_snapshot()
            if committed == active:
                log.info("stopped cleanly after a final checkpoint and snapshot")
            else:
                log.warning("stopped; the last checkpoint of some partitions did not commit"
                            " (their owner next replays from the previous one)",
                            extra={"partitions": active, "committed": committed})
        finally:
            self.metrics.consumer_ready.set(0)
            if self._commit_task is not None:  # left in flight by a failure: end it first
                self._commit_task.cancel()
                await asyncio.gather(self._commit_task, return_exceptions=True)
                self._commit_task = None
            self._failure = None  # raised, or moot: the next life starts from Kafka
            for task in self._restores.values():
                task.cancel()
            self._restores.clear()
            self.states.clear()
            self._assigned = set()
            self._assignor.forget()
            self.joined = False
            self._consumer = None
            try:
                await _close(consumer, "consumer")
            finally:
                await _close(producer, "producer")
                for partition in list(self._producers):
                    await _close(self._producers.pop(partition), f"changelog-{partition}")

    async def _follow_standbys(self) -> None:
        """Keeps the standby copies warm; a failure of their reader (the broker away)
        costs the copies, which it starts again from the local snapshot."""
        if self.settings.standby_replicas == 0:
            return
        backoff = Backoff(self.settings.connect_retry_initial_s,
                          self.settings.connect_retry_max_s)
        while not self._stopping.is_set():
            try:
                await self.standbys.run(self._stopping)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # retried: a standby is an optimisation
                delay = backoff.next_delay()
                log.warning("standby replicas failed; starting them again", exc_info=not
                            isinstance(error, KafkaError | OSError | TimeoutError), extra={
                                "retry_in_s": round(delay, 2),
                                "reason": f"{type(error).__name__}: {error}"})
                self.standbys.want(self.cluster.standby_here - set(self.states))
                await asyncio.sleep(delay)

    def _connect_attempt(self, succeeded: bool) -> None:
        self.metrics.connect_attempts.labels("succeeded" if succeeded else "failed").inc()
        if succeeded:
            self._broker_reachable()
        else:
            self._broker_unreachable()

    def _broker_reachable(self) -> None:
        if self.broker_unreachable_since is not None:
            log.info("broker reachable again", extra={
                "unreachable_s": round(time.time() - self.broker_unreachable_since, 1)})
        self.broker_unreachable_since = None
        self.metrics.broker_reachable.set(1)

    def _broker_unreachable(self) -> None:
        if self.broker_unreachable_since is None:
            self.broker_unreachable_since = time.time()
            self.metrics.broker_unreachable_since.set(self.broker_unreachable_since)
        self.metrics.broker_reachable.set(0)

    def _check_local_state(self, partitions: int) -> None:
        """Local snapshots of partitions the topic no longer has: the topic shrank, or
        this is another topic's state. Either way, refuse rather than serve half."""
        directory = self.settings.snapshot_dir
        if not directory.is_dir():
            return
        known = [int(path.name.split("-", 1)[1]) for path in directory.glob("partition-*")
                 if path.name.split("-", 1)[1].isdigit() and any(path.iterdir())]
        beyond = sorted(p for p in known if p >= partitions)
        if beyond:
            raise FatalConfigError(
                f"{self.settings.events_topic!r} has {partitions} partitions but the state in "
                f"{directory} has partitions {beyond}: the topic has fewer partitions than "
                f"the state expects. Kafka cannot shrink a topic; point the service at the "
                f"right topic, or remove {directory} to start over.")

    def _held_partitions(self) -> list[int]:
        return sorted(self.states)

    def _membership_changed(self, cluster: ClusterMap) -> None:
        self.cluster = cluster
        self._membership_event.set()
        self.metrics.rebalances.inc()

    # --- rebalances -------------------------------------------------------------------

    async def partitions_revoked(self, revoked: list[int]) -> None:
        """Eager rebalancing revokes everything; the partitions that stay here are kept
        (sticky assignment), so only commit now: whoever gets one next restores exactly
        what is committed, and a partition that goes to this instance's standby set
        goes as exactly that (`partitions_assigned`)."""
        self._assigned = set()  # until the next assignment: nothing to take back
        try:
            await self._checkpoint_all()
        except Exception as error:  # aiokafka only logs it: the loop raises it
            self._failure = self._failure or error
            raise

    async def partitions_assigned(self, assigned: list[int]) -> None:
        if self.partition_count is not None and any(
                p >= self.partition_count for p in assigned):
            self._partitions_changed()
            return
        self.joined = True
        self.last_joined_at = time.time()
        consumer = self._consumer
        leaving = [p for p in self.states if p not in assigned]
        kept_warm = [p for p in leaving if self._may_keep_warm(p)]
        for partition in leaving:
            if partition not in kept_warm:
                self._drop(partition, "revoked")
        for partition in assigned:
            state = self.states.get(partition)
            if state is None:
                self._start_restore(partition, warm=self.standbys.take(partition))
            elif state.status is Status.ACTIVE and consumer is not None:
                self._seek(consumer, state)  # before any wait: the consumer would refetch
        # Only now: a partition in it that has no state here was fenced, not being taken.
        self._assigned = set(assigned)
        if kept_warm:
            await self._hand_over(kept_warm)
        self.standbys.want(self.cluster.standby_here - set(assigned))
        log.info("partitions assigned", extra={"partitions": assigned,
                                               "generation": self.cluster.generation})

    def _partitions_changed(self) -> None:
        """The events topic gained partitions: its changelog no longer matches it, and
        accounts now map to other partitions. No retry can fix that."""
        found = self._consumer.partitions_for_topic(self.settings.events_topic) \
            if self._consumer is not None else None
        self._failure = FatalConfigError(
            f"{self.settings.events_topic!r} now has {len(found or ())} partitions, but the "
            f"state (and the changelog {self.settings.changelog!r}) has "
            f"{self.partition_count}: topics must stay co-partitioned. Restore the partition "
            f"count, or rebuild the state: delete the changelog and the snapshots.")

    def _take_back_fenced(self) -> None:
        """A partition dropped because its producer was fenced, that the group still
        assigns here once the rebalance has settled, is ours: restore it again (its
        producer then fences the other one)."""
        for partition in sorted(self._assigned - set(self.states)):
            log.warning("partition still assigned here after it was fenced; restoring it",
                        extra={"partition": partition})
            self._start_restore(partition, warm=self.standbys.take(partition))

    def _may_keep_warm(self, partition: int) -> bool:
        """Whether a partition taken away from this instance goes to its standby set
        (the group names this instance one of its standbys) if its state allows."""
        state = self.states.get(partition)
        return (state is not None and state.status is Status.ACTIVE
                and partition in self.cluster.standby_here
                and self.settings.standby_replicas > 0)

    async def _hand_over(self, partitions: list[int]) -> None:
        """Partitions taken away that this instance keeps warm. The loop stops folding
        them at once (they leave `states`; it went on fetching during the rebalance, and
        a checkpoint may be in flight), then their last changes are committed. Each one
        whose state is then exactly what its changelog holds goes on as the standby
        copy; one whose commit failed holds changes the changelog never got, so it is
        dropped and its standby copy rebuilt from the snapshot and the changelog."""
        leaving = [state for partition in partitions
                   if (state := self.states.pop(partition, None)) is not None]
        async with self._checkpointing:  # after the one in flight, if any
            if self._failure is None:  # else none may be taken: the consumer fails first
                written = await asyncio.gather(
                    *(self._commit(*self._take(state, 0)) for state in leaving))
            else:
                written = [False] * len(leaving)
        for state, ok in zip(leaving, written, strict=True):
            warm = ok and state.committed
            self._drop(state.partition, "revoked; kept as a standby" if warm else "revoked")
            if warm:
                self.standbys.adopt(state)

    def _drop(self, partition: int, why: str) -> None:
        """The partition is no longer served here, at once; its producer is closed."""
        self.states.pop(partition, None)
        task = self._restores.pop(partition, None)
        if task is not None:
            task.cancel()
        producer = self._producers.pop(partition, None)
        if producer is not None:
            asyncio.get_running_loop().create_task(_close(producer, f"changelog-{partition}"))
        self.metrics.forget_partition(partition)
        log.info("partition dropped", extra={"partition": partition, "reason": why})

    def _tps(self, partition: int) -> list[TopicPartition]:
        return [TopicPartition(topic, partition) for topic in self._inputs]

    def _seek(self, consumer: AIOKafkaConsumer, state: PartitionState) -> None:
        """Never `seek_to_beginning` here: inside a rebalance callback it waits for an
        offset lookup (seconds), long enough to lose the group. Offset 0 below the log's
        start is reset to its beginning by `auto_offset_reset=earliest`."""
        positions = (state.position, state.actors_position, state.signals_position)
        for tp, position in zip(self._tps(state.partition), positions, strict=True):
            consumer.seek(tp, position or 0)

    def _new_state(self, partition: int) -> PartitionState:
        assert self.partition_count is not None
        return PartitionState(partition, engine_config(self.settings, self.partition_count),
                              self._change_policy)

    def _start_restore(self, partition: int, warm: PartitionState | None = None) -> None:
        state = warm or self._new_state(partition)
        self.states[partition] = state
        consumer = self._consumer
        if consumer is not None:
            consumer.pause(*self._tps(partition))
        task = asyncio.get_running_loop().create_task(self._restore(state, warm is not None),
                                                      name=f"restore-{partition}")
        self._restores[partition] = task

    async def _restore(self, state: PartitionState, warm: bool = False) -> None:
        """Local snapshot (fast path) unless the state is a warm standby, then the
        changelog from the offset the state reflects, then consumption from the position
        it reflects; retried while the broker is away, for as long as the partition is
        assigned here. Its producer starts first: that fences a previous owner before
        the changelog is read to its end."""
        partition = state.partition
        started = time.perf_counter()
        backoff = Backoff(self.settings.connect_retry_initial_s,
                          self.settings.connect_retry_max_s)
        phases: dict[str, float] = {}
        while True:
            try:
                phases = {}
                clock = time.perf_counter()
                await self._ensure_producer(partition)
                phases["fence_s"] = time.perf_counter() - clock
                if not warm:
                    clock = time.perf_counter()
                    await self._load_local_snapshot(state)
                    phases["snapshot_s"] = time.perf_counter() - clock
                state = await self._read_committed_state(state, phases)
                break
            except asyncio.CancelledError:
                raise
            except ProducerFenced:
                log.warning("partition taken over while restoring", extra={
                    "partition": partition})
                self._drop(partition, "fenced while restoring")
                return
            except Exception as error:  # retried; a bug shows in the log, not as a hang
                delay = backoff.next_delay()
                log.warning("restore failed; retrying", exc_info=not isinstance(
                    error, KafkaError | OSError | TimeoutError), extra={
                    "partition": partition, "retry_in_s": round(delay, 2),
                    "reason": f"{type(error).__name__}: {error}"})
                fresh = PartitionState(partition, state.engine.config, self._change_policy)
                self.states[partition] = state = fresh
                warm = False
                await asyncio.sleep(delay)
        state.finish_restore()
        state.catch_up(self.settings.takeover_catch_up_s)
        self._restores.pop(partition, None)
        consumer = self._consumer
        if consumer is not None and self.states.get(partition) is state:
            self._seek(consumer, state)
            consumer.resume(*self._tps(partition))
        seconds = time.perf_counter() - started
        self.metrics.restore_seconds.observe(seconds)
        self.metrics.restores.labels("standby" if warm else "cold").inc()
        log.info("partition restored", extra={
            "partition": partition, "from_standby": warm,
            "accounts": len(state.engine.accounts),
            "changelog_records": state.restored_records, "position": state.position,
            "seconds": round(seconds, 3),
            **{phase: round(value, 3) for phase, value in phases.items()}})

    async def _ensure_producer(self, partition: int) -> AIOKafkaProducer:
        producer = self._producers.get(partition)
        if producer is None:
            producer = self.clients.transactional_producer(partition)
            try:
                await asyncio.wait_for(producer.start(), BROKER_CALL_TIMEOUT_S * 4)
            except BaseException:
                await _close(producer, f"changelog-{partition}")
                raise
            self._producers[partition] = producer
        return producer

    async def _load_local_snapshot(self, state: PartitionState) -> None:
        store = snapshots.partition_store(self.settings.snapshot_dir, state.partition,
                                          self.settings.snapshots_kept)
        snapshot = await asyncio.to_thread(store.load_newest)
        if snapshot is None:
            return
        actors = snapshot.actors
        with snapshots.collector_paused():
            try:
                state.load_snapshot(snapshot.header, snapshot.account_pairs(), actors)
            except ValueError as unusable:  # taken with another period or month view
                log.warning("snapshot's actor activity unusable; replayed from the "
                            "repartition topic", extra={"partition": state.partition,
                                                        "reason": str(unusable)})
                actors = None
                state.load_snapshot(snapshot.header, snapshot.account_pairs())
        log.info("partition snapshot loaded", extra={
            "partition": state.partition, "path": str(snapshot.path),
            "accounts": len(state.engine.accounts), "changelog_next": state.changelog_next,
            "actors": len(state.actors) if actors is not None else None,
            "actors_next": state.actors_warm_next})

    async def _read_committed_state(self, state: PartitionState, phases: dict[str, float]
                                    ) -> PartitionState:
        """What Kafka has committed for the partition beyond what the state reflects, with
        one reader: the changelog to its end (accounts, ids, the score-change gate, the
        clock), then the judged part of the repartition topic into the actor activity."""
        reader = self.clients.changelog_reader()
        clock = time.perf_counter()
        await asyncio.wait_for(reader.start(), BROKER_CALL_TIMEOUT_S * 4)
        phases["reader_s"] = time.perf_counter() - clock
        try:
            for phase, read in (("changelog_s", self._read_changelog),
                                ("actors_s", self._warm_actors)):
                clock = time.perf_counter()
                state = await read(reader, state)
                phases[phase] = time.perf_counter() - clock
        finally:
            await _close(reader, f"restore-reader-{state.partition}")
        return state

    async def _read_changelog(self, reader: AIOKafkaConsumer, state: PartitionState
                              ) -> PartitionState:
        tp = TopicPartition(self.settings.changelog, state.partition)
        reader.assign([tp])
        begin = (await reader.beginning_offsets([tp]))[tp]
        end = (await reader.end_offsets([tp]))[tp]
        if not begin <= state.changelog_next <= end:
            # The snapshot does not belong to this changelog (recreated or truncated).
            log.warning("local snapshot does not match the changelog; reading it all",
                        extra={"partition": state.partition,
                               "snapshot_changelog_next": state.changelog_next,
                               "changelog_begin": begin, "changelog_end": end})
            state = PartitionState(state.partition, state.engine.config,
                                   self._change_policy)
            self.states[state.partition] = state
        reader.seek(tp, max(begin, state.changelog_next))
        restored_before = state.restored_records
        with snapshots.collector_paused():
            while await reader.position(tp) < end:
                batch = await reader.getmany(tp, timeout_ms=500,
                                             max_records=RESTORE_FETCH_RECORDS)
                for record in batch.get(tp, ()):
                    state.apply_changelog(record.key, record.value)
                self.metrics.restored_records.inc(len(batch.get(tp, ())))
                await asyncio.sleep(0)
        state.changelog_next = end
        if state.restored_records - restored_before > RESTORE_FETCH_RECORDS:
            gc.freeze()  # restored state lives long: keep the collector off it
        return state

    async def _warm_actors(self, reader: AIOKafkaConsumer, state: PartitionState
                           ) -> PartitionState:
        """The actor side's activity is a function of its repartition partition: replay
        what was already judged (up to the committed offset), emitting nothing; from
        where the local snapshot's activity or a standby got to, unless retention has
        deleted records after that (then all of it, from the topic's beginning)."""
        until = state.actors_position
        if not until or state.actors_warm_next >= until:
            return state
        tp = TopicPartition(self.settings.actors, state.partition)
        reader.assign([tp])
        begin = (await reader.beginning_offsets([tp]))[tp]
        reader.seek(tp, state.actors_replay_from(begin))
        while await reader.position(tp) < until:
            batch = await reader.getmany(tp, timeout_ms=500, max_records=1_000)
            for record in batch.get(tp, ()):
                if record.offset < until:
                    state.warm_actors(record.value)
                    state.actors_warm_next = record.offset + 1
            await asyncio.sleep(0)
        return state

    # --- the loop ---------------------------------------------------------------------

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        settings = self.settings
        now = time.monotonic()
        next_snapshot = now + settings.snapshot_interval_s
        next_checkpoint = now + settings.commit_interval_s
        next_lag = next_expiry = next_catch_up_check = now
        expiry: Iterator[int] | None = None
        while not self._stopping.is_set():
            if self._failure is not None:
                failure, self._failure = self._failure, None
                raise failure
            batch = await consumer.getmany(
                timeout_ms=settings.fetch_timeout_ms, max_records=settings.fetch_max_records
            )
            if batch:
                await self._process(batch)
            now = time.monotonic()
            if now >= next_catch_up_check:
                await self._note_catch_up(consumer)
                next_catch_up_check = now + CATCH_UP_CHECK_INTERVAL_S
            if now >= next_checkpoint and not self._committing():
                next_checkpoint = now + settings.commit_interval_s
                if self._snapshot_requests or now >= next_snapshot:
                    # A snapshot must hold exactly the committed state: this checkpoint
                    # is awaited, and nothing is folded until the snapshot has its copy.
                    committed = await self._checkpoint_all()
                    if self._snapshot_requests or committed:
                        await self._start_snapshot(committed)
                        next_snapshot = now + settings.snapshot_interval_s
                else:
                    await self._commit_in_background()
            if now >= next_expiry and expiry is None:
                expiry = self._expire_all()
                next_expiry = now + settings.expiry_interval_s
            if expiry is not None:
                await asyncio.sleep(0)  # what waited behind the batch goes first
                if next(expiry, None) is None:
                    expiry = None  # one slice per turn: ingestion and queries go on between
            if now >= next_lag:
                await self._update_lag(consumer)
                self._take_back_fenced()
                self.metrics.standby_partitions.set(len(self.standbys.states))
                next_lag = now + LAG_INTERVAL_S
            self.metrics.consumer_ready.set(1 if self.ready else 0)

    async def _note_catch_up(self, consumer: AIOKafkaConsumer) -> None:
        """Tells each partition that waits to catch up after a move how far its input is
        consumed and where it ends: the consumer's position, which steps over transaction
        markers, and the last stable offset of the newest fetch (no request: asking the
        broker for end offsets took ~0.5 s here)."""
        for state in list(self.states.values()):
            if state.catching_up and state.status is Status.ACTIVE:
                events = TopicPartition(self.settings.events_topic, state.partition)
                with contextlib.suppress(KafkaError, TimeoutError, AssertionError):
                    # At once unless its offset is being reset; then on a later turn.
                    consumed = await asyncio.wait_for(consumer.position(events),
                                                      CATCH_UP_POSITION_WAIT_S)
                    end = state.note_input(consumed, consumer.last_stable_offset(events))
                    if end is not None:
                        _log_catch_up_end(state.partition, consumed, end)

    def _committing(self) -> bool:
        return self._commit_task is not None and not self._commit_task.done()

    async def _commit_in_background(self) -> None:
        """Checkpoints while the loop goes on folding: the changes and positions are taken
        here, between batches, then the transactions wait several round trips, ~15 % of
        the loop's time when it waited with them (docs/benchmarks.md). What is folded
        meanwhile goes into the next one; one is in flight at a time (the lock is held
        until it is done, even if it is cancelled before it starts)."""
        await self._checkpointing.acquire()  # at once, unless a rebalance's checkpoint runs
        try:
            taken = self._take_all()
        except BaseException:
            self._checkpointing.release()
            raise
        self._commit_task = asyncio.create_task(self._commit_all(taken), name="checkpoint")
        self._commit_task.add_done_callback(self._committed_in_background)

    def _committed_in_background(self, task: asyncio.Task[list[PartitionState]]) -> None:
        """A failure beyond those a checkpoint requeues is recorded before the lock is
        released, so that no checkpoint after it (the loop's, a rebalance's, the final
        one) commits offsets past the changes it took. Cancelled: by `run` ending, or by
        aiokafka raising CancelledError (as it can with the broker gone, see `_close`)."""
        if self._failure is None and (task.cancelled() or task.exception() is not None):
            error = None if task.cancelled() else task.exception()
            self._failure = error if isinstance(error, Exception) else RuntimeError(
                f"a checkpoint in flight ended with {error or 'a cancellation'!r}")
        self._checkpointing.release()

    def _expire_all(self) -> Iterator[int]:
        for state in list(self.states.values()):
            # A partition with no events yet has no stream time, so nothing to expire.
            if state.status is Status.ACTIVE and state.clock.stream_time != -math.inf:
                state.actors.expire(state.clock.stream_time)
                yield from state.engine.expire_in_slices()

    async def _process(self, batch: dict[TopicPartition, list[Any]]) -> None:
        started = time.perf_counter()
        settings = self.settings
        wall = time.time()
        outcomes: Counter[tuple[str, str]] = Counter()
        rejected: list[DeadLetter] = []
        messages = 0
        partitions = self.partition_count or 1
        yielded_at = started
        for tp, listed in batch.items():
            records = records_of(listed)
            state = self.states.get(tp.partition)
            if state is None or state.status is not Status.ACTIVE:
                continue  # revoked or restoring meanwhile: the owner will consume these
            if tp.topic != settings.events_topic:
                self._process_internal(state, tp.topic, records, partitions)
                continue
            partition = tp.partition
            index = 0
            while True:
                index = fold_records(state, records, index, settings=settings, now=wall,
                                     partitions=partitions,
                                     budget_s=yielded_at + YIELD_AFTER_S - time.perf_counter(),
                                     outcomes=outcomes, rejected=rejected)
                if index >= len(records):
                    break
                await asyncio.sleep(0)  # let score queries in between
                yielded_at = time.perf_counter()
                if self.states.get(partition) is not state:
                    break  # dropped while we yielded
            messages += len(records)
            state.progressed()
        if rejected and self.dead_letters is not None:
            await self.dead_letters.publish(rejected)
        for (event_type, counted_as), count in outcomes.items():
            self.metrics.events.labels(event_type, counted_as).inc(count)
        self.metrics.batch_messages.observe(messages)
        self.metrics.batch_seconds.observe(time.perf_counter() - started)

    def _process_internal(self, state: PartitionState, topic: str, records: Sequence[Any],
                          partitions: int) -> None:
        """The audience signal's two internal inputs of this partition."""
        if topic == self.settings.actors:
            judged = sum(state.observe_actors(record.value, partitions) for record in records)
            state.actors_position = records[-1].offset + 1
            self.metrics.audience_interactions.inc(judged)
        else:
            folded = sum(state.fold_signals(record.value) for record in records)
            state.signals_position = records[-1].offset + 1
            self.metrics.audience_signals.inc(folded)

    # --- checkpoints: changelog and offsets in one transaction per partition ----------

    async def _checkpoint_all(self) -> list[PartitionState]:
        """Commits every active partition; returns those whose state now equals what is
        committed (what a local snapshot may hold). One at a time: aiokafka calls the
        rebalance listener from its coordinator's task, which can arrive while the loop's
        own checkpoint is in a transaction on the same producers."""
        async with self._checkpointing:
            return await self._commit_all(self._take_all())

    def _take_all(self) -> list[Taken]:
        """What each active partition's next transaction commits, taken at one instant:
        called by the loop between batches, so a batch's dead letters are written before
        its offsets can be. The caller holds `_checkpointing` until they are committed.
        Never after a checkpoint failed beyond requeueing: the consumer must fail first."""
        if self._failure is not None:
            raise self._failure
        active = [s for s in self.states.values() if s.status is Status.ACTIVE]
        now = time.monotonic()
        rescore = self._rescore.allowances(
            now - self._last_checkpoint_at,
            {s.partition: s.rescores_pending + s.engine.accounts.changed_count()
             for s in active})
        self._last_checkpoint_at = now
        return [self._take(s, rescore[s.partition]) for s in active]

    async def _commit_all(self, taken: list[Taken]) -> list[PartitionState]:
        results = await asyncio.gather(*(self._commit(*one) for one in taken))
        self.metrics.score_changes_pending.set(
            sum(state.rescores_pending for state, _, _ in taken))
        return [state for (state, _, _), ok in zip(taken, results, strict=True) if ok]

    def _take(self, state: PartitionState, rescore: int) -> Taken:
        partition = state.partition
        producer = self._producers.get(partition)
        if producer is None:
            return state, None, None
        if self.on_checkpoint is not None and state.engine.accounts.changed_count():
            self.on_checkpoint(partition, state.engine.accounts.changed_ids())
        settings = self.settings
        checkpoint = state.checkpoint(settings.events_topic, settings.actors, settings.signals,
                                      rescore)
        if checkpoint is None:
            return state, producer, None
        started = time.perf_counter()
        if self.on_scored is not None:
            for account_id, score in checkpoint.score_changes:
                self.on_scored(partition, account_id, score)
        # The score-change stream, in the same transaction as the state it describes.
        checkpoint.produced += [
            (settings.scores_topic, state.partition, account_id.encode(),
             None if score is None else score_json(score), _gate_headers(score))
            for account_id, score in checkpoint.score_changes]
        self._rescore.spent(checkpoint.rescored, checkpoint.rescore_seconds
                            + time.perf_counter() - started)
        self.metrics.score_rescores.inc(checkpoint.rescored)
        self.metrics.score_changes_published.inc(len(checkpoint.score_changes))
        return state, producer, checkpoint

    async def _commit(self, state: PartitionState, producer: AIOKafkaProducer | None,
                      checkpoint: Checkpoint | None) -> bool:
        if producer is None:
            return False
        if checkpoint is None:
            return True  # nothing new: the committed state is the current one
        partition = state.partition
        started = time.perf_counter()
        try:
            await asyncio.wait_for(self._transaction(producer, state, checkpoint),
                                   BROKER_CALL_TIMEOUT_S * 2)
        except ProducerFenced:
            log.error("another instance took this partition over (fenced); dropping it",
                      extra={"partition": partition})
            self._drop(partition, "fenced")
            return False
        except (KafkaError, OSError, TimeoutError) as error:
            state.requeue_checkpoint(checkpoint)
            self.metrics.checkpoint_failures.inc()
            log.warning("checkpoint failed; its changes are written with the next one",
                        extra={"partition": partition,
                               "reason": f"{type(error).__name__}: {error}"})
            if self.states.get(partition) is state:
                # Not once dropped meanwhile: the id is the new owner's, a producer fences it.
                await self._reset_producer(partition)
            self._broker_unreachable()
            return False
        self.metrics.checkpoint_seconds.observe(time.perf_counter() - started)
        self.metrics.changelog_records.inc(len(checkpoint.changelog))
        return True

    async def _transaction(self, producer: AIOKafkaProducer, state: PartitionState,
                           checkpoint: Checkpoint) -> None:
        """The checkpoint's records go in aiokafka batches, per (topic, partition), not
        one `send` each: a send per record (its future, its metadata look-up) was 13 % of
        the wide pipeline's time. Each partition gets its records in the same order."""
        partition = state.partition
        await producer.begin_transaction()
        sent: list[asyncio.Future[Any]] = []
        try:
            new_batch = self.clients.record_batch
            last_changelog = await _send_in_batches(
                producer, new_batch, self.settings.changelog, partition, checkpoint.changelog,
                sent)
            for (output, target), records in _by_target(checkpoint.produced).items():
                await _send_in_batches(producer, new_batch, output, target, records, sent)
            if checkpoint.positions:
                await producer.send_offsets_to_transaction(
                    {TopicPartition(input_topic, partition): offset
                     for input_topic, offset in checkpoint.positions.items()},
                    self.settings.consumer_group)
            # Every batch is written before the commit: aiokafka would commit a
            # transaction without a batch that failed for good (a handful to wait for).
            await asyncio.gather(*sent)
            changelog_next = None
            if last_changelog is not None:
                # A batch's metadata holds its base offset: its records follow it.
                future, count = last_changelog
                changelog_next = future.result().offset + count
            await producer.commit_transaction()
        except BaseException:
            for future in sent:  # their failure is this one's; nobody else reads them
                future.add_done_callback(_retrieve)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.abort_transaction(), BROKER_CALL_TIMEOUT_S)
            raise
        if changelog_next is not None:
            state.changelog_next = changelog_next

    async def _reset_producer(self, partition: int) -> None:
        """A producer whose transaction failed may be in an unusable state; the next
        checkpoint starts a new one (which fences nothing but the old one)."""
        producer = self._producers.pop(partition, None)
        if producer is not None:
            await _close(producer, f"changelog-{partition}")
        with contextlib.suppress(KafkaError, OSError, TimeoutError):
            await self._ensure_producer(partition)

    # --- local snapshots --------------------------------------------------------------

    async def _start_snapshot(self, committed: list[PartitionState]) -> None:
        """Forks a writer of the partitions whose state equals their last committed
        checkpoint (so the snapshot and the changelog offset in it agree)."""
        if self._in_flight is not None and not self._in_flight.done():
            return  # one at a time; requests wait for the next one
        requests, self._snapshot_requests = self._snapshot_requests, []
        started = time.perf_counter()
        offsets = {s.partition: s.position or 0 for s in committed}
        directory, keep = self.settings.snapshot_dir, self.settings.snapshots_kept
        if self.settings.snapshot_fork and snapshot_child.AVAILABLE:
            pid, report_fd = snapshot_child.start(committed, directory, keep)
            pause = time.perf_counter() - started
            task = asyncio.create_task(self._await_child(pid, report_fd, offsets, pause,
                                                         started))
        else:
            task = asyncio.create_task(self._write_in_thread(committed, directory, keep,
                                                             offsets, started))
            pause = 0.0
        self.metrics.snapshot_pause_seconds.observe(pause)
        self._in_flight = task

        def settle(done: asyncio.Task[SnapshotResult]) -> None:
            for future in requests:
                if future.done():
                    continue
                if done.cancelled():
                    future.cancel()
                elif (error := done.exception()) is not None:
                    future.set_exception(error)
                else:
                    future.set_result(done.result())

        task.add_done_callback(settle)

    async def _await_child(self, pid: int, report_fd: int, offsets: dict[int, int],
                           pause: float, started: float) -> SnapshotResult:
        report = await asyncio.to_thread(snapshot_child.wait, pid, report_fd)
        return self._written(report, offsets, pause, started)

    async def _write_in_thread(self, states: list[PartitionState], directory: Path,
                               keep: int, offsets: dict[int, int], started: float
                               ) -> SnapshotResult:
        """Without fork: written from a thread while the loop waits (the state must not
        change during the copy)."""
        try:
            with snapshots.collector_paused():
                report = snapshot_child.write_partitions(states, directory, keep)
        except OSError as error:
            report = {"error": repr(error)}
        return self._written(report, offsets, time.perf_counter() - started, started)

    def _written(self, report: dict[str, Any], offsets: dict[int, int], pause: float,
                 started: float) -> SnapshotResult:
        if "error" in report:
            self.metrics.snapshot_failures.inc()
            log.error("snapshot could not be written", extra={"reason": report["error"]})
            raise OSError(report["error"])
        duration = time.perf_counter() - started
        self.metrics.snapshot_seconds.observe(duration)
        self.metrics.snapshot_bytes.set(report["bytes"])
        self.last_snapshot_at = time.time()
        log.info("snapshot written", extra={
            "path": report["path"], "bytes": report["bytes"], "accounts": report["accounts"],
            "partitions": report.get("partitions"), "pause_s": round(pause, 4),
            "duration_s": round(duration, 4)})
        return SnapshotResult(report["path"], report["bytes"], report["accounts"], offsets,
                              pause, duration)

    async def _finish_in_flight(self) -> None:
        if self._in_flight is not None:
            await asyncio.gather(self._in_flight, return_exceptions=True)

    async def _write_snapshot(self) -> None:
        committed = [s for s in self.states.values()
                     if s.status is Status.ACTIVE and not s.uncommitted]
        if committed:
            await self._start_snapshot(committed)
            await self._finish_in_flight()

    # --- lag and broker health --------------------------------------------------------

    async def _update_lag(self, consumer: AIOKafkaConsumer) -> None:
        topic = self.settings.events_topic
        active = {p: s for p, s in self.states.items() if s.status is Status.ACTIVE}
        if not self.joined:
            return
        try:
            tps = [TopicPartition(topic, p) for p in active]
            if tps:
                ends = await asyncio.wait_for(consumer.end_offsets(tps), BROKER_CALL_TIMEOUT_S)
            else:
                await asyncio.wait_for(consumer.topics(), BROKER_CALL_TIMEOUT_S)
                ends = {}
        except Exception as error:  # lag is for freshness and dashboards: try again
            self._broker_unreachable()
            log.warning("could not read end offsets for lag",
                        extra={"reason": f"{type(error).__name__}: {error}"})
            return
        self._broker_reachable()
        found = consumer.partitions_for_topic(topic)
        if found is not None and len(found) != self.partition_count:
            self._partitions_changed()
        for tp, end in ends.items():
            state = active[tp.partition]
            position = state.position if state.position is not None else 0
            state.lag = max(0, end - position)
            if state.lag == 0:
                state.progressed()  # caught up: nothing to do is progress too
            self.metrics.consumer_lag.labels(str(tp.partition)).set(state.lag)


def _log_catch_up_end(partition: int, position: int, end: CatchUpEnd) -> None:
    fields = {"partition": partition, "position": position, "seconds": round(end.waited_s, 3)}
    if end.behind == 0:
        log.info("partition caught up after the move", extra=fields)
    else:
        # Its answers may go back in time for the backlog's accounts until it catches up.
        log.warning("partition answers before catching up: its wait after the move "
                    "reached ENGAGEMENT_TAKEOVER_CATCH_UP_S",
                    extra={**fields, "records_behind": end.behind})


def _gate_headers(score: AccountScore | None) -> tuple[tuple[str, bytes], ...]:
    """The values the gate recorded, exactly (the body rounds them)."""
    if score is None:
        return ()
    values = (score.tier.encode(), repr(score.credibility.score).encode(),
              repr(score.as_of).encode())
    return tuple(zip(GATE_HEADERS, values, strict=True))


def _by_target(produced: list[Produced]) -> dict[tuple[str, int], list[Outgoing]]:
    """The outputs of a checkpoint by (topic, partition), each in its order."""
    targets: dict[tuple[str, int], list[Outgoing]] = {}
    for topic, partition, key, value, headers in produced:
        records = targets.get((topic, partition))
        if records is None:
            records = targets[(topic, partition)] = []
        records.append((key, value, headers))
    return targets


async def _send_in_batches(producer: AIOKafkaProducer, new_batch: Callable[[], RecordBatch],
                           topic: str, partition: int, records: list[Any],
                           sent: list[asyncio.Future[Any]]
                           ) -> tuple[asyncio.Future[Any], int] | None:
    """Sends `records` ((key, value) or (key, value, headers) each) to one partition in
    batches from `new_batch`; each batch's future goes into `sent`. Returns the last
    batch's future and its record count, or None if there were no records. aiokafka lets
    one batch per partition wait in its queue: a second one waits (here, in the
    checkpoint's task, never the loop) until the sender has taken the first, as `send`
    waits when its batch is full."""
    if not records:
        return None
    index = 0
    while True:
        batch, start = new_batch(), index
        index = batch.extend(records, index)
        if index == start:  # a batch always takes its first record, however large
            raise RuntimeError(f"an empty batch refused a record of {topic}[{partition}]")
        future = await _send_batch(producer, batch, topic, partition)
        sent.append(future)
        if index == len(records):
            return future, index - start


async def _send_batch(producer: AIOKafkaProducer, batch: Any, topic: str, partition: int
                      ) -> asyncio.Future[Any]:
    # Complete: the sender takes it without lingering, with the other partitions' batches
    # appended before it runs, in one request (this yields only while a batch of the same
    # partition waits to be taken, or the topic's metadata is not known yet).
    batch.close()
    future: asyncio.Future[Any] = await producer.send_batch(batch, topic, partition=partition)
    return future


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


async def _close_admin(admin: Any) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(admin.close(), BROKER_CALL_TIMEOUT_S)
