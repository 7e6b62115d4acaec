"""Crash safety: kill -9 at random moments loses nothing and counts nothing twice;
a damaged snapshot falls back to the previous one; SIGTERM ends with a final snapshot."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from tests.events import followers, interaction, post
from tests.integration.conftest import ServiceProcess, get_json, produce, wait_for

pytestmark = pytest.mark.integration
KINDS = ("like", "like", "like", "comment", "share")


def known_stream(accounts: int, seed: int) -> list[dict[str, Any]]:
    """A stream in time order with re-sent events mixed in."""
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    t = 0.0
    for index in range(accounts):
        events.append(followers(f"acct-{index}", rng.randrange(100, 50_000), t))
    for round_ in range(20):
        for index in range(accounts):
            t += 1
            account = f"acct-{index}"
            post_id = f"{account}-p{round_}"
            events.append(post(account, post_id, t, sponsored=rng.random() < 0.2))
            for _ in range(rng.randrange(0, 12)):
                t += 0.5
                events.append(interaction(rng.choice(KINDS), account, post_id,
                                          f"fan-{rng.randrange(60)}", t))
    resent = rng.sample(events, len(events) // 20)
    for event in resent:  # producer retries: the same event id again, a little later
        events.insert(min(len(events), events.index(event) + rng.randrange(1, 30)), event)
    return events


def ground_truth(events: list[dict[str, Any]]) -> dict[str, Counter[str]]:
    truth: dict[str, Counter[str]] = {}
    seen: set[str] = set()
    for event in events:
        if event["event_id"] in seen:
            continue
        seen.add(event["event_id"])
        counts = truth.setdefault(event["account_id"], Counter())
        kind = event["type"]
        if kind in ("like", "comment", "share"):
            counts[kind + "s"] += 1
        elif kind == "post":
            counts["posts"] += 1
    return truth


def matches(url: str, truth: dict[str, Counter[str]]) -> list[str]:
    wrong = []
    for account, expected in truth.items():
        status, body = get_json(f"{url}/accounts/{account}/score")
        counts = body.get("counts", {}) if status == 200 else {}
        if any(counts.get(key, 0) != expected[key]
               for key in ("posts", "likes", "comments", "shares")):
            wrong.append(f"{account}: {counts} != {dict(expected)}")
    return wrong


def kill_during_snapshot_write(service: ServiceProcess, timeout_s: float = 10.0) -> bool:
    """Waits for a snapshot's temporary file to appear and kills the service at once."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(path.suffix == ".tmp" for path in service.snapshot_dir.glob("partition-*/*")):
            service.kill()
            return True
        time.sleep(0.0005)
    service.kill()
    return False


async def test_kill_9_at_random_moments_loses_nothing_and_counts_nothing_twice(
    service: ServiceProcess, producer: AIOKafkaProducer
) -> None:
    events = known_stream(accounts=300, seed=42)
    truth = ground_truth(events)
    service.extra_env["ENGAGEMENT_SNAPSHOT_INTERVAL_S"] = "0.3"
    # Static membership: each restart takes the killed member's place at once, as a
    # restarted pod of the StatefulSet does.
    service.extra_env["ENGAGEMENT_GROUP_INSTANCE_ID"] = "durability-0"
    service.snapshot_dir.mkdir(parents=True)
    rng = random.Random(7)
    chunks = 12
    size = len(events) // chunks + 1
    kills_mid_write = 0
    service.start()
    service.wait_ready()
    for number in range(chunks):
        await produce(producer, service.topic, events[number * size:(number + 1) * size])
        if number % 3 == 2:
            kills_mid_write += await asyncio.to_thread(kill_during_snapshot_write, service)
        else:
            await asyncio.sleep(rng.uniform(0.0, 1.2))
            service.kill()
        service.start()
        service.wait_ready()
    assert kills_mid_write >= 1, "no kill landed during a snapshot write"

    async def exact() -> bool:
        return not await asyncio.to_thread(matches, service.url, truth)

    try:
        await wait_for(exact, timeout_s=90, interval_s=1)
    except AssertionError:
        pytest.fail("\n".join(matches(service.url, truth)[:10]))
    await asyncio.sleep(2)  # nothing may arrive twice later either
    assert matches(service.url, truth) == []
    replayed = httpx.get(f"{service.url}/metrics").text
    assert "engagement_restore_duration_seconds" in replayed


async def test_a_corrupted_newest_snapshot_falls_back_to_the_previous_one(
    service: ServiceProcess, producer: AIOKafkaProducer
) -> None:
    events = known_stream(accounts=30, seed=3)
    truth = ground_truth(events)
    service.extra_env["ENGAGEMENT_API_TOKEN"] = "t"
    service.start()
    service.wait_ready()
    half = len(events) // 2
    await produce(producer, service.topic, events[:half])
    await wait_for(lambda: not matches(service.url, ground_truth(events[:half])))
    httpx.post(f"{service.url}/admin/snapshot", headers={"Authorization": "Bearer t"},
               timeout=30).raise_for_status()
    await produce(producer, service.topic, events[half:])
    await wait_for(lambda: not matches(service.url, truth))
    assert service.terminate() == 0  # writes a final, newest snapshot of each partition
    for partition in service.snapshot_dir.glob("partition-*"):
        newest = sorted(partition.glob("snapshot-*.bin"))[-1]
        damaged = bytearray(newest.read_bytes())
        damaged[len(damaged) // 2] ^= 0xFF
        newest.write_bytes(bytes(damaged))

    service.start()
    service.wait_ready()
    await wait_for(lambda: not matches(service.url, truth))
    assert "skipping unusable snapshot" in service.logs()
    assert "checksum mismatch" in service.logs()


@pytest.mark.parametrize("fork", ["true", "false"], ids=["forked-writer", "in-process-copy"])
async def test_sigterm_writes_a_final_snapshot_and_exits_0(
    service: ServiceProcess, producer: AIOKafkaProducer, fork: str
) -> None:
    events = known_stream(accounts=20, seed=9)
    truth = ground_truth(events)
    service.extra_env["ENGAGEMENT_SNAPSHOT_INTERVAL_S"] = "3600"
    service.extra_env["ENGAGEMENT_SNAPSHOT_FORK"] = fork
    service.start()
    service.wait_ready()
    await produce(producer, service.topic, events)
    await wait_for(lambda: not matches(service.url, truth))
    started = time.monotonic()
    assert service.terminate(timeout_s=25) == 0
    assert time.monotonic() - started < 20
    assert "stopped cleanly after a final checkpoint and snapshot" in service.logs()
    assert list(Path(service.snapshot_dir).glob("partition-*/snapshot-*.bin"))

    service.start()
    service.wait_ready()
    assert matches(service.url, truth) == []
    # Each partition came back from its local snapshot; the changelog had nothing newer.
    metrics = httpx.get(f"{service.url}/metrics").text
    assert "engagement_restore_changelog_records_total 0.0" in metrics
    assert service.logs().count("partition snapshot loaded") >= 3
