"""Integration fixtures: the real local broker and the real service as a process.

Each test gets its own topics, consumer group, snapshot folder and HTTP port, so tests
never see each other's events.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

BOOTSTRAP = os.environ.get("ENGAGEMENT_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
REPO = Path(__file__).resolve().parents[2]


def _broker_answers() -> bool:
    host, _, port = BOOTSTRAP.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session", autouse=True)
def broker() -> None:
    """Starts the local broker when none answers (make test has usually done so)."""
    if not _broker_answers():
        subprocess.run([str(REPO / "scripts" / "kafka.sh"), "start"], check=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def create_topics(*names: str, partitions: int = 3, bootstrap: str = BOOTSTRAP) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1) for name in names])
    finally:
        await admin.close()


def _free_port_pair() -> int:
    """A port whose successor is free too (the broker's controller listens there)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        with socket.socket() as successor:
            try:
                successor.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no free pair of ports")


class PrivateBroker:
    """A KRaft broker of its own (scripts/kafka.sh), started and stopped at will."""

    def __init__(self, auto_create_topics: bool = True) -> None:
        self.port = str(_free_port_pair())
        self.bootstrap = f"127.0.0.1:{self.port}"
        self._env = {**os.environ, "KAFKA_PORT": self.port,
                     "KAFKA_AUTO_CREATE_TOPICS": str(auto_create_topics).lower()}

    def start(self) -> None:
        subprocess.run([str(REPO / "scripts" / "kafka.sh"), "start"], env=self._env,
                       check=True, capture_output=True)

    def stop(self) -> None:
        subprocess.run([str(REPO / "scripts" / "kafka.sh"), "stop"], env=self._env,
                       check=False, capture_output=True)

    def remove(self) -> None:
        self.stop()
        home = REPO / ".kafka"  # the jars stay; this broker's data, log and config go
        shutil.rmtree(home / f"data-{self.port}", ignore_errors=True)
        (home / f"kafka-{self.port}.log").unlink(missing_ok=True)
        (home / f"server-{self.port}.properties").unlink(missing_ok=True)


@dataclass
class ServiceProcess:
    """The service running as `python -m service`, with its own topic and state."""

    topic: str
    dlq_topic: str
    snapshot_dir: Path
    port: int
    extra_env: dict[str, str] = field(default_factory=dict)
    command: list[str] = field(default_factory=lambda: [sys.executable, "-m", "service"])
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "ENGAGEMENT_KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP,
            "ENGAGEMENT_EVENTS_TOPIC": self.topic,
            "ENGAGEMENT_DLQ_TOPIC": self.dlq_topic,
            "ENGAGEMENT_SCORES_TOPIC": f"{self.topic}.scores",
            "ENGAGEMENT_CONSUMER_GROUP": f"group-{self.topic}",
            "ENGAGEMENT_SNAPSHOT_DIR": str(self.snapshot_dir),
            "ENGAGEMENT_HTTP_HOST": "127.0.0.1",
            "ENGAGEMENT_HTTP_PORT": str(self.port),
            "ENGAGEMENT_LOG_FORMAT": "json",
            "ENGAGEMENT_FETCH_TIMEOUT_MS": "50",
            **self.extra_env,
        }

    def start(self) -> None:
        self.log_path = self.snapshot_dir.parent / f"service-{self.port}.log"
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child process owns it
        self.process = subprocess.Popen(self.command, env=self.env(), stdout=log, stderr=log,
                                        cwd=self.snapshot_dir.parent)

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"service exited: {self.logs()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"service not ready in {timeout_s}s: {self.logs()[-3000:]}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def terminate(self, timeout_s: float = 30.0) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout_s)

    def logs(self) -> str:
        return self.log_path.read_text() if self.log_path and self.log_path.exists() else ""


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[ServiceProcess]:
    name = f"events-{uuid.uuid4().hex[:10]}"
    await create_topics(name, f"{name}.dlq")
    running = ServiceProcess(name, f"{name}.dlq", tmp_path / "snapshots", _free_port())
    yield running
    running.kill()


@pytest.fixture
async def producer() -> AsyncIterator[AIOKafkaProducer]:
    client = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=5, acks="all")
    await client.start()
    yield client
    await client.stop()


async def produce(producer: AIOKafkaProducer, topic: str, events: list[dict[str, Any]]) -> None:
    for event in events:
        await producer.send(topic, orjson.dumps(event), key=str(event["account_id"]).encode())
    await producer.flush()


async def produce_raw(producer: AIOKafkaProducer, topic: str,
                      messages: list[tuple[bytes | None, bytes | None]]) -> None:
    for key, value in messages:
        await producer.send(topic, value, key=key)
    await producer.flush()


async def read_topic(topic: str, expected: int, timeout_s: float = 30.0) -> list[Any]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=BOOTSTRAP,
                                auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(records) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for partition_records in batch.values():
                records.extend(partition_records)
        # Anything beyond `expected` would be a duplicate: give it a moment to show up.
        batch = await consumer.getmany(timeout_ms=1000)
        for partition_records in batch.values():
            records.extend(partition_records)
    finally:
        await consumer.stop()
    return records


async def wait_for(check: Any, timeout_s: float = 30.0, interval_s: float = 0.2) -> Any:
    """Polls `check()` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval_s)
    raise AssertionError(f"condition not met in {timeout_s}s (last: {last!r})")


def get_json(url: str) -> Any:
    response = httpx.get(url, timeout=5)
    return response.status_code, response.json()


@pytest.fixture
def started(service: ServiceProcess) -> ServiceProcess:
    service.start()
    service.wait_ready()
    return service
