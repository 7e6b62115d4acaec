"""The article's three principles, end to end through the real broker.

The micro accounts below have equal raw numbers (followers, posts, interactions per
post); they differ only in who interacts, when, how deeply, and what they post.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest
from aiokafka import AIOKafkaProducer

from service.simulation import (
    AUTHENTIC_MICRO,
    LIKES_ONLY,
    MEGA_LOW,
    PAID_FEED,
    POD_PUMPED,
    SCATTERED,
    account_events,
)
from tests.events import T0
from tests.integration.conftest import ServiceProcess, get_json, produce, wait_for

pytestmark = pytest.mark.integration
ACCOUNTS = {"authentic": AUTHENTIC_MICRO, "pod": POD_PUMPED, "paid": PAID_FEED,
            "scattered": SCATTERED, "likes-only": LIKES_ONLY, "mega": MEGA_LOW}


async def test_authentic_loyal_niche_micro_account_outranks_the_rest(
    started: ServiceProcess, producer: AIOKafkaProducer
) -> None:
    rng = random.Random(11)
    events = []
    for name, profile in ACCOUNTS.items():
        events += account_events(name, profile, T0.timestamp(), 86_400, rng)
    events.sort(key=lambda event: event["occurred_at"])  # a replay of history, in order
    await produce(producer, started.topic, events)
    expected = Counter(event["account_id"] for event in events
                       if event["type"] in ("like", "comment", "share"))

    def all_in() -> dict[str, dict[str, object]] | None:
        bodies = {}
        for name in ACCOUNTS:
            status, body = get_json(f"{started.url}/accounts/{name}/score")
            counts = body.get("counts", {}) if status == 200 else {}
            if sum(counts.get(kind, 0) for kind in ("likes", "comments", "shares")) \
                    != expected[name]:
                return None
            bodies[name] = body
        return bodies

    scores = await wait_for(all_in, timeout_s=90)
    credibility = {name: float(body["credibility"]) for name, body in scores.items()}
    for rival in ("pod", "paid", "scattered", "likes-only", "mega"):
        assert credibility["authentic"] > credibility[rival], credibility
    assert scores["authentic"]["tier"] == "micro"
    assert scores["mega"]["tier"] == "mega"
    assert scores["authentic"]["followers"] == scores["pod"]["followers"]
