"""The score-change stream is exactly-once with the state: killed with SIGKILL at random
moments while it ingests, the service's stream (read with read_committed) ends holding,
for every account, the same score as the HTTP API answers."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tests.integration.conftest import BOOTSTRAP, ServiceProcess, produce, wait_for
from tests.integration.test_durability import ground_truth, known_stream, matches

pytestmark = pytest.mark.integration


async def latest_records(topic: str) -> dict[str, Any]:
    """The latest committed value per account (None: a tombstone)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=BOOTSTRAP, group_id=None,
                                auto_offset_reset="earliest",
                                isolation_level="read_committed")
    await consumer.start()
    latest: dict[str, Any] = {}
    try:
        idle = 0
        while idle < 5:
            batch = await consumer.getmany(timeout_ms=300)
            idle = 0 if batch else idle + 1
            for records in batch.values():
                for record in records:
                    latest[record.key.decode()] = (None if record.value is None
                                                   else orjson.loads(record.value))
    finally:
        await consumer.stop()
    return latest


def without_freshness(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key != "freshness"}


async def test_the_stream_ends_equal_to_the_http_answers_across_kill_9(
    service: ServiceProcess, producer: AIOKafkaProducer
) -> None:
    events = known_stream(accounts=60, seed=11)
    truth = ground_truth(events)
    # Every change is worth a record, at once: the stream must track the state exactly.
    service.extra_env.update({"ENGAGEMENT_SCORE_CHANGE_STEP": "0.0001",
                              "ENGAGEMENT_SCORE_CHANGE_INTERVAL_S": "0",
                              "ENGAGEMENT_COMMIT_INTERVAL_S": "0.3",
                              "ENGAGEMENT_GROUP_INSTANCE_ID": "stream-0"})
    rng = random.Random(3)
    chunks = 4
    size = len(events) // chunks + 1
    service.start()
    service.wait_ready()
    for number in range(chunks):
        await produce(producer, service.topic, events[number * size:(number + 1) * size])
        await asyncio.sleep(rng.uniform(0.2, 1.0))
        service.kill()
        service.start()
        service.wait_ready()
    await wait_for(lambda: not matches(service.url, truth), timeout_s=90, interval_s=1)
    # The counts are final; what follows them is not instant: audience signals make their
    # round trip through the two internal topics, and each change is published by the
    # checkpoint after it, at the re-score budget's pace. The stream must catch up with
    # the state, and stay caught up (a record never published would fail here).
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        differing = await stream_against_answers(service.url, f"{service.topic}.scores",
                                                 sorted(truth))
        if not differing or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(1)
    assert differing == {}


def same_score(record: dict[str, Any], answer: dict[str, Any]) -> bool:
    """What the stream promises (service/engine/score_changes.py): a record whenever the
    tier changes or the credibility moves by the step (here as small as the body's
    rounding). The rest of the body may have moved without a record: 111 judged
    interactions becoming 114 with every one of them from busy actors changes the
    explanation's counts, not the score."""
    return (without_freshness(record) == without_freshness(answer)
            or (record["tier"] == answer["tier"]
                and record["credibility"] == answer["credibility"]))


async def stream_against_answers(url: str, topic: str, accounts: list[str]
                                 ) -> dict[str, tuple[Any, Any]]:
    """The accounts whose latest committed record does not hold the HTTP answer's score,
    with both; every account of `accounts` must have a record."""
    stream = await latest_records(topic)
    # An account the stream holds and the truth does not is a difference too.
    differing: dict[str, tuple[Any, Any]] = {account_id: (stream[account_id], None)
                                             for account_id in set(stream) - set(accounts)}
    async with httpx.AsyncClient(timeout=5) as client:
        for account_id in accounts:
            record = stream.get(account_id)
            answer = (await client.get(f"{url}/accounts/{account_id}/score")).json()
            if record is None or not same_score(record, answer):
                differing[account_id] = (record, answer)
    return differing
