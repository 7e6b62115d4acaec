"""Kafka in: restore, consume in batches, dead-letter what is bad, snapshot, commit.

Exactly-once state: the state and the offsets it reflects are written together in one
snapshot. On start the newest snapshot is loaded and every assigned partition is sought
to the offset stored with it (the beginning, for a partition the snapshot does not
know), so the events after the snapshot are replayed exactly once. Kafka's committed
offsets follow the snapshots (for lag monitoring) and are never read back.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition

from service import snapshot_child, snapshots
from service.dead_letter import DeadLetter, DeadLetterPublisher
from service.engine import Engine, EngineConfig
from service.engine.persistence import export_accounts, export_partitions, import_state
from service.events import Rejection, decode_event
from service.metrics import Metrics
from service.settings import Settings

log = logging.getLogger(__name__)
EXPORT_CHUNK_ACCOUNTS = 5_000
# A batch of 2,000 events takes ~20 ms; queries should not wait behind all of it.
YIELD_EVERY_RECORDS = 256
LAG_INTERVAL_S = 5.0
# Lag reads and offset commits wait on the broker (aiokafka's own request timeout is
# 40 s); bounded, so that a lost broker cannot hold up shutdown or its final snapshot.
BROKER_CALL_TIMEOUT_S = 5.0


def engine_config(settings: Settings) -> EngineConfig:
    return EngineConfig(
        window_s=settings.window_days * 86_400.0,
        allowed_lateness_s=settings.allowed_lateness_s,
        burst_window_s=settings.burst_window_s,
        tier_scheme=settings.tier_scheme,
        max_accounts=settings.max_accounts,
        max_posts_per_account=settings.max_posts_per_account,
        max_event_ids=settings.max_event_ids,
        hot_accounts=settings.hot_accounts,
    )


@dataclass(frozen=True, slots=True)
class SnapshotResult:
    path: str
    size_bytes: int
    accounts: int
    offsets: dict[int, int]
    pause_s: float
    duration_s: float


def _rebuild(config: EngineConfig, snapshot: snapshots.Snapshot) -> Engine:
    with snapshots.collector_paused():
        engine = import_state(config, snapshot.partitions, snapshot.account_pairs(),
                              snapshot.changes)
    # The restored state lives long: keep the collector from rescanning it ever again.
    gc.freeze()
    return engine


async def _close(client: AIOKafkaConsumer | AIOKafkaProducer, name: str) -> None:
    """Stops a Kafka client; its failure must neither hide the other client's close nor
    fail a shutdown that has already written its snapshot. With the broker gone, aiokafka
    can raise CancelledError from `stop()` although nobody cancelled this task (seen in
    tests/integration/test_broker_loss.py); a real cancellation still propagates."""
    try:
        await client.stop()
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
        log.warning("kafka client stop was cancelled inside aiokafka", extra={"client": name})
    except Exception as error:  # the process is stopping; say so and go on
        log.warning("kafka client did not stop cleanly",
                    extra={"client": name, "reason": repr(error)})


class _SeekOnAssign(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: StreamConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self._owner.assigned = False

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        await self._owner.seek_to_snapshot(list(assigned))


class StreamConsumer:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.engine = Engine(engine_config(settings))
        self.store = snapshots.SnapshotStore(settings.snapshot_dir, settings.snapshots_kept)
        self.positions: dict[int, int] = {}  # partition -> next offset to process
        self.restored = False
        self.assigned = False
        self.last_snapshot_at: float | None = None
        self.dead_letters: DeadLetterPublisher | None = None
        self._replay_until: dict[int, int] = {}
        self._replay_measured = False
        self._stopping = asyncio.Event()
        self._snapshot_requests: list[asyncio.Future[SnapshotResult]] = []
        self._consumer: AIOKafkaConsumer | None = None
        self._committable: dict[int, int] | None = None
        self._in_flight: asyncio.Task[SnapshotResult] | None = None
        # Told (partition, account_id) of the accounts each batch changed: discovery.
        self.on_changed: Callable[[set[tuple[int, str]]], None] | None = None

    @property
    def ready(self) -> bool:
        dead_letters_ok = self.dead_letters is not None and self.dead_letters.healthy
        return self.restored and self.assigned and dead_letters_ok

    def stop(self) -> None:
        self._stopping.set()

    async def request_snapshot(self) -> SnapshotResult:
        future: asyncio.Future[SnapshotResult] = asyncio.get_running_loop().create_future()
        self._snapshot_requests.append(future)
        return await future

    async def run(self) -> None:
        settings = self.settings
        await self._restore()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=settings.consumer_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
        )
        self._consumer = consumer
        consumer.subscribe([settings.events_topic], listener=_SeekOnAssign(self))
        try:
            await producer.start()
            await consumer.start()
            self.dead_letters = DeadLetterPublisher(
                producer, settings.dlq_topic, self.metrics,
                settings.dlq_retry_initial_s, settings.dlq_retry_max_s,
                settings.dlq_send_timeout_s,
            )
            log.info("consuming", extra={"topic": settings.events_topic,
                                         "group": settings.consumer_group})
            await self._consume(consumer)
            await self._finish_in_flight()
            await self._write_snapshot()
            await self._commit(consumer)
            log.info("stopped cleanly after a final snapshot")
        finally:
            self.assigned = False
            self.metrics.consumer_ready.set(0)
            try:
                await _close(consumer, "consumer")
            finally:
                await _close(producer, "producer")

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        settings = self.settings
        next_snapshot = time.monotonic() + settings.snapshot_interval_s
        next_lag = next_expiry = time.monotonic()
        expiry: Iterator[int] | None = None
        while not self._stopping.is_set():
            batch = await consumer.getmany(
                timeout_ms=settings.fetch_timeout_ms, max_records=settings.fetch_max_records
            )
            if batch:
                await self._process(batch)
            now = time.monotonic()
            if self._snapshot_requests or now >= next_snapshot:
                await self._start_snapshot()
                next_snapshot = now + settings.snapshot_interval_s
            if self._committable is not None:
                await self._commit(consumer)
            if now >= next_expiry and expiry is None:
                expiry = self.engine.expire_in_slices()
                next_expiry = now + settings.expiry_interval_s
            if expiry is not None and next(expiry, None) is None:
                expiry = None  # one slice per turn: ingestion and queries go on between

            if now >= next_lag:
                await self._update_lag(consumer)
                next_lag = now + LAG_INTERVAL_S
            self.metrics.consumer_ready.set(1 if self.ready else 0)

    async def _process(self, batch: dict[TopicPartition, list[Any]]) -> None:
        started = time.perf_counter()
        settings = self.settings
        engine = self.engine
        wall = time.time()
        outcomes: Counter[tuple[str, str]] = Counter()
        rejected: list[DeadLetter] = []
        messages = 0
        replayed = 0
        changed: set[tuple[int, str]] = set()
        for tp, records in batch.items():
            partition = tp.partition
            for index, record in enumerate(records):
                if index % YIELD_EVERY_RECORDS == YIELD_EVERY_RECORDS - 1:
                    await asyncio.sleep(0)  # let score queries in between
                result = decode_event(
                    record.key, record.value, now=wall,
                    max_event_bytes=settings.max_event_bytes,
                    max_future_skew_s=settings.max_future_skew_s,
                )
                if isinstance(result, Rejection):
                    rejected.append(DeadLetter(record, result))
                    outcomes["invalid", "dead_lettered"] += 1
                else:
                    outcomes[result.type, engine.apply(result, partition)] += 1
                    changed.add((partition, result.account_id))
            messages += len(records)
            last = records[-1].offset
            self.positions[partition] = last + 1
            target = self._replay_until.get(partition)
            if target is not None:
                replayed += sum(1 for record in records if record.offset < target)
                if last + 1 >= target:
                    del self._replay_until[partition]
        if changed and self.on_changed is not None:
            self.on_changed(changed)
        if rejected and self.dead_letters is not None:
            await self.dead_letters.publish(rejected)
        for (event_type, outcome), count in outcomes.items():
            self.metrics.events.labels(event_type, outcome).inc(count)
        if replayed:
            self.metrics.replayed_events.inc(replayed)
        self.metrics.batch_messages.observe(messages)
        self.metrics.batch_seconds.observe(time.perf_counter() - started)

    async def seek_to_snapshot(self, assigned: list[TopicPartition]) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        for tp in assigned:
            position = self.positions.get(tp.partition)
            if position is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, position)
        if assigned and not self._replay_measured:
            # What was already in the topic at start-up is a replay of history.
            ends = await consumer.end_offsets(assigned)
            self._replay_until = {tp.partition: end for tp, end in ends.items()}
            self._replay_measured = True
        self.assigned = bool(assigned)
        log.info("partitions assigned",
                 extra={"partitions": sorted(tp.partition for tp in assigned)})

    async def _restore(self) -> None:
        started = time.perf_counter()
        snapshot = await asyncio.to_thread(self.store.load_newest)
        if snapshot is not None:
            config = self.engine.config
            self.engine = await asyncio.to_thread(
                _rebuild, config, snapshot)
            self.positions = dict(snapshot.offsets)
            self.last_snapshot_at = snapshot.written_at
            log.info("restored snapshot", extra={"path": str(snapshot.path),
                                                 "accounts": len(self.engine.accounts),
                                                 "offsets": self.positions})
        else:
            log.info("no snapshot found: starting from the beginning of the topic")
        self.metrics.watch_engine(self.engine, lambda: self.last_snapshot_at)
        self.metrics.restore_seconds.set(time.perf_counter() - started)
        self.restored = True

    async def _start_snapshot(self) -> None:
        """Starts one snapshot of the state and the offsets it reflects; the write goes on
        in the background while ingestion continues."""
        if self._in_flight is not None and not self._in_flight.done():
            return  # one at a time; requests wait for the next one
        requests, self._snapshot_requests = self._snapshot_requests, []
        started = time.perf_counter()
        offsets = dict(self.positions)
        if self.settings.snapshot_fork and snapshot_child.AVAILABLE:
            pid, report = snapshot_child.start(self.engine, offsets, self.store)
            pause = time.perf_counter() - started
            self.metrics.snapshot_pause_seconds.observe(pause)
            task = asyncio.create_task(self._await_child(pid, report, offsets, pause, started))
        else:
            task = await self._copy_and_persist(offsets, started)
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
        if "error" in report:
            self.metrics.snapshot_failures.inc()
            log.error("snapshot could not be written", extra={"reason": report["error"]})
            raise OSError(report["error"])
        return self._written(report["path"], report["bytes"], report["accounts"], offsets,
                             pause, started)

    async def _copy_and_persist(self, offsets: dict[int, int], started: float
                                ) -> asyncio.Task[SnapshotResult]:
        """Without fork: copy in chunks (ingestion waits; HTTP answers between chunks)."""
        partitions = export_partitions(self.engine)
        accounts = []
        with snapshots.collector_paused():
            for packed in export_accounts(self.engine):
                accounts.append(packed)
                if len(accounts) % EXPORT_CHUNK_ACCOUNTS == 0:
                    await asyncio.sleep(0)
        pause = time.perf_counter() - started
        self.metrics.snapshot_pause_seconds.observe(pause)
        return asyncio.create_task(self._persist(offsets, partitions, accounts,
                                                 self.engine.changes, pause, started))

    async def _persist(self, offsets: dict[int, int], partitions: dict[int, Any],
                       accounts: list[Any], changes: int, pause: float, started: float
                       ) -> SnapshotResult:
        try:
            data = await asyncio.to_thread(snapshots.encode, offsets, partitions, accounts,
                                           changes)
            path = await asyncio.to_thread(self.store.write, data)
        except OSError:
            self.metrics.snapshot_failures.inc()
            log.exception("snapshot could not be written")
            raise
        return self._written(str(path), len(data), len(accounts), offsets, pause, started)

    def _written(self, path: str, size: int, accounts: int, offsets: dict[int, int],
                 pause: float, started: float) -> SnapshotResult:
        duration = time.perf_counter() - started
        self.metrics.snapshot_seconds.observe(duration)
        self.metrics.snapshot_bytes.set(size)
        self.last_snapshot_at = time.time()
        self._committable = offsets
        log.info("snapshot written", extra={"path": path, "bytes": size, "accounts": accounts,
                                            "pause_s": round(pause, 4),
                                            "duration_s": round(duration, 4)})
        return SnapshotResult(path, size, accounts, offsets, pause, duration)

    async def _finish_in_flight(self) -> None:
        if self._in_flight is not None:
            await asyncio.gather(self._in_flight, return_exceptions=True)

    async def _write_snapshot(self) -> None:
        await self._start_snapshot()
        await self._finish_in_flight()

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        offsets, self._committable = self._committable, None
        if not offsets:
            return
        topic = self.settings.events_topic
        assignment = {tp.partition for tp in consumer.assignment()}
        owned = {TopicPartition(topic, p): o for p, o in offsets.items() if p in assignment}
        if owned:
            try:
                await asyncio.wait_for(consumer.commit(owned), BROKER_CALL_TIMEOUT_S)
            except Exception:  # a lost commit only delays lag metrics
                log.warning("offset commit failed; the next snapshot commits again",
                            exc_info=True)

    async def _update_lag(self, consumer: AIOKafkaConsumer) -> None:
        assignment = list(consumer.assignment())
        if not assignment:
            return
        try:
            ends = await asyncio.wait_for(consumer.end_offsets(assignment),
                                          BROKER_CALL_TIMEOUT_S)
            for tp, end in ends.items():
                position = self.positions.get(tp.partition)
                if position is None:
                    position = await asyncio.wait_for(consumer.position(tp),
                                                      BROKER_CALL_TIMEOUT_S)
                self.metrics.consumer_lag.labels(str(tp.partition)).set(max(0, end - position))
        except Exception:  # lag is for the dashboards; the next turn tries again
            log.warning("could not read end offsets for lag", exc_info=True)
