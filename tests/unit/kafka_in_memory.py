"""Kafka in memory, for unit tests of the processor's own logic (restore, checkpoints,
fencing, standby replicas) without a broker. Only what `StreamProcessor` calls exists
here; the integration tests run the same code against the real broker.

Group consumers of one broker form one group: a member that starts or stops makes the
broker rebalance (eagerly: every member's partitions are revoked, then the first member's
assignor assigns them all), as the group coordinator does.

Records written in a transaction become visible to `read_committed` readers when it
commits; a producer started with a transactional id that another one holds fences that
one (its next transaction raises ProducerFenced), as the broker does.

Batches (`InMemoryClients.record_batch`, `send_batch`) behave as aiokafka's: a batch
takes records up to the producer's batch size (`InMemoryBroker.batch_bytes`, counted as
aiokafka's builder counts them; the first record always fits) and then refuses them; its
future's metadata holds the offset of its first record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError, ProducerFenced

from service.kafka_clients import append_each
from service.settings import Settings


@dataclass
class Record:
    offset: int
    key: bytes | None
    value: bytes | None
    committed: bool = True
    aborted: bool = False
    topic: str = ""
    partition: int = 0
    timestamp: int = 0
    headers: tuple[Any, ...] = ()


@dataclass
class InMemoryBroker:
    logs: dict[str, list[list[Record]]] = field(default_factory=dict)
    committed_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    epochs: dict[str, int] = field(default_factory=dict)  # transactional id -> epoch
    fail_commits: int = 0  # the next n transactions fail to commit
    # While set and not yet open, transactions wait in their commit (a slow broker).
    commit_gate: asyncio.Event | None = None
    commits_waiting: int = 0
    members: list[Any] = field(default_factory=list)  # the group's consumers, in join order
    # (topic, partition) -> its first offset still held: records before it were deleted
    # by retention (they stay in `logs`, so offsets remain list indexes, but no one reads them).
    log_start: dict[tuple[str, int], int] = field(default_factory=dict)
    batch_bytes: int = 1024 * 1024  # the producers' max_batch_size
    # The next n batches sent are lost: their futures fail, and as with aiokafka, that
    # alone does not fail their transaction's commit.
    fail_batches: int = 0

    async def rebalance(self) -> None:
        from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata

        members = list(self.members)
        for member in members:
            await member.listener.on_partitions_revoked(set(member.positions))
            member.positions = {}
        if not members:
            return
        metadata = {}
        for number, member in enumerate(members):
            meta = member.assignor.metadata(member.topics_subscribed)
            metadata[f"m{number}"] = ConsumerProtocolMemberMetadata(
                meta.version, meta.subscription, meta.user_data)
        cluster = SimpleNamespace(partitions_for_topic=lambda t: set(range(len(self.logs[t]))))
        assignments = members[0].assignor.assign(cluster, metadata)
        for number, member in enumerate(members):
            assignment = assignments[f"m{number}"]
            member.assignor.on_assignment(assignment)
            member.positions = {tp: self.committed_offsets.get(tp, 0)
                                for tp in assignment.partitions()}
        for member in members:
            await member.listener.on_partitions_assigned(set(member.positions))

    def create(self, topic: str, partitions: int) -> None:
        self.logs.setdefault(topic, [[] for _ in range(partitions)])

    def append(self, topic: str, partition: int, key: bytes | None, value: bytes | None,
               committed: bool = True) -> Record:
        log = self.logs[topic][partition]
        record = Record(len(log), key, value, committed=committed, topic=topic,
                        partition=partition)
        log.append(record)
        return record


class _Admin:
    def __init__(self, broker: InMemoryBroker) -> None:
        self.broker = broker

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def describe_topics(self, topics: list[str]) -> list[dict[str, Any]]:
        return [{"topic": t, "error_code": 0 if t in self.broker.logs else 3,
                 "partitions": [{"partition": p} for p in
                                range(len(self.broker.logs.get(t, [])))]} for t in topics]

    async def list_topics(self) -> list[str]:
        return list(self.broker.logs)

    async def create_topics(self, topics: Iterable[Any]) -> Any:
        errors = []
        for topic in topics:
            known = topic.name in self.broker.logs
            if not known:
                self.broker.create(topic.name, topic.num_partitions)
            errors.append({"topic": topic.name, "error_code": 36 if known else 0,
                           "error_message": None})
        return SimpleNamespace(to_object=lambda: {"topic_errors": errors})

    async def describe_cluster(self) -> dict[str, Any]:
        return {"brokers": [{"node_id": 1}]}

    async def describe_configs(self, resources: Any) -> list[Any]:
        return [SimpleNamespace(resources=[(0, "", 2, "t", [("cleanup.policy", "compact")])])]


class _Consumer:
    """A group of one: it is assigned every partition of its topic."""

    def __init__(self, broker: InMemoryBroker, assignor: Any = None,
                 read_committed: bool = False) -> None:
        self.broker = broker
        self.assignor = assignor
        self.read_committed = read_committed
        self.positions: dict[TopicPartition, int] = {}
        self.paused: set[TopicPartition] = set()
        self.listener: Any = None
        self.topics_subscribed: list[str] = []

    def subscribe(self, topics: list[str], listener: Any) -> None:
        self.topics_subscribed, self.listener = list(topics), listener

    async def start(self) -> None:
        if self.assignor is None:
            return
        self.broker.members.append(self)
        await self.broker.rebalance()

    async def stop(self) -> None:
        if self in self.broker.members:  # leaving the group moves its partitions
            self.broker.members.remove(self)
            await self.broker.rebalance()

    def assign(self, tps: list[TopicPartition]) -> None:
        for tp in tps:
            self.positions.setdefault(tp, 0)

    def assignment(self) -> set[TopicPartition]:
        return set(self.positions)

    def pause(self, *tps: TopicPartition) -> None:
        self.paused.update(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused.difference_update(tps)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    async def seek_to_beginning(self, tp: TopicPartition) -> None:
        self.positions[tp] = 0

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.broker.log_start.get((tp.topic, tp.partition), 0) for tp in tps}

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self._end(tp) for tp in tps}

    def last_stable_offset(self, tp: TopicPartition) -> int:
        return self._end(tp)

    def _end(self, tp: TopicPartition) -> int:
        log = self.broker.logs[tp.topic][tp.partition]
        if not self.read_committed:
            return len(log)
        end = 0
        for record in log:
            if not (record.committed or record.aborted):
                break  # an open transaction: the last stable offset stops here
            end = record.offset + 1
        return end

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(len(self.broker.logs[topic])))

    async def topics(self) -> set[str]:
        return set(self.broker.logs)

    async def getmany(self, *tps: TopicPartition, timeout_ms: int = 0,
                      max_records: int | None = None) -> dict[TopicPartition, list[Record]]:
        await asyncio.sleep(0)
        batch = {}
        for tp in tps or list(self.positions):
            if tp in self.paused:
                continue
            log = self.broker.logs[tp.topic][tp.partition]
            # Below the log's start a consumer resets to it (auto_offset_reset=earliest).
            start = max(self.positions[tp],
                        self.broker.log_start.get((tp.topic, tp.partition), 0))
            end = self._end(tp)
            records = [r for r in log[start:end]
                       if not self.read_committed or (r.committed and not r.aborted)]
            records = records[:max_records] if max_records else records
            if records:
                batch[tp] = records
                self.positions[tp] = records[-1].offset + 1
            elif end > start:
                self.positions[tp] = end  # aborted records and markers are skipped
        if not batch:
            await asyncio.sleep(timeout_ms / 1000 / 10)
        return batch


class _Producer:
    def __init__(self, broker: InMemoryBroker, transactional_id: str | None = None) -> None:
        self.broker = broker
        self.transactional_id = transactional_id
        self.epoch = 0
        self.pending: list[Record] = []
        self.offsets: dict[TopicPartition, int] = {}

    async def start(self) -> None:
        if self.transactional_id is not None:
            epochs = self.broker.epochs
            self.epoch = epochs[self.transactional_id] = epochs.get(self.transactional_id,
                                                                     0) + 1

    async def stop(self) -> None: ...

    def _check_fenced(self) -> None:
        if self.broker.epochs.get(self.transactional_id or "", 0) != self.epoch:
            raise ProducerFenced()

    async def begin_transaction(self) -> None:
        self._check_fenced()
        self.pending, self.offsets = [], {}

    async def send(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                   partition: int | None = None, headers: Any = None, **_: Any
                   ) -> asyncio.Future[Any]:
        record = self._write(topic, partition or 0, key, value, headers)
        return _resolved(SimpleNamespace(offset=record.offset, partition=record.partition))

    async def send_batch(self, batch: _Batch, topic: str, *, partition: int
                         ) -> asyncio.Future[Any]:
        batch.close()
        if self.broker.fail_batches:
            self.broker.fail_batches -= 1
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            future.set_exception(KafkaConnectionError("the batch was lost"))
            return future
        written = [self._write(topic, partition, key, value, headers)
                   for key, value, headers in batch.records]
        return _resolved(None if not written else
                         SimpleNamespace(offset=written[0].offset, partition=partition))

    def _write(self, topic: str, partition: int, key: bytes | None, value: bytes | None,
               headers: Any) -> Record:
        in_transaction = self.transactional_id is not None
        record = self.broker.append(topic, partition, key, value,
                                    committed=not in_transaction)
        record.headers = tuple(headers or ())
        if in_transaction:
            self.pending.append(record)
        return record

    async def send_offsets_to_transaction(self, offsets: dict[TopicPartition, int],
                                          group_id: str) -> None:
        self.offsets.update(offsets)

    async def commit_transaction(self) -> None:
        gate = self.broker.commit_gate
        if gate is not None and not gate.is_set():
            self.broker.commits_waiting += 1
            try:
                await gate.wait()
            finally:
                self.broker.commits_waiting -= 1
        self._check_fenced()
        if self.broker.fail_commits:
            self.broker.fail_commits -= 1
            raise OSError("the broker went away")
        for record in self.pending:
            record.committed = True
        self.broker.committed_offsets.update(self.offsets)
        self.pending = []

    async def abort_transaction(self) -> None:
        for record in self.pending:
            record.aborted = True  # never visible to read_committed readers
        self.pending = []


class _Batch:
    """aiokafka's BatchBuilder: each record costs its key, value and headers plus 21
    bytes, the batch's header 61."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.size = 61
        self.records: list[tuple[bytes | None, bytes | None, Any]] = []
        self.closed = False

    def append(self, *, timestamp: int | None, key: bytes | None, value: bytes | None,
               headers: Any = None) -> Any:
        if headers is not None and not isinstance(headers, list):
            raise TypeError(f"headers must be a list, as aiokafka's builder needs: {headers!r}")
        if self.closed:
            return None
        size = 21 + len(key or b"") + len(value or b"") + sum(
            len(name) + len(header or b"") for name, header in headers or ())
        if self.records and self.size + size > self.capacity:
            self.closed = True
            return None
        self.records.append((key, value, headers))
        self.size += size
        return SimpleNamespace(offset=len(self.records) - 1, size=size)

    def extend(self, records: list[Any], start: int = 0) -> int:
        """`KafkaClients.record_batch`'s: appends until full."""
        return append_each(self, records, start)

    def record_count(self) -> int:
        return len(self.records)

    def close(self) -> None:
        self.closed = True


def _resolved(result: Any) -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    future.set_result(result)
    return future


class InMemoryClients:
    """`KafkaClients` over an `InMemoryBroker`."""

    def __init__(self, settings: Settings, broker: InMemoryBroker) -> None:
        self.settings = settings
        self.broker = broker

    def group_consumer(self, assignor: Any) -> Any:
        return _Consumer(self.broker, assignor)

    def changelog_reader(self) -> Any:
        return _Consumer(self.broker, read_committed=True)

    def transactional_producer(self, partition: int) -> Any:
        s = self.settings
        return _Producer(self.broker, f"{s.consumer_group}-{s.events_topic}-{partition}")

    def producer(self) -> Any:
        return _Producer(self.broker)

    def record_batch(self) -> _Batch:
        return _Batch(self.broker.batch_bytes)

    def admin(self) -> Any:
        return _Admin(self.broker)
