"""A checkpoint's transaction against the real broker, in several batches per partition:
the offset the state records as its changelog's next one is the offset after its last
changelog record (aiokafka's batch metadata holds the batch's base offset), and every
partition holds its records in order, read with read_committed."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from engagement_native import RecordBatchBuilder

from service.consumer import StreamProcessor, engine_config
from service.metrics import Metrics
from service.partition_state import Checkpoint, PartitionState
from service.settings import Settings
from tests.integration.conftest import BOOTSTRAP, create_topics

pytestmark = pytest.mark.integration


async def committed_records(topic: str, partition: int, at_least: int) -> list[Any]:
    """What a read_committed reader sees of the partition, once it sees `at_least`
    records: a transaction's commit returns before the broker has written its markers
    into the partitions, so the last stable offset may lag it for a moment."""
    tp = TopicPartition(topic, partition)
    reader = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=None,
                              auto_offset_reset="earliest", isolation_level="read_committed")
    await reader.start()
    try:
        reader.assign([tp])
        deadline = time.monotonic() + 15
        while True:
            reader.seek(tp, 0)
            end = (await reader.end_offsets([tp]))[tp]  # the last stable offset
            records: list[Any] = []
            while await reader.position(tp) < end:
                records += (await reader.getmany(tp, timeout_ms=500)).get(tp, [])
            if len(records) >= at_least or time.monotonic() > deadline:
                return records
            await asyncio.sleep(0.1)
    finally:
        await reader.stop()


async def test_the_changelog_offset_after_a_checkpoint_in_several_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = uuid.uuid4().hex[:10]
    settings = Settings(kafka_bootstrap_servers=BOOTSTRAP, events_topic=f"events-{run}",
                        consumer_group=f"batches-{run}", snapshot_dir=tmp_path)
    outputs = f"outputs-{run}"
    await create_topics(settings.changelog, partitions=1)
    await create_topics(outputs, partitions=2)
    processor = StreamProcessor(settings, Metrics())
    # Small batches: a checkpoint of 300 changelog records needs ~10 of them.
    batches: list[Any] = []

    def small_batch() -> Any:
        batches.append(RecordBatchBuilder(4096, transactional=True))
        return batches[-1]

    monkeypatch.setattr(processor.clients, "record_batch", small_batch)
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, transactional_id=f"batches-{run}")
    await producer.start()
    state = PartitionState(0, engine_config(settings))
    try:
        for round_ in range(2):  # the second one starts after the first's records + marker
            changelog = [(b"acct-%d" % n, b"%d:" % round_ + b"v" * (n % 200))
                         for n in range(300)]
            produced: list[Any] = [(outputs, n % 2, b"k%d" % n, b"o" * (n % 300),
                                    (("score.tier", b"micro"),) if n % 3 else ())
                                   for n in range(200)]
            await processor._transaction(producer, state, Checkpoint(changelog, produced, {}))
            written = await committed_records(settings.changelog, 0, 300 * (round_ + 1))
            assert [(r.key, r.value) for r in written[-300:]] == changelog
            assert state.changelog_next == written[-1].offset + 1
        assert len(batches) > 2 * 10
        for partition in range(2):
            expected = [(k, v, h) for _, p, k, v, h in produced if p == partition] * 2
            assert [(r.key, r.value, tuple(r.headers)) for r in await committed_records(
                outputs, partition, len(expected))] == expected
    finally:
        await producer.stop()
