"""Producers may compress (Kafka's `compression.type`): events in gzip, snappy, lz4 and
zstd batches count as uncompressed ones do. Without aiokafka's codecs (cramjam) the three
last ones raised UnsupportedCodecError on every fetch of their partition."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaProducer

from tests.events import followers, interaction, post
from tests.integration.conftest import BOOTSTRAP, ServiceProcess, get_json, produce, wait_for

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
