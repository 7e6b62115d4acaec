"""The discovery indexes follow the engine: noted accounts are re-indexed once, a slice at
a time, into the index of their partition."""

from __future__ import annotations

import asyncio

import pytest

from service.discovery_state import DiscoveryIndexes, follow_engine
from service.engine import Engine
from service.engine.discovery import DiscoveryQuery
from tests.events import decoded, followers, post


def test_noted_accounts_are_indexed_per_partition_in_slices() -> None:
    engine = Engine()
    for number in range(5):
        for event in (followers(f"acc-{number}", 2_000 + number, 0),
                      post(f"acc-{number}", "p1", 10)):
            engine.apply(decoded(event), number % 2)
    indexes = DiscoveryIndexes()
    indexes.note([(number % 2, f"acc-{number}") for number in range(5)])
    indexes.note([(0, "acc-0")])  # noted twice, indexed once
    assert indexes.refresh(engine, most=3) == 3
    assert indexes.refresh(engine, most=3) == 2
    assert indexes.refresh(engine, most=3) == 0
    assert {partition: len(index) for partition, index in indexes.indexes.items()} == {
        0: 3, 1: 2}
    views = indexes.views(engine)
    assert all(view.engine is engine for view in views.values())
    found = views[1].index.query(DiscoveryQuery(tiers=frozenset({"micro"}))).hits
    assert sorted(hit.account_id for hit in found) == ["acc-1", "acc-3"]


def test_an_account_the_engine_no_longer_holds_leaves_the_index() -> None:
    engine = Engine()
    engine.apply(decoded(followers("acc", 2_000, 0)))
    indexes = DiscoveryIndexes()
    indexes.note([(0, "acc"), (0, "gone")])
    indexes.refresh(engine)
    assert "acc" in indexes.indexes[0]
    assert "gone" not in indexes.indexes[0]


async def test_following_the_engine_indexes_what_was_noted_until_cancelled() -> None:
    engine = Engine()
    engine.apply(decoded(followers("acc", 2_000, 0)))
    indexes = DiscoveryIndexes()
    follower = asyncio.create_task(follow_engine(indexes, lambda: engine, interval_s=0.01))
    try:
        indexes.note([(0, "acc")])
        for _ in range(200):
            await asyncio.sleep(0.01)
            if indexes.indexes and "acc" in indexes.indexes[0]:
                break
        assert "acc" in indexes.indexes[0]
    finally:
        follower.cancel()
    with pytest.raises(asyncio.CancelledError):
        await follower
