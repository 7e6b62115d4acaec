"""A crawler's backfill through the real broker and the real service: accounts sent one
after another, each with 20 days of history, behind a live stream, with re-crawls that
re-send events days later. Every count is exact, also across kill -9 in the middle."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from tests.events import followers, interaction, post
from tests.integration.conftest import ServiceProcess, produce, wait_for
from tests.integration.test_durability import ground_truth as durability_truth
from tests.integration.test_durability import matches

pytestmark = pytest.mark.integration
DAY = 86_400.0
NOW = 21 * DAY  # seconds after tests.events.T0: in the past, so nothing is in the future
KINDS = ("like", "like", "like", "comment", "share")


def account_history(account: str, rng: random.Random) -> list[dict[str, Any]]:
    """20 days of one account, in time order: a follower count, posts, interactions."""
    start = NOW - 20 * DAY + rng.uniform(0, 3_600)
    events = [followers(account, rng.randrange(500, 50_000), start)]
    for number in range(rng.randrange(3, 8)):
        posted_at = start + 60 + number * 2.5 * DAY
        post_id = f"{account}-p{number}"
        events.append(post(account, post_id, posted_at, sponsored=rng.random() < 0.2))
        for _ in range(rng.randrange(5, 60)):
            events.append(interaction(rng.choice(KINDS), account, post_id,
                                      f"fan-{rng.randrange(40)}",
                                      posted_at + rng.uniform(30, DAY)))
    events.sort(key=lambda event: event["occurred_at"])
    return events


def crawl(accounts: int, seed: int) -> list[dict[str, Any]]:
    """A live stream at NOW first (every partition's stream time is now), then the
    backfill account by account, the live stream going on in between, and re-crawls of
    earlier accounts' ranges (the same event ids again)."""
    rng = random.Random(seed)
    live_clock = iter(range(10**6))
    live = [followers(f"live-{n}", 100, NOW + next(live_clock)) for n in range(30)]
    events = list(live)
    crawled: list[dict[str, Any]] = []
    for index in range(accounts):
        history = account_history(f"crawled-{index}", rng)
        events += history
        crawled += history
        events += [interaction("like", f"live-{rng.randrange(30)}", "live-post",
                               f"fan-{rng.randrange(9)}", NOW + next(live_clock))
                   for _ in range(20)]
        start = rng.randrange(len(crawled))
        events += crawled[start : start + rng.randrange(10, 80)]  # a re-crawl
    return events


def ground_truth(events: list[dict[str, Any]]) -> dict[str, Counter[str]]:
    """The counts the service must show for the crawled accounts."""
    return {account: counts for account, counts in durability_truth(events).items()
            if account.startswith("crawled-")}


async def exact(service: ServiceProcess, truth: dict[str, Counter[str]]) -> None:
    async def check() -> bool:
        return not await asyncio.to_thread(matches, service.url, truth)

    try:
        await wait_for(check, timeout_s=90, interval_s=0.5)
    except AssertionError:
        pytest.fail("\n".join(matches(service.url, truth)[:10]))
    await asyncio.sleep(2)  # nothing may arrive twice later either
    assert matches(service.url, truth) == []


def late_events(url: str) -> float:
    lines = httpx.get(f"{url}/metrics", timeout=5).text.splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines
               if line.startswith("engagement_events_total{") and 'outcome="late"' in line)


async def test_a_crawlers_backfill_with_re_crawls_counts_exactly(
    started: ServiceProcess, producer: AIOKafkaProducer
) -> None:
    events = crawl(accounts=9, seed=13)
    truth = ground_truth(events)
    await produce(producer, started.topic, events)
    await exact(started, truth)
    assert late_events(started.url) == 0


async def test_kill_9_in_the_middle_of_a_backfill_keeps_every_count_exact(
    service: ServiceProcess, producer: AIOKafkaProducer
) -> None:
    events = crawl(accounts=12, seed=31)
    truth = ground_truth(events)
    service.extra_env["ENGAGEMENT_SNAPSHOT_INTERVAL_S"] = "0.3"
    rng = random.Random(3)
    chunks = 4
    size = len(events) // chunks + 1
    service.start()
    service.wait_ready()
    for number in range(chunks):
        await produce(producer, service.topic, events[number * size : (number + 1) * size])
        await asyncio.sleep(rng.uniform(0.3, 1.5))  # snapshots come and go meanwhile
        service.kill()
        service.start()
        service.wait_ready()
    await exact(service, truth)
    assert late_events(service.url) == 0
