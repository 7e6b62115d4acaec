"""Reads stay monotonic across a `kill -9`: the owner answers from events it has folded
but not yet committed, so the instance that takes its partition over restores fewer and
must fold them again before it answers (`PartitionState.catch_up`)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from tests.events import interaction, post
from tests.integration.conftest import BOOTSTRAP, ServiceProcess, _free_port, create_topics

pytestmark = pytest.mark.integration
ACCOUNTS = 12
LIKES = 2_500  # each: enough input that folding it again takes a while


def instance(topic: str, tmp_path: Path, name: str, **env: str) -> ServiceProcess:
    (tmp_path / name).mkdir()
    return ServiceProcess(topic, f"{topic}.dlq", tmp_path / name / "snapshots", _free_port(),
                          extra_env={"ENGAGEMENT_SESSION_TIMEOUT_S": "6", **env})


def likes_through(service: ServiceProcess) -> dict[str, int]:
    found = {}
    for number in range(ACCOUNTS):
        response = httpx.get(f"{service.url}/accounts/acct-{number:02d}/score", timeout=5)
        if response.status_code == 200:
            found[f"acct-{number:02d}"] = response.json()["counts"]["likes"]
    return found


class Watcher(threading.Thread):
    """Asks the new owner for every account as fast as it answers, from before it is up."""

    def __init__(self, service: ServiceProcess, served: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.service, self.served = service, served
        self.problems: list[str] = []
        self.statuses: Counter[int] = Counter()
        self.complete = threading.Event()
        self.waits: set[str] = set()  # the details of the 503s

    def run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self.complete.is_set():
                full = 0
                for account, likes in self.served.items():
                    try:
                        response = client.get(f"{self.service.url}/accounts/{account}/score")
                    except httpx.HTTPError:
                        time.sleep(0.02)  # not listening yet
                        break
                    self.statuses[response.status_code] += 1
                    if response.status_code == 200:
                        answered = response.json()["counts"]["likes"]
                        if answered < likes:
                            self.problems.append(f"{account}: {answered} after {likes}")
                        full += answered == likes
                    elif response.status_code == 503:
                        self.waits.add(response.json()["detail"])
                    elif response.status_code == 404:
                        self.problems.append(f"{account}: 404 after {likes} likes")
                if full == len(self.served):
                    self.complete.set()


async def test_the_instance_taking_over_never_answers_less_than_the_dead_owner_did(
    tmp_path: Path,
) -> None:
    topic = f"takeover-{uuid.uuid4().hex[:10]}"
    await create_topics(topic, f"{topic}.dlq", partitions=1)
    # The owner commits only after a minute: everything it answers is uncommitted.
    owner = instance(topic, tmp_path, "owner", ENGAGEMENT_COMMIT_INTERVAL_S="60")
    successor = instance(topic, tmp_path, "successor")
    watcher: Watcher | None = None
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=20, acks="all")
    await producer.start()
    try:
        owner.start()
        owner.wait_ready(timeout_s=90)
        for number in range(ACCOUNTS):
            account = f"acct-{number:02d}"
            await producer.send(topic, orjson.dumps(post(account, "p1", 0.0)),
                                key=account.encode())
            for index in range(LIKES):
                event = interaction("like", account, "p1", f"u{index}", 60.0 + index)
                await producer.send(topic, orjson.dumps(event), key=account.encode())
        await producer.flush()
        expected = {f"acct-{number:02d}": LIKES for number in range(ACCOUNTS)}
        deadline = time.monotonic() + 60
        while likes_through(owner) != expected:
            assert time.monotonic() < deadline, f"the owner never folded it: {likes_through(owner)}"
            await asyncio.sleep(0.2)

        owner.kill()  # kill -9 before its first commit
        watcher = Watcher(successor, expected)
        watcher.start()
        successor.start()
        assert await asyncio.to_thread(watcher.complete.wait, 120), (
            f"the successor never answered every count: {watcher.statuses}")
    finally:
        if watcher is not None:
            watcher.complete.set()
        await producer.stop()
        owner.kill()
        successor.kill()
    assert not watcher.problems, watcher.problems[:10]
    # It did wait: the partition answered 503 while it folded the input again.
    assert any("as far as it reached" in detail for detail in watcher.waits), watcher.waits
