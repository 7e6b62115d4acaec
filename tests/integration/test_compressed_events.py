"""Producers may compress (Kafka's `compression.type`): events in gzip, snappy, lz4 and
zstd batches count as uncompressed ones do. Without aiokafka's codecs (cramjam) the three
last ones raised UnsupportedCodecError on every fetch of their partition. And the real
fetcher hands such fetches to the reader in place (service/fetched_records.py), not to
aiokafka's slower path."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from service import fetched_records
from tests.events import followers, interaction, post
from tests.integration.conftest import (
    BOOTSTRAP,
    ServiceProcess,
    create_topics,
    get_json,
    produce,
    wait_for,
)

pytestmark = pytest.mark.integration
CODECS = ("gzip", "snappy", "lz4", "zstd")


async def test_compressed_events_count_as_uncompressed_ones(started: ServiceProcess) -> None:
    for codec in CODECS:
        producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, compression_type=codec,
                                    linger_ms=5)
        await producer.start()
        try:
            account = f"packed-{codec}"
            events = [followers(account, 500, 0), post(account, "p1", 1)]
            events += [interaction("like", account, "p1", f"u{i}", 10 + i) for i in range(30)]
            await produce(producer, started.topic, events)
        finally:
            await producer.stop()

    def all_counted() -> bool:
        for codec in CODECS:
            status, body = get_json(f"{started.url}/accounts/packed-{codec}/score")
            if status != 200 or body["counts"]["likes"] != 30:
                return False
        return True

    await wait_for(all_counted)


async def test_the_fetcher_hands_every_codec_to_the_reader_in_place() -> None:
    topic = f"in-place-{uuid.uuid4().hex[:10]}"
    await create_topics(topic, partitions=1)
    for codec in (None, *CODECS):
        producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, compression_type=codec,
                                    linger_ms=5)
        await producer.start()
        try:
            await produce(producer, topic, [followers(f"a-{codec}", n, n) for n in range(20)])
        finally:
            await producer.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=BOOTSTRAP, group_id=None,
                                auto_offset_reset="earliest",
                                value_deserializer=fetched_records.in_place)
    await consumer.start()
    try:
        kinds: list[str] = []
        offsets: list[int] = []
        for _ in range(30):  # at most a minute
            if len(offsets) >= 100:
                break
            for listed in (await consumer.getmany(timeout_ms=2_000)).values():
                kinds += [type(item).__name__ for item in listed]
                offsets += [record.offset for record in fetched_records.records_of(listed)]
        assert set(kinds) == {"FetchedRecords"}
        assert offsets == list(range(100))
    finally:
        await consumer.stop()
