"""A first start creates the internal topics in one request, co-partitioned with the
events and the changelog compacted; one the broker refuses fails the start with the
broker's reason (service/kafka_clients.py, `check_topics`)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tests.integration.conftest import BOOTSTRAP, ServiceProcess, _free_port, create_topics

pytestmark = pytest.mark.integration


async def test_a_first_start_creates_the_internal_topics_co_partitioned(
    tmp_path: Path,
) -> None:
    topic = f"events-{uuid.uuid4().hex[:10]}"
    await create_topics(topic, f"{topic}.dlq", partitions=5)
    service = ServiceProcess(topic, f"{topic}.dlq", tmp_path / "snapshots", _free_port())
    service.start()
    try:
        service.wait_ready(timeout_s=90)
    finally:
        service.kill()
    group = f"group-{topic}"
    internal = [f"{group}-accounts-changelog", f"{group}-actors-repartition",
                f"{group}-audience-signals", f"{topic}.scores"]
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        described = {entry["topic"]: entry for entry in await admin.describe_topics(internal)}
        assert {name: len(described[name]["partitions"]) for name in internal} == dict.fromkeys(
            internal, 5)
        configs = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, internal[0])])
        entries = {entry[0]: entry[1] for response in configs
                   for resource in response.resources for entry in resource[4]}
        assert "compact" in entries["cleanup.policy"]
    finally:
        await admin.close()


async def test_internal_topics_the_broker_refuses_fail_the_start_with_its_reason(
    tmp_path: Path,
) -> None:
    """Three replicas on the one test broker: the start fails at once (exit 2) with the
    broker's words, instead of waiting for topics that never come."""
    topic = f"events-{uuid.uuid4().hex[:10]}"
    await create_topics(topic, f"{topic}.dlq")
    service = ServiceProcess(topic, f"{topic}.dlq", tmp_path / "snapshots", _free_port(),
                             extra_env={"ENGAGEMENT_INTERNAL_TOPIC_REPLICATION_FACTOR": "3"})
    service.start()
    try:
        assert service.process is not None
        assert service.process.wait(60) == 2
    finally:
        service.kill()
    logs = service.logs()
    assert "cannot create the internal topic" in logs
    assert "replication factor of 3 cannot be reached" in logs
