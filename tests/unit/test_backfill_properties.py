"""History in any account order: a crawler's backfill, event-time order and random
cross-account interleavings of the same events, re-sends anywhere, give identical scores
(property-tested with hypothesis)."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.engine import Engine, EngineConfig
from service.engine.persistence import export_accounts, export_partitions, import_state
from service.events import Event
from tests.events import decoded, followers, interaction, post

DAY = 86_400.0
KINDS = ("like", "like", "like", "comment", "share")
PARTITIONS = 2


@st.composite
def populations(draw: st.DrawFn) -> list[list[dict[str, Any]]]:
    """Accounts, each with its events in time order, all inside one 30-day window: an
    account's history starts anywhere in the first 25 days and spans up to 5."""
    accounts = []
    for index in range(draw(st.integers(1, 5))):
        account = f"acct-{index}"
        start = draw(st.floats(0, 25 * DAY, allow_nan=False))
        events = [followers(account, draw(st.integers(0, 60_000)), start)]
        actors = draw(st.integers(1, 12))
        for number in range(draw(st.integers(1, 4))):
            posted_at = start + 60 + number * draw(st.floats(0, DAY, allow_nan=False))
            post_id = f"{account}-p{number}"
            events.append(post(account, post_id, posted_at, sponsored=draw(st.booleans()),
                               topics=tuple(draw(st.lists(st.sampled_from("abc"),
                                                          max_size=2)))))
            for _ in range(draw(st.integers(0, 25))):
                events.append(interaction(
                    draw(st.sampled_from(KINDS)), account, post_id,
                    f"fan-{draw(st.integers(0, actors - 1))}",
                    posted_at + draw(st.floats(0, 6 * 3_600, allow_nan=False))))
        if draw(st.booleans()):  # a second follower count, later in the history
            events.append(followers(account, draw(st.integers(0, 60_000)),
                                    start + draw(st.floats(0, 5 * DAY, allow_nan=False))))
        events.sort(key=lambda event: event["occurred_at"])
        accounts.append(events)
    return accounts


_DECODED: dict[str, Event] = {}  # event ids are unique across the whole test run


def _decoded(stream: list[dict[str, Any]]) -> list[tuple[Event, int]]:
    pairs = []
    for event in stream:
        known = _DECODED.get(event["event_id"])
        if known is None:
            known = _DECODED[event["event_id"]] = decoded(event)
        pairs.append((known, partition_of(event)))
    return pairs


def partition_of(event: dict[str, Any]) -> int:
    return int(event["account_id"].rsplit("-", 1)[1]) % PARTITIONS


def with_resends(events: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    """A crawler re-crawls overlapping ranges: the same event ids again, anywhere."""
    resent = list(events)
    for event in rng.sample(events, k=min(len(events), rng.randrange(0, 30))):
        resent.insert(rng.randrange(len(resent) + 1), event)
    return resent


def scores(stream: list[dict[str, Any]], config: EngineConfig,
           expire_every: int = 0, restart_at: int = -1) -> dict[str, Any]:
    engine = Engine(config)
    for index, (event, partition) in enumerate(_decoded(stream)):
        if index == restart_at:  # a snapshot and a restore in the middle of the backfill
            engine = import_state(config, export_partitions(engine),
                                  list(export_accounts(engine)), engine.changes)
        engine.apply(event, partition)
        if expire_every and index % expire_every == 0:
            engine.expire()
    accounts = sorted({event["account_id"] for event in stream})
    return {account: engine.score(account) for account in accounts}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(populations(), st.randoms(use_true_random=False))
def test_crawler_order_time_order_and_any_interleaving_give_identical_scores(
    accounts: list[list[dict[str, Any]]], rng: random.Random
) -> None:
    config = EngineConfig()
    everything = [event for events in accounts for event in events]
    in_time = sorted(everything, key=lambda event: event["occurred_at"])
    crawl = list(accounts)
    rng.shuffle(crawl)
    by_crawler = [event for events in crawl for event in events]
    interleaved = list(everything)
    rng.shuffle(interleaved)

    expected = scores(in_time, config)
    assert all(score is not None for score in expected.values())
    assert scores(with_resends(by_crawler, rng), config) == expected
    assert scores(with_resends(interleaved, rng), config) == expected
    assert scores(with_resends(in_time, rng), config) == expected
    # Expiry between events, packed accounts (one hot account) and a restore from a
    # snapshot in the middle change nothing either.
    packed = EngineConfig(hot_accounts=1)
    restart = rng.randrange(len(by_crawler))
    assert scores(with_resends(by_crawler, rng), packed, expire_every=7,
                  restart_at=restart) == expected
