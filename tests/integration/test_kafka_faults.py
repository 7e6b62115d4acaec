"""Kafka faults against a private, real broker: started after the service, lost for a
minute under load, and a consumer that fails for a reason no retry can fix."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions

from tests.events import interaction, post
from tests.integration.conftest import (
    PrivateBroker,
    ServiceProcess,
    _free_port,
    create_topics,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def broker() -> Iterator[PrivateBroker]:
    private = PrivateBroker()
    try:
        yield private
    finally:
        private.remove()


def events_for(accounts: int, likes: int, tag: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for number in range(accounts):
        account = f"fault-{number}"
        if tag == "a":
            events.append(post(account, "p1", 0.0))
        events += [interaction("like", account, "p1", f"{tag}-u{i}", 60.0 + i)
                   for i in range(likes)]
    return events


async def produce(bootstrap: str, topic: str, events: list[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        for event in events:
            await producer.send(topic, orjson.dumps(event), key=event["account_id"].encode())
        await producer.flush()
    finally:
        await producer.stop()


def likes_of(service: ServiceProcess, account: str) -> int | None:
    response = httpx.get(f"{service.url}/accounts/{account}/score", timeout=5)
    if response.status_code != 200:
        return None
    likes: int = response.json()["counts"]["likes"]
    return likes


def wait_until(check: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"{what}: not within {timeout_s}s (last: {last!r})")


def metric(service: ServiceProcess, name: str) -> float:
    text = httpx.get(f"{service.url}/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and not line.startswith("#"))


def service_on(broker: PrivateBroker, tmp_path: Path, topic: str, **env: str
               ) -> ServiceProcess:
    return ServiceProcess(topic, f"{topic}.dlq", tmp_path / "snapshots", _free_port(),
                          extra_env={"ENGAGEMENT_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
                                     "ENGAGEMENT_CONNECT_RETRY_MAX_S": "3", **env})


async def test_a_service_started_30_s_before_its_broker_becomes_ready_with_exact_counts(
    broker: PrivateBroker, tmp_path: Path
) -> None:
    topic = f"events-{uuid.uuid4().hex[:10]}"
    service = service_on(broker, tmp_path, topic)
    service.start()
    try:
        time.sleep(30)
        assert service.process is not None
        assert service.process.poll() is None
        # Alive and retrying: healthy, not ready, and it says why.
        health = httpx.get(f"{service.url}/healthz", timeout=5)
        assert health.status_code == 200, health.text
        ready = httpx.get(f"{service.url}/readyz", timeout=5)
        assert ready.status_code == 503
        assert ready.json()["checks"]["broker_reachable"] is False
        assert metric(service, 'engagement_kafka_connect_attempts_total{outcome="failed"}') >= 3
        assert "kafka not reachable; retrying" in service.logs()

        broker.start()
        await create_topics(topic, f"{topic}.dlq", bootstrap=broker.bootstrap)
        await produce(broker.bootstrap, topic, events_for(5, 40, "a"))
        service.wait_ready(timeout_s=90)
        for number in range(5):
            wait_until(lambda n=number: likes_of(service, f"fault-{n}") == 40, 60,
                       f"fault-{number} counted")
    finally:
        service.kill()


async def test_a_broker_lost_for_60_s_under_load_leaves_the_service_answering_and_exact(
    broker: PrivateBroker, tmp_path: Path
) -> None:
    broker.start()
    topic = f"events-{uuid.uuid4().hex[:10]}"
    await create_topics(topic, f"{topic}.dlq", bootstrap=broker.bootstrap)
    service = service_on(broker, tmp_path, topic, ENGAGEMENT_SNAPSHOT_INTERVAL_S="5")
    service.start()
    try:
        service.wait_ready(timeout_s=90)
        await produce(broker.bootstrap, topic, events_for(6, 50, "a"))
        wait_until(lambda: all(likes_of(service, f"fault-{n}") == 50 for n in range(6)), 60,
                   "first half counted")

        broker.stop()
        outage_started = time.monotonic()
        answers: list[int] = []
        while time.monotonic() - outage_started < 60:
            response = httpx.get(f"{service.url}/accounts/fault-0/score", timeout=5)
            answers.append(response.status_code)
            if response.status_code == 200:
                assert response.json()["counts"]["likes"] == 50
            time.sleep(1)
        assert answers.count(200) == len(answers), answers  # answered from memory throughout
        freshness = httpx.get(f"{service.url}/accounts/fault-0/score", timeout=5).json()[
            "freshness"]
        assert freshness["seconds_since_progress"] > 30  # the answer says it is not fresh
        ready = httpx.get(f"{service.url}/readyz", timeout=5).json()
        assert ready["checks"]["broker_reachable"] is False
        assert ready["broker_unreachable_since"] is not None
        assert httpx.get(f"{service.url}/healthz", timeout=5).status_code == 200

        broker.start()
        await produce(broker.bootstrap, topic, events_for(6, 30, "b"))
        wait_until(lambda: all(likes_of(service, f"fault-{n}") == 80 for n in range(6)), 120,
                   "second half counted")
        time.sleep(3)  # nothing counted twice, even after the next checkpoints
        assert all(likes_of(service, f"fault-{n}") == 80 for n in range(6))
        assert service.process is not None
        assert service.process.poll() is None
    finally:
        service.kill()


async def test_a_consumer_that_cannot_go_on_is_restarted_then_reported_unhealthy(
    broker: PrivateBroker, tmp_path: Path
) -> None:
    """Partitions added to the events topic break the co-partitioning with the changelog:
    the consumer fails, is restarted with back-off, fails again, and /healthz turns 503
    so that Kubernetes restarts the pod (whose start then fails with a clear error)."""
    broker.start()
    topic = f"events-{uuid.uuid4().hex[:10]}"
    await create_topics(topic, f"{topic}.dlq", bootstrap=broker.bootstrap)
    service = service_on(broker, tmp_path, topic, ENGAGEMENT_CONSUMER_UNHEALTHY_AFTER_S="10")
    service.start()
    try:
        service.wait_ready(timeout_s=90)
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            await admin.create_partitions({topic: NewPartitions(total_count=4)})
        finally:
            await admin.close()
        wait_until(lambda: metric(service, "engagement_consumer_restarts_total") >= 1, 60,
                   "the consumer restarted")
        health = wait_until(
            lambda: (r := httpx.get(f"{service.url}/healthz", timeout=5)).status_code == 503
            and r.json(), 60, "/healthz unhealthy")
        assert "partitions" in health["reason"]
        assert "consumer failed; restarting" in service.logs()
    finally:
        service.kill()

    restarted = service_on(broker, tmp_path, topic)
    restarted.start()
    assert restarted.process is not None
    assert restarted.process.wait(60) == 2
    assert "co-partitioned" in restarted.logs()


@pytest.mark.parametrize("address", ["kafka:port", "host:99999", "a,,b"])
def test_an_unparseable_bootstrap_address_fails_the_start_at_once(
    tmp_path: Path, address: str
) -> None:
    service = ServiceProcess("t", "t.dlq", tmp_path / "snapshots", _free_port(),
                             extra_env={"ENGAGEMENT_KAFKA_BOOTSTRAP_SERVERS": address})
    service.start()
    assert service.process is not None
    assert service.process.wait(30) == 2
    assert "ENGAGEMENT_KAFKA_BOOTSTRAP_SERVERS" in service.logs()


def test_a_missing_topic_with_auto_creation_off_fails_the_start_with_a_clear_error(
    tmp_path: Path,
) -> None:
    broker = PrivateBroker(auto_create_topics=False)
    try:
        broker.start()
        service = service_on(broker, tmp_path, f"never-{uuid.uuid4().hex[:8]}",
                             ENGAGEMENT_TOPIC_WAIT_S="5")
        service.start()
        assert service.process is not None
        assert service.process.wait(60) == 2
        assert "does not exist and the broker did not create it" in service.logs()
    finally:
        broker.remove()
