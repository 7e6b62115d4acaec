"""Several instances in one consumer group, in the spirit of Kafka Streams' StreamsEosTest:
partitions move under load (kill -9, a member joins, a member leaves with SIGTERM), and
every account's counts end equal to the ground truth through every live instance, while
a reader that asks random instances for random accounts never gets a stale or wrong 200.
Each partition has a standby replica, so a killed member's partitions are taken over from
warm copies, and a new member's from the changelog: both paths run; the members that
give partitions to a new one keep them as standby copies, handed over warm.
"""

from __future__ import annotations

import asyncio
import base64
import random
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from tests.events import interaction, post
from tests.integration.conftest import BOOTSTRAP, ServiceProcess, _free_port, create_topics

pytestmark = pytest.mark.integration
PARTITIONS = 6
ACCOUNTS = 48


def instance(topic: str, tmp_path: Path, name: str) -> ServiceProcess:
    port = _free_port()
    (tmp_path / name).mkdir()
    return ServiceProcess(
        topic, f"{topic}.dlq", tmp_path / name / "snapshots", port,
        extra_env={"ENGAGEMENT_CONSUMER_GROUP": f"group-{topic}",
                   "ENGAGEMENT_ADVERTISED_URL": f"http://127.0.0.1:{port}",
                   "ENGAGEMENT_SNAPSHOT_INTERVAL_S": "3",
                   "ENGAGEMENT_COMMIT_INTERVAL_S": "0.5",
                   "ENGAGEMENT_STANDBY_REPLICAS": "1",
                   "ENGAGEMENT_SESSION_TIMEOUT_S": "6"})


class Truth:
    """What was produced: likes per account, and what the reader saw."""

    def __init__(self) -> None:
        self.likes: Counter[str] = Counter()
        self.lock = threading.Lock()


async def produce_round(producer: AIOKafkaProducer, topic: str, truth: Truth, round_: int,
                        rng: random.Random) -> None:
    for number in range(ACCOUNTS):
        account = f"acct-{number:03d}"
        if round_ == 0:
            event = post(account, "p1", 0.0)
            await producer.send(topic, orjson.dumps(event), key=account.encode())
        likes = rng.randint(1, 6)
        for index in range(likes):
            event = interaction("like", account, "p1", f"r{round_}-u{index}",
                                60.0 + round_ * 10 + index)
            await producer.send(topic, orjson.dumps(event), key=account.encode())
        with truth.lock:
            truth.likes[account] += likes
    await producer.flush()


class Reader(threading.Thread):
    """Random accounts through random live instances; flags any 200 that goes back in
    time, exceeds what was produced, or a 404 for an account already answered."""

    def __init__(self, truth: Truth) -> None:
        super().__init__(daemon=True)
        self.truth = truth
        self.instances: list[ServiceProcess] = []
        self.seen: dict[str, int] = {}
        self.problems: list[str] = []
        self.statuses: Counter[int] = Counter()
        self.stopping = threading.Event()

    def run(self) -> None:
        rng = random.Random(5)
        with httpx.Client(timeout=5) as client:
            while not self.stopping.is_set():
                live = list(self.instances)
                if not live:
                    time.sleep(0.05)
                    continue
                target = rng.choice(live)
                account = f"acct-{rng.randrange(ACCOUNTS):03d}"
                with self.truth.lock:
                    produced = self.truth.likes[account]
                try:
                    response = client.get(f"{target.url}/accounts/{account}/score")
                except httpx.HTTPError:
                    continue  # the instance is being killed
                self.statuses[response.status_code] += 1
                self._check(account, produced, response)
                time.sleep(0.01)

    def _check(self, account: str, produced: int, response: httpx.Response) -> None:
        if response.status_code == 200:
            likes = response.json()["counts"]["likes"]
            before = self.seen.get(account, 0)
            if likes < before:
                self.problems.append(f"{account}: {likes} after {before} (stale 200)")
            if likes > produced:
                self.problems.append(f"{account}: {likes} > {produced} produced")
            self.seen[account] = max(before, likes)
        elif response.status_code == 404 and account in self.seen:
            self.problems.append(f"{account}: 404 after it was answered")
        elif response.status_code not in (200, 404, 503):
            self.problems.append(f"{account}: status {response.status_code}")


def counts_through(service: ServiceProcess) -> dict[str, Any]:
    found = {}
    for number in range(ACCOUNTS):
        account = f"acct-{number:03d}"
        response = httpx.get(f"{service.url}/accounts/{account}/score", timeout=5)
        found[account] = response.json()["counts"]["likes"] \
            if response.status_code == 200 else response.status_code
    return found


async def test_partitions_move_under_load_and_every_instance_answers_the_ground_truth(
    tmp_path: Path,
) -> None:
    topic = f"cluster-{uuid.uuid4().hex[:10]}"
    await create_topics(topic, f"{topic}.dlq", partitions=PARTITIONS)
    a, b, c = (instance(topic, tmp_path, name) for name in "abc")
    everyone = [a, b, c]
    a.start()  # alone first: it owns every partition, then gives four away
    truth = Truth()
    reader = Reader(truth)
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=5)
    await producer.start()
    rng = random.Random(9)
    try:
        a.wait_ready(timeout_s=90)
        await produce_round(producer, topic, truth, 0, rng)
        await asyncio.sleep(1.5)  # committed: what a gives away it can keep as standby
        for member in (b, c):
            member.start()
        for member in (b, c):
            member.wait_ready(timeout_s=90)
        reader.instances = [a, b, c]
        reader.start()
        round_ = 1
        for _ in range(2):
            await produce_round(producer, topic, truth, round_, rng)
            round_ += 1
            await asyncio.sleep(0.5)

        def standbys_listed() -> bool:
            view = httpx.get(f"{a.url}/cluster", timeout=10).json()
            return all(len(p["standbys"]) == 1 and p["standbys"][0]["url"] != p["owner"]
                       for p in view["partitions"])
        deadline = time.monotonic() + 30
        while not standbys_listed():
            assert time.monotonic() < deadline, "standbys never listed in /cluster"
            await asyncio.sleep(0.5)
        b.kill()  # kill -9: its partitions move without a goodbye
        reader.instances = [a, c]
        for _ in range(3):
            await produce_round(producer, topic, truth, round_, rng)
            round_ += 1
            await asyncio.sleep(0.5)

        d = instance(topic, tmp_path, "d")
        everyone.append(d)
        d.start()
        for _ in range(3):
            await produce_round(producer, topic, truth, round_, rng)
            round_ += 1
            await asyncio.sleep(0.5)
        d.wait_ready(timeout_s=90)
        reader.instances = [a, c, d]

        reader.instances = [a, d]
        assert c.terminate(timeout_s=60) == 0  # SIGTERM: a clean goodbye
        for _ in range(3):
            await produce_round(producer, topic, truth, round_, rng)
            round_ += 1
            await asyncio.sleep(0.5)

        expected = dict(truth.likes)
        deadline = time.monotonic() + 120
        results: dict[str, dict[str, Any]] = {}
        while time.monotonic() < deadline:
            results = {m.url: counts_through(m) for m in (a, d)}
            if all(found == expected for found in results.values()):
                break
            await asyncio.sleep(1)
        for url, found in results.items():
            wrong = {k: (v, expected[k]) for k, v in found.items() if v != expected[k]}
            assert not wrong, f"through {url}: {wrong}"
        # A partition that moved away named its previous owner its standby, which kept
        # its committed state as the copy instead of rebuilding one (the counts above
        # include what those copies took over and served): a, when b and c joined it;
        # others too, when d joins while b's death is still unnoticed.
        assert any("standby adopted the active state" in member.logs()
                   for member in (a, b, c))
        # Discovery and batch scores cover the whole cluster through any instance.
        for member in (a, d):
            def discovered(member: ServiceProcess = member) -> dict[str, Any] | None:
                page = httpx.get(f"{member.url}/accounts",
                                 params={"limit": 200, "sort": "-credibility"}, timeout=10)
                body: dict[str, Any] = page.json()
                return body if len(body["items"]) == ACCOUNTS and not body["partial"] \
                    else None
            deadline = time.monotonic() + 60
            body = discovered()
            while body is None and time.monotonic() < deadline:
                await asyncio.sleep(1)
                body = discovered()
            assert body is not None, f"discovery through {member.url} never covered all"
            credibility = [item["credibility"] for item in body["items"]]
            assert credibility == sorted(credibility, reverse=True)
            assert {item["counts"]["likes"] for item in body["items"]} <= set(
                expected.values())
            batch = httpx.post(f"{member.url}/accounts/scores", timeout=10, json={
                "account_ids": [*expected, "nobody-at-all"]}).json()
            assert {k: v["counts"]["likes"] for k, v in batch["scores"].items()} == expected
            assert batch["missing"] == ["nobody-at-all"]
            assert batch["partial"] is False
            # Small pages through the cluster's cursor list every account once; a cursor
            # naming an index generation its owner does not hold is refused, never
            # paged on in another order.
            listed: list[str] = []
            params: dict[str, Any] = {"limit": 7}
            while True:
                page = httpx.get(f"{member.url}/accounts", params=params, timeout=10).json()
                listed += [item["account_id"] for item in page["items"]]
                if page["next_cursor"] is None:
                    break
                params["cursor"] = page["next_cursor"]
            assert sorted(listed) == sorted(expected)
            token = params["cursor"]
            sort, value, account_id, pinned = orjson.loads(
                base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            forged = base64.urlsafe_b64encode(orjson.dumps(
                [sort, value, account_id, [[p, i + 1, g] for p, i, g in pinned]]
            )).rstrip(b"=").decode()
            refused = httpx.get(f"{member.url}/accounts", timeout=10,
                                params={"limit": 7, "cursor": forged})
            assert refused.status_code == 410
            assert refused.json()["title"] == "Cursor Expired"
            assert "built anew" in refused.json()["detail"]
    finally:
        reader.stopping.set()
        await producer.stop()
        for member in everyone:
            member.kill()
    reader.join(10)
    assert not reader.problems, reader.problems[:10]
    assert reader.statuses[200] > 100, reader.statuses
    logs = a.logs()
    assert "partition restored" in logs
    from_standby = sum(m.logs().count('"from_standby":true') for m in everyone)
    assert from_standby >= 1, "no partition was taken over from a standby copy"
