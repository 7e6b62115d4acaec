"""Losing the broker: the service still stops within its bound, and closes its clients.

Runs a second, private broker (the shared one serves the other tests) and stops it
under the running service.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import (
    REPO,
    PrivateBroker,
    ServiceProcess,
    _free_port,
    create_topics,
)

pytestmark = pytest.mark.integration
# Above the consumer's 5 s bound on a broker call, as the default (20 s) is.
SHUTDOWN_TIMEOUT_S = 10


@pytest.fixture
def private_broker() -> Iterator[str]:
    broker = PrivateBroker()
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.remove()


async def test_shutdown_without_a_broker_is_bounded_and_closes_kafka_clients(
    private_broker: str, tmp_path: Path
) -> None:
    name = f"events-{uuid.uuid4().hex[:10]}"
    await create_topics(name, f"{name}.dlq", bootstrap=private_broker)
    service = ServiceProcess(name, f"{name}.dlq", tmp_path / "snapshots", _free_port(), extra_env={
        "ENGAGEMENT_KAFKA_BOOTSTRAP_SERVERS": private_broker,
        "ENGAGEMENT_SHUTDOWN_TIMEOUT_S": str(SHUTDOWN_TIMEOUT_S)})
    service.start()
    try:
        service.wait_ready()
        port = private_broker.rpartition(":")[2]
        subprocess.run([str(REPO / "scripts" / "kafka.sh"), "stop"], check=True,
                       capture_output=True, env={**os.environ, "KAFKA_PORT": port})
        time.sleep(2)  # let the clients notice: fetches and heartbeats start failing
        started = time.monotonic()
        assert service.terminate(timeout_s=30) == 0
        # The shutdown bound, then at most 5 s for a cancelled consumer to close.
        assert time.monotonic() - started < SHUTDOWN_TIMEOUT_S + 5 + 2
    finally:
        service.kill()
    logs = service.logs()
    assert "stopped" in logs or "consumer did not stop in time" in logs
    assert "Unclosed" not in logs  # aiokafka's warning for a client never stopped
    assert "Application shutdown failed" not in logs
