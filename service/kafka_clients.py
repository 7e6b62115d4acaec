"""Kafka clients, made in one place and handed to the processor (so its loop can be driven
by other clients in tests), and the start-up checks of topics and their settings.

Internal topics follow Kafka Streams' naming: `<consumer group>-accounts-changelog`,
compacted, with the events topic's partition count (co-partitioned: changelog partition
n holds the state of events partition n).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError
from aiokafka.producer.message_accumulator import BatchBuilder

from service.fetched_records import as_fetched, in_place
from service.settings import Settings

try:
    from engagement_native import RecordBatchBuilder
except ImportError:  # not built: aiokafka's builder serves, slower
    RecordBatchBuilder = None  # type: ignore[assignment,misc]

log = logging.getLogger(__name__)
T = TypeVar("T")
CHANGELOG_CONFIG = {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"}
# The actors' activity spans 8 days and is rebuilt from this topic after a move.
ACTORS_CONFIG = {"cleanup.policy": "delete", "retention.ms": str(9 * 86_400_000)}
SIGNALS_CONFIG = {"cleanup.policy": "delete", "retention.ms": str(86_400_000)}
SCORES_CONFIG = {"cleanup.policy": "compact"}  # the latest score of every account
# The size of the batches a checkpoint sends (`KafkaClients.record_batch`): a record
# batch, header included, must fit the broker's message.max.bytes and the topic's
# max.message.bytes (both 1,048,588 by default, the internal topics set neither): 1 MiB
# fits. It holds ~3,500 of the wide bench's changelog records (~0.3 KB each): a second
# batch of the same partition waits until the sender has taken the first (aiokafka
# queues one per partition), in the checkpoint's task, never the loop.
BATCH_BYTES = 1024 * 1024


class RecordBatch(Protocol):
    """A batch for `AIOKafkaProducer.send_batch`, filled from a list of (key, value) or
    (key, value, headers) records: `extend` appends `records[start:]` until the batch is
    full and returns the index of the first one it did not take (it always takes its
    first). Compiled (`engagement_native.RecordBatchBuilder`) or aiokafka's builder."""

    def extend(self, records: list[Any], start: int = 0) -> int: ...
    def close(self) -> None: ...
    def record_count(self) -> int: ...


def append_each(batch: Any, records: list[Any], start: int) -> int:
    """`RecordBatch.extend` by aiokafka's `append(*, timestamp, key, value, headers)`,
    one call per record (its headers a list or None)."""
    for index in range(start, len(records)):
        key, value, *rest = records[index]
        headers = list(rest[0]) if rest and rest[0] else None
        if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
            return index
    return len(records)


class _AppendingBatch(BatchBuilder):  # type: ignore[misc]  # aiokafka has no stubs
    """aiokafka's builder (the compiled builder's fallback)."""

    def extend(self, records: list[Any], start: int = 0) -> int:
        return append_each(self, records, start)


class FatalConfigError(Exception):
    """A setting or a topic that no retry can fix; the message says what to change."""


@dataclass(slots=True)
class Backoff:
    """Capped exponential back-off with full jitter (AWS architecture blog's variant)."""

    initial_s: float
    max_s: float
    attempt: int = 0

    def next_delay(self) -> float:
        ceiling = min(self.max_s, self.initial_s * 2 ** self.attempt)
        self.attempt += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0


class KafkaClients:
    """Factories of the processor's clients, configured from the settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def group_consumer(self, assignor: Any) -> AIOKafkaConsumer:
        s = self.settings
        return AIOKafkaConsumer(
            bootstrap_servers=s.kafka_bootstrap_servers,
            group_id=s.consumer_group,
            value_deserializer=in_place,  # records read in place: service/fetched_records.py
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
            # How long the broker holds a fetch of partitions with nothing new (aiokafka's
            # default is 500 ms): a partition taken over answers once a fetch has told it
            # where its input ends (`PartitionState.catch_up`), ~1 s after a move at 500.
            fetch_max_wait_ms=100,
            # The internal topics are written in transactions: never read an aborted one.
            isolation_level="read_committed",
            partition_assignment_strategy=(assignor,),
            # A restarted pod with the same id takes its place in the group at once,
            # without a rebalance (Kafka's static membership).
            group_instance_id=s.group_instance_id or None,
            # A member that dies (kill -9) is noticed after this; a third of it between
            # heartbeats tolerates two lost ones.
            session_timeout_ms=int(s.session_timeout_s * 1000),
            heartbeat_interval_ms=int(s.session_timeout_s * 1000 / 3),
            # Partitions added to the topic break co-partitioning: notice within 30 s.
            metadata_max_age_ms=30_000,
        )

    def changelog_reader(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            group_id=None,
            value_deserializer=as_fetched,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )

    def transactional_producer(self, partition: int) -> AIOKafkaProducer:
        """One producer per input partition, its transactional id derived from the
        partition: the next owner's producer fences this one (Kafka Streams' EOS with a
        producer per task)."""
        s = self.settings
        return AIOKafkaProducer(
            bootstrap_servers=s.kafka_bootstrap_servers,
            transactional_id=f"{s.consumer_group}-{s.events_topic}-{partition}",
            linger_ms=5,
            max_batch_size=BATCH_BYTES,
            request_timeout_ms=int(max(s.commit_interval_s * 10, 10) * 1000),
        )

    @staticmethod
    def record_batch() -> RecordBatch:
        """An empty batch for a transactional producer's `send_batch`."""
        if RecordBatchBuilder is not None:
            return RecordBatchBuilder(BATCH_BYTES, transactional=True)
        return _AppendingBatch(BATCH_BYTES, 0, is_transactional=True)

    def producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
        )

    def admin(self) -> AIOKafkaAdminClient:
        return AIOKafkaAdminClient(bootstrap_servers=self.settings.kafka_bootstrap_servers,
                                   request_timeout_ms=10_000)


async def with_retries(what: str, attempt: Callable[[], Awaitable[T]], backoff: Backoff,
                       on_attempt: Callable[[bool], None],
                       stopping: asyncio.Event) -> T | None:
    """Runs `attempt` until it succeeds, sleeping with back-off between failures; each
    failure is logged with its reason. Returns None if stopped first; a FatalConfigError
    passes through."""
    while not stopping.is_set():
        try:
            result = await attempt()
        except FatalConfigError:
            raise
        except (KafkaError, OSError, TimeoutError) as error:
            on_attempt(False)
            delay = backoff.next_delay()
            log.warning("kafka not reachable; retrying", extra={
                "step": what, "attempt": backoff.attempt, "retry_in_s": round(delay, 2),
                "reason": f"{type(error).__name__}: {error}"})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), delay)
            continue
        on_attempt(True)
        backoff.reset()
        return result
    return None


@dataclass(frozen=True, slots=True)
class Topology:
    partitions: int  # of the events topic, and so of the changelog


async def check_topics(admin: AIOKafkaAdminClient, settings: Settings) -> Topology:
    """The events topic must exist (FatalConfigError when it does not); the changelog is
    created when missing and checked when present (compaction, partition count)."""
    metadata = await admin.describe_topics([settings.events_topic])
    events = metadata[0]
    if events.get("error_code", 0) != 0 or not events.get("partitions"):
        raise _MissingTopic(settings.events_topic)
    partitions = len(events["partitions"])
    internal = {settings.changelog: CHANGELOG_CONFIG, settings.actors: ACTORS_CONFIG,
                settings.signals: SIGNALS_CONFIG, settings.scores_topic: SCORES_CONFIG}
    existing = set(await admin.list_topics())
    missing = {name: config for name, config in internal.items() if name not in existing}
    if missing:
        await _create_internal_topics(admin, settings, missing, partitions)
    await _check_co_partitioned(admin, settings, list(internal), partitions)
    changelog = settings.changelog
    configs = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, changelog)])
    policy = _config_value(configs, "cleanup.policy")
    if policy is not None and "compact" not in policy:
        raise FatalConfigError(
            f"changelog topic {changelog!r} has cleanup.policy={policy}; it must be compact "
            f"(kafka-configs --alter --add-config cleanup.policy=compact)")
    return Topology(partitions)


async def _create_internal_topics(admin: AIOKafkaAdminClient, settings: Settings,
                                  missing: dict[str, dict[str, str]], partitions: int) -> None:
    """The missing internal topics, in one request: a first start creates all four, and
    one at a time, each waited for, took ~0.35 s of it."""
    replication = settings.internal_topic_replication_factor
    if replication == 0:
        brokers = (await admin.describe_cluster()).get("brokers") or [None]
        replication = min(3, len(brokers))
    for name in missing:
        log.info("creating an internal topic", extra={
            "topic": name, "partitions": partitions, "replication_factor": replication})
    response = await admin.create_topics([
        NewTopic(name, partitions, replication, topic_configs=config)
        for name, config in missing.items()])
    # Errors come per topic. One another instance created first is checked below, like
    # one a transient error left missing; what retrying cannot fix is said now.
    for error in response.to_object()["topic_errors"]:
        if error["error_code"] in _CREATE_ERRORS_TO_FIX:
            raise FatalConfigError(
                f"cannot create the internal topic {error['topic']!r}: "
                f"{error.get('error_message') or 'error code ' + str(error['error_code'])}."
                f" Create it yourself ({partitions} partitions, the configs in "
                f"service/kafka_clients.py) or fix the setting the broker names.")


async def _check_co_partitioned(admin: AIOKafkaAdminClient, settings: Settings,
                                names: list[str], partitions: int) -> None:
    """Each internal topic must have the events' partition count. A topic just created
    shows its partitions a moment later: described again for up to ~10 s."""
    found: dict[str, int] = {}
    delay = 0.02
    for _ in range(60):
        described = await admin.describe_topics(names)
        found = {topic["topic"]: len(topic.get("partitions") or []) for topic in described}
        if all(found.get(name) for name in names):
            break
        await asyncio.sleep(delay)
        delay = min(0.2, 2 * delay)
    for name in names:
        if found.get(name, 0) != partitions:
            raise FatalConfigError(
                f"internal topic {name!r} has {found.get(name, 0)} partitions but "
                f"{settings.events_topic!r} has {partitions}; they must be co-partitioned. "
                f"Recreate it (the changelog's state is then rebuilt from the events) or "
                f"restore the events topic's partitions.")


# Kafka's error codes for a topic created with settings or rights the broker refuses:
# authorization (29, 31), partitions (37), replication (38, 39), configs (40), policy (44).
_CREATE_ERRORS_TO_FIX = frozenset({29, 31, 37, 38, 39, 40, 44})


class _MissingTopic(KafkaError):  # type: ignore[misc]
    """Retried for `topic_wait_s` (it may be created right after the broker starts)."""

    def __init__(self, topic: str) -> None:
        super().__init__(f"topic {topic!r} does not exist")
        self.topic = topic


def _config_value(responses: Any, name: str) -> str | None:
    for response in responses:
        for resource in getattr(response, "resources", []):
            for entry in resource[4]:
                if entry[0] == name:
                    return str(entry[1])
    return None


async def wait_for_topics(admin: AIOKafkaAdminClient, settings: Settings,
                          stopping: asyncio.Event) -> Topology | None:
    """check_topics, retried while the events topic is missing, for `topic_wait_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.topic_wait_s
    backoff = Backoff(settings.connect_retry_initial_s, settings.connect_retry_max_s)
    while not stopping.is_set():
        try:
            return await check_topics(admin, settings)
        except _MissingTopic as missing:
            if loop.time() >= deadline:
                raise FatalConfigError(
                    f"topic {missing.topic!r} does not exist and the broker did not create "
                    f"it (waited {settings.topic_wait_s:.0f} s). Create it (make run does: "
                    f"scripts/create_topics.py) or set ENGAGEMENT_EVENTS_TOPIC.") from None
            delay = backoff.next_delay()
            log.warning("events topic missing; waiting for it",
                        extra={"topic": missing.topic, "retry_in_s": round(delay, 2)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), delay)
    return None
