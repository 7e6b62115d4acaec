"""Malformed messages go to the dead-letter topic once, with their reason; valid ones count."""

from __future__ import annotations

import asyncio
import random

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from tests.events import followers, interaction, post
from tests.integration.conftest import (
    ServiceProcess,
    get_json,
    produce_raw,
    read_topic,
    wait_for,
)

pytestmark = pytest.mark.integration

MALFORMED: list[tuple[bytes | None, bytes | None, str]] = [
    (b"dl-1", b"\xff\xfe not utf-8", "not_utf8"),
    (b"dl-1", b"{broken json", "not_json"),
    (b"dl-1", b"[1, 2, 3]", "not_an_object"),
    (b"dl-1", orjson.dumps({**interaction("like", "dl-1", "p", "u", 1), "type": "poke"}),
     "unknown_type"),
    (b"dl-1", orjson.dumps({k: v for k, v in interaction("like", "dl-1", "p", "u", 1).items()
                            if k != "actor_id"}), "missing_field"),
    (b"dl-1", orjson.dumps(followers("dl-1", -5)), "invalid_value"),
    (b"dl-1", orjson.dumps({**followers("dl-1", 5), "followers": "many"}), "invalid_value"),
    (b"dl-1", orjson.dumps({**followers("dl-1", 5), "occurred_at": "last tuesday"}),
     "invalid_timestamp"),
    (b"dl-1", orjson.dumps({**followers("dl-1", 5), "occurred_at": "2999-01-01T00:00:00Z"}),
     "timestamp_in_future"),
    (b"x" * 200, orjson.dumps({**followers("dl-1", 5), "account_id": "a" * 200}), "invalid_id"),
    (b"someone-else", orjson.dumps(followers("dl-1", 5)), "key_mismatch"),
    (b"dl-1", b"{" + b" " * 10_000 + b"}", "payload_too_large"),
]


async def test_malformed_messages_are_dead_lettered_once_and_valid_ones_counted(
    started: ServiceProcess, producer: AIOKafkaProducer
) -> None:
    valid = [followers("dl-1", 1_000, 0), post("dl-1", "p1", 5)]
    valid += [interaction("like", "dl-1", "p1", f"u{i}", 10 + i) for i in range(40)]
    messages: list[tuple[bytes | None, bytes | None, str | None]] = [
        (b"dl-1", orjson.dumps(event), None) for event in valid]
    rng = random.Random(5)
    for bad in MALFORMED:  # interleave the bad among the good, keeping the good in order
        messages.insert(rng.randrange(2, len(messages) + 1), bad)
    await produce_raw(producer, started.topic, [(key, value) for key, value, _ in messages])
    # The producer's own headers go with its dead letter, one without a value too.
    await producer.send_and_wait(started.topic, b"{with headers", key=b"dl-1",
                                 headers=[("trace", b"t-1"), ("empty", None)])

    def all_counted() -> object:
        status, body = get_json(f"{started.url}/accounts/dl-1/score")
        return status == 200 and body["counts"]["likes"] == 40

    await wait_for(all_counted)
    dead = await read_topic(started.dlq_topic, expected=len(MALFORMED) + 1)
    assert len(dead) == len(MALFORMED) + 1
    by_value = {record.value: record for record in dead}
    assert by_value[b"{with headers"].headers[:2] == (("trace", b"t-1"), ("empty", None))
    for key, value, reason in MALFORMED:
        record = by_value[value]
        headers = {name: content.decode() for name, content in record.headers}
        assert record.key == key
        assert headers["dlq.reason"] == reason
        assert headers["dlq.detail"]
        assert headers["dlq.source.topic"] == started.topic
        assert int(headers["dlq.source.offset"]) >= 0
        assert "dlq.source.partition" in headers
    assert httpx.get(f"{started.url}/readyz").status_code == 200
    metrics = httpx.get(f"{started.url}/metrics").text
    assert 'engagement_dead_letters_total{reason="not_json"} 2.0' in metrics


async def test_an_unwritable_dead_letter_topic_stalls_the_stream_instead_of_losing(
    service: ServiceProcess, producer: AIOKafkaProducer
) -> None:
    good_dlq = service.dlq_topic
    service.dlq_topic = "not a valid topic name!"  # the broker refuses every write
    service.extra_env["ENGAGEMENT_DLQ_RETRY_MAX_S"] = "0.5"
    service.extra_env["ENGAGEMENT_DLQ_SEND_TIMEOUT_S"] = "1"
    service.start()
    service.wait_ready()
    before = [followers("stall-1", 100, 0), post("stall-1", "p1", 1)]
    after = [interaction("like", "stall-1", "p1", f"u{i}", 10 + i) for i in range(5)]
    await produce_raw(producer, service.topic, [(b"stall-1", orjson.dumps(e)) for e in before])
    await wait_for(lambda: get_json(f"{service.url}/accounts/stall-1/score")[0] == 200)
    await produce_raw(producer, service.topic, [(b"stall-1", b"{broken")])
    await asyncio.sleep(1)  # the bad message is fetched alone, then the good ones arrive
    await produce_raw(producer, service.topic, [(b"stall-1", orjson.dumps(e)) for e in after])

    def reported() -> bool:
        ready = httpx.get(f"{service.url}/readyz")
        metrics = httpx.get(f"{service.url}/metrics").text
        return ready.status_code == 503 and \
            "engagement_dead_letter_publish_failures_total 0.0" not in metrics
    await wait_for(reported)
    assert httpx.get(f"{service.url}/readyz").json()["checks"][
        "dead_letter_topic_writable"] is False
    assert get_json(f"{service.url}/accounts/stall-1/score")[1]["counts"]["likes"] == 0
    assert "cannot write the dead-letter topic" in service.logs()

    service.kill()  # restart with a writable topic: the message was not skipped
    service.dlq_topic = good_dlq
    service.start()
    service.wait_ready()
    # Nothing was checkpointed while stalled: the partition is replayed from its last
    # commit, through the bad message, and answers 404 or 503 until then.
    await wait_for(lambda: get_json(
        f"{service.url}/accounts/stall-1/score")[1].get("counts", {}).get("likes") == 5)
    dead = await read_topic(good_dlq, expected=1)
    assert [record.value for record in dead] == [b"{broken"]
