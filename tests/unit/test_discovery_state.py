"""The discovery indexes follow the partitions' engines: a partition is indexed in full
when it arrives, noted accounts are re-indexed once, a slice at a time, and a partition
that cannot answer is named."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from service.discovery_state import DiscoveryIndexes, follow_engines
from service.engine import Engine
from service.engine.discovery import DiscoveryQuery
from service.partition_state import Freshness
from tests.events import decoded, followers, post


class Held:
    """A partition as its owner holds it: an engine and how current it is."""

    def __init__(self, engine: Engine, partition: int) -> None:
        self.engine = engine
        self.partition = partition

    def freshness(self) -> Freshness:
        return Freshness(self.partition, 0, 0.5)


def engine_with(*accounts: str, partition: int = 0) -> Held:
    engine = Engine()
    for account in accounts:
        for event in (followers(account, 2_000, 0), post(account, "p1", 10)):
            engine.apply(decoded(event), partition)
    return Held(engine, partition)


def settle(indexes: DiscoveryIndexes) -> None:
    """Refreshes until nothing is left: builds done, noted accounts indexed."""
    for _ in range(1_000):
        if not indexes.refresh():
            return
    raise AssertionError("refresh did not settle")


def test_a_new_partition_is_indexed_in_full_before_it_answers() -> None:
    first, second = engine_with("a", "b", "c"), engine_with("d", partition=1)
    indexes = DiscoveryIndexes(fork_builds=False)
    indexes.follow({0: first, 1: second, 2: None})
    assert indexes.views() == {0: None, 1: None, 2: None}
    assert indexes.refresh(most=2) == 2
    indexes.follow({0: first, 1: second, 2: None})
    assert indexes.views() == {0: None, 1: None, 2: None}  # one account left to score
    for _ in range(100):  # then each partition's load, a step at a time
        if not indexes.refresh(most=2):
            break
    assert indexes.refresh(most=2) == 0
    indexes.follow({0: first, 1: second, 2: None})
    views = indexes.views()
    assert views[2] is None
    view = views[0]
    assert view is not None
    assert view.engine is first.engine
    assert view.freshness == Freshness(0, 0, 0.5)
    assert sorted(hit.account_id for hit in view.index.query(DiscoveryQuery()).hits) == [
        "a", "b", "c"]


def test_noted_accounts_are_reindexed_once_and_gone_ones_removed() -> None:
    engine = engine_with("a", "b")
    indexes = DiscoveryIndexes(fork_builds=False)
    indexes.follow({0: engine})
    settle(indexes)
    for event in (followers("e", 50_000, 20), post("e", "p1", 30)):
        engine.engine.apply(decoded(event), 0)
    indexes.note(0, {"e", "gone"})
    indexes.note(0, {"e"})
    indexes.note(7, {"not-followed"})  # a partition not owned: ignored
    assert indexes.refresh() == 2
    index = indexes.indexes[0]
    assert "e" in index
    assert "gone" not in index
    assert len(index) == 3


def test_a_partition_restored_anew_or_given_up_starts_over() -> None:
    indexes = DiscoveryIndexes(fork_builds=False)
    old = engine_with("a")
    indexes.follow({0: old})
    settle(indexes)
    indexes.follow({0: None})  # restoring: keeps its index, does not answer
    assert indexes.views() == {0: None}
    fresh = engine_with("b")
    indexes.follow({0: fresh})
    settle(indexes)
    indexes.follow({0: fresh})
    view = indexes.views()[0]
    assert view is not None
    assert [hit.account_id for hit in view.index.query(DiscoveryQuery()).hits] == ["b"]
    indexes.follow({})
    assert indexes.views() == {}
    assert indexes.indexes == {}


async def test_following_indexes_until_cancelled() -> None:
    engine = engine_with("acc")
    indexes = DiscoveryIndexes()  # the first build scored by a forked child
    follower = asyncio.create_task(follow_engines(indexes, lambda: {0: engine},
                                                  interval_s=0.01))
    try:
        for _ in range(300):
            await asyncio.sleep(0.01)
            if indexes.views().get(0) is not None:
                break
        view = indexes.views()[0]
        assert view is not None
        assert "acc" in view.index
    finally:
        follower.cancel()
    with pytest.raises(asyncio.CancelledError):
        await follower


def test_points_in_time_are_kept_for_so_long_then_let_go() -> None:
    held = engine_with("a", "b")
    indexes = DiscoveryIndexes(keep_s=10.0, max_versions=1_000, fork_builds=False)
    indexes.follow({0: held})
    settle(indexes)
    indexes.follow({0: held})
    index = indexes.indexes[0]
    index.query(DiscoveryQuery())  # a first page: its generation must stay readable
    read = index.generation
    indexes.expire(now=100.0)
    for event in (followers("a", 90_000, 20), post("a", "p2", 30)):
        held.engine.apply(decoded(event), 0)
    indexes.note(0, {"a"})
    settle(indexes)
    assert index.versions_kept == 1
    indexes.expire(now=105.0)
    # At 100 the generation was still the one read: a page read after 100 may hold it.
    indexes.expire(now=111.0)
    assert index.horizon <= read
    indexes.expire(now=116.0)  # the generation after it was current at 105, > 10 s ago
    assert index.horizon > read
    settle(indexes)  # pruned a slice at a time, as scoring is
    assert index.versions_kept == 0


def test_a_score_given_by_another_scorer_is_indexed_and_not_scored_again() -> None:
    held = engine_with("a", "b")
    indexes = DiscoveryIndexes(fork_builds=False)
    indexes.follow({0: held})
    settle(indexes)
    indexes.follow({0: held})
    for event in (followers("a", 90_000, 20), post("a", "p2", 30)):
        held.engine.apply(decoded(event), 0)
    indexes.note(0, {"a", "b"})
    score = held.engine.score("a")
    assert score is not None
    indexes.scored(0, "a", score)
    assert indexes.refresh() == 1  # only "b" was left to score
    indexes.scored(0, "b", None)
    index = indexes.indexes[0]
    assert "b" not in index
    assert [hit.value for hit in index.query(DiscoveryQuery()).hits] == [
        score.credibility.score]


def test_a_first_build_scored_by_a_forked_child_equals_one_scored_here() -> None:
    held = engine_with(*(f"acc-{number:03d}" for number in range(250)))
    forked, here = DiscoveryIndexes(), DiscoveryIndexes(fork_builds=False)
    for indexes in (forked, here):
        indexes.follow({0: held})
    settle(here)
    deadline = time.monotonic() + 30
    while forked.views()[0] is None:
        assert time.monotonic() < deadline, "the forked build never finished"
        if not forked.refresh(most=20):
            time.sleep(0.01)
        forked.follow({0: held})
    query = DiscoveryQuery(limit=200)
    assert forked.indexes[0].query(query).hits == here.indexes[0].query(query).hits
    assert len(forked.indexes[0]) == 250


def test_a_build_given_up_ends_its_child() -> None:
    held = engine_with(*(f"acc-{number:03d}" for number in range(50)))
    indexes = DiscoveryIndexes()
    indexes.follow({0: held})
    indexes.refresh()  # forks
    child = indexes._building[0].child
    assert child is not None
    indexes.follow({})
    with pytest.raises(ChildProcessError):
        os.waitpid(child.pid, os.WNOHANG)  # already reaped


def test_the_versions_kept_are_shared_between_the_indexes() -> None:
    first, second = engine_with("a", "b", "c"), engine_with("d", "e", "f", partition=1)
    indexes = DiscoveryIndexes(max_versions=4, fork_builds=False)
    indexes.follow({0: first, 1: second})
    settle(indexes)
    indexes.follow({0: first, 1: second})
    for partition, held in ((0, first), (1, second)):
        indexes.indexes[partition].query(DiscoveryQuery())  # a reader: versions kept
        for account in list(held.engine.accounts):
            for event in (followers(account, 70_000, 20), post(account, "p2", 30)):
                held.engine.apply(decoded(event), partition)
        indexes.note(partition, held.engine.accounts)
    settle(indexes)
    assert [index.versions_kept for index in indexes.indexes.values()] == [3, 3]
    indexes.expire(now=1.0)
    settle(indexes)
    assert [index.versions_kept for index in indexes.indexes.values()] == [2, 2]


def test_accounts_noted_during_a_build_are_indexed_after_its_load() -> None:
    held = engine_with("a", "b")
    indexes = DiscoveryIndexes(fork_builds=False)
    indexes.follow({0: held})
    for event in (followers("c", 9_000, 20), post("c", "p1", 30)):
        held.engine.apply(decoded(event), 0)
    indexes.note(0, {"c", "a"})  # while partition 0 is still being built
    settle(indexes)
    indexes.follow({0: held})
    view = indexes.views()[0]
    assert view is not None
    assert sorted(hit.account_id for hit in view.index.query(DiscoveryQuery()).hits) == [
        "a", "b", "c"]
