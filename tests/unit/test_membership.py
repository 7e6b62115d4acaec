"""Ownership without a broker: the sticky assignment, the map every member learns from the
group's assignment, the partition of an account, and the consumer's supervisor."""

from __future__ import annotations

import asyncio
from typing import Any
from unittest.mock import patch

import orjson
from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from service.kafka_clients import FatalConfigError
from service.membership import (
    ClusterMap,
    MembershipAssignor,
    standby_assignment,
    sticky_assignment,
)
from service.metrics import Metrics
from service.routing import partition_for
from service.settings import Settings
from service.supervisor import ConsumerSupervisor


@given(partitions=st.integers(1, 24), members=st.integers(1, 8), seed=st.integers(0, 999))
def test_assignment_is_balanced_complete_and_keeps_what_members_hold(
    partitions: int, members: int, seed: int
) -> None:
    import random

    rng = random.Random(seed)
    share = partitions // members
    pool = list(range(partitions))
    rng.shuffle(pool)
    # Disjoint holdings, none above the smallest share: all of them must be kept.
    held = {f"m{n}": sorted(pool[n * share: n * share + rng.randint(0, share)])
            for n in range(members)}
    assigned = sticky_assignment(list(range(partitions)), held)
    every = sorted(p for ps in assigned.values() for p in ps)
    assert every == list(range(partitions))  # each partition exactly once
    sizes = [len(ps) for ps in assigned.values()]
    assert max(sizes) - min(sizes) <= 1
    for member, kept in held.items():
        assert set(kept) <= set(assigned[member])


def test_a_member_that_leaves_moves_only_its_own_partitions() -> None:
    before = sticky_assignment(list(range(6)), {"a": [], "b": [], "c": []})
    after = sticky_assignment(list(range(6)), {"a": before["a"], "c": before["c"]})
    assert set(before["a"]) <= set(after["a"])
    assert set(before["c"]) <= set(after["c"])


@given(partitions=st.integers(1, 24), members=st.integers(1, 6), replicas=st.integers(0, 3),
       seed=st.integers(0, 999))
def test_standbys_are_never_on_the_owner_and_stay_where_they_are_warm(
    partitions: int, members: int, replicas: int, seed: int
) -> None:
    import random

    rng = random.Random(seed)
    names = [f"m{n}" for n in range(members)]
    active = sticky_assignment(list(range(partitions)), {m: [] for m in names})
    warm = {m: rng.sample(range(partitions), rng.randint(0, partitions)) for m in names}
    replicas = min(replicas, members - 1)
    standby = standby_assignment(active, warm, replicas)
    owner = {p: m for m, ps in active.items() for p in ps}
    for partition in range(partitions):
        keepers = [m for m, ps in standby.items() if partition in ps]
        assert len(keepers) == replicas
        assert owner[partition] not in keepers
        warm_here = [m for m in names if partition in warm[m] and m != owner[partition]]
        if len(warm_here) <= replicas:  # every warm copy is kept
            assert set(warm_here) <= set(keepers)


def test_an_orphaned_partition_goes_to_the_member_that_keeps_it_warm() -> None:
    # "a" died holding 0 and 1; "c" keeps 0 warm, "b" keeps 1 warm.
    assigned = sticky_assignment([0, 1, 2, 3], {"b": [2], "c": [3]},
                                 warm={"b": [1], "c": [0]})
    assert assigned == {"b": [2, 1], "c": [3, 0]}


def test_an_orphan_whose_warm_member_is_full_is_swapped_so_that_both_land_warm() -> None:
    # "c" died holding 4 and 5. "a" keeps 4 and 5 warm, "b" keeps 0 warm: "a" has room
    # for one of them only. The other would land cold on "b", so "a" hands 0 (which "b"
    # keeps warm) to "b" and takes 5 itself.
    assigned = sticky_assignment(list(range(6)), {"a": [0, 1], "b": [2, 3]},
                                 warm={"a": [4, 5], "b": [0]})
    assert sorted(assigned["a"]) == [1, 4, 5]
    assert sorted(assigned["b"]) == [0, 2, 3]


@given(partitions=st.integers(1, 24), members=st.integers(1, 6), seed=st.integers(0, 999))
def test_swaps_keep_the_assignment_balanced_and_never_place_more_partitions_cold(
    partitions: int, members: int, seed: int
) -> None:
    import random

    rng = random.Random(seed)
    names = [f"m{n}" for n in range(members)]
    pool = list(range(partitions))
    rng.shuffle(pool)
    held = {m: sorted(pool[n::members + 1]) for n, m in enumerate(names)}  # one died
    warm = {m: rng.sample(range(partitions), rng.randint(0, partitions)) for m in names}
    with_swaps = sticky_assignment(list(range(partitions)), held, warm)
    with patch("service.membership._swap_towards_warm"):
        greedy = sticky_assignment(list(range(partitions)), held, warm)

    def cold(assigned: dict[str, list[int]], warm_too: bool) -> int:
        return sum(1 for m, ps in assigned.items() for p in ps
                   if p not in held[m] and (not warm_too or p not in warm[m]))

    every = sorted(p for ps in with_swaps.values() for p in ps)
    assert every == list(range(partitions))
    sizes = [len(ps) for ps in with_swaps.values()]
    assert max(sizes) - min(sizes) <= 1
    assert cold(with_swaps, warm_too=True) <= cold(greedy, warm_too=True)


class _Cluster:
    def __init__(self, partitions: int) -> None:
        self.partitions = partitions

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(self.partitions))


def test_every_member_learns_the_owner_of_every_partition() -> None:
    learned: list[ClusterMap] = []
    assignors = {url: MembershipAssignor(url, list, learned.append)
                 for url in ("http://a:8080", "http://b:8080")}
    members = {f"id-{n}": assignor.metadata(["events"])
               for n, assignor in enumerate(assignors.values())}
    decoded = {member: ConsumerProtocolMemberMetadata(meta.version, meta.subscription,
                                                      meta.user_data)
               for member, meta in members.items()}
    leader = assignors["http://a:8080"]
    assignments = leader.assign(_Cluster(6), decoded)
    for n, assignor in enumerate(assignors.values()):
        assignor.on_assignment(assignments[f"id-{n}"])
    first, second = learned
    assert first.owners == second.owners
    assert sorted(first.owners) == list(range(6))
    assert set(first.owners.values()) == set(assignors)
    for n, url in enumerate(assignors):
        own = {tp.partition for tp in assignments[f"id-{n}"].partitions()}
        assert own == {p for p, owner in first.owners.items() if owner == url}
    assert orjson.loads(members["id-0"].user_data)["url"] == "http://a:8080"


def test_with_a_standby_replica_each_member_learns_what_to_keep_warm() -> None:
    learned: dict[str, ClusterMap] = {}
    assignors = {url: MembershipAssignor(url, list, lambda c, url=url: learned.__setitem__(
        url, c), standby_replicas=1) for url in ("http://a:8080", "http://b:8080")}
    members = {f"id-{n}": assignor.metadata(["events"])
               for n, assignor in enumerate(assignors.values())}
    assignments = assignors["http://a:8080"].assign(_Cluster(4), members)
    for n, assignor in enumerate(assignors.values()):
        assignor.on_assignment(assignments[f"id-{n}"])
    a, b = learned["http://a:8080"], learned["http://b:8080"]
    assert a.standby_here == {p for p, url in a.owners.items() if url == "http://b:8080"}
    assert b.standby_here == {p for p, url in a.owners.items() if url == "http://a:8080"}
    assert a.standbys == b.standbys
    assert all(a.owners[p] not in urls for p, urls in a.standbys.items())


def test_a_member_that_loses_partitions_is_named_their_standby_first() -> None:
    """"a" held all six partitions; "b" and "c" join, with copies of nothing. Each
    partition that leaves "a" names "a" its standby: it holds the newest state of them
    and hands it over, where a member without a copy would rebuild one."""
    learned: dict[str, ClusterMap] = {}
    urls = ("http://a:8080", "http://b:8080", "http://c:8080")
    holdings = {"http://a:8080": list(range(6))}
    assignors = {url: MembershipAssignor(
        url, lambda url=url: holdings.get(url, []),
        lambda c, url=url: learned.__setitem__(url, c), standby_replicas=1) for url in urls}
    members = {f"id-{n}": assignor.metadata(["events"])
               for n, assignor in enumerate(assignors.values())}
    assignments = assignors["http://b:8080"].assign(_Cluster(6), members)
    for n, assignor in enumerate(assignors.values()):
        assignor.on_assignment(assignments[f"id-{n}"])
    owners = learned["http://a:8080"].owners
    moved = {p for p, url in owners.items() if url != "http://a:8080"}
    assert len(moved) == 4
    assert learned["http://a:8080"].standby_here == moved


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.:@", min_size=1,
               max_size=40), st.integers(1, 64))
def test_the_partition_of_an_account_is_the_producers(account_id: str, partitions: int
                                                      ) -> None:
    expected = DefaultPartitioner()(account_id.encode(), list(range(partitions)), [])
    assert partition_for(account_id, partitions) == expected


class _FailingProcessor:
    """Stands for the processor: fails each run, as a consumer that cannot go on."""

    def __init__(self, error: Exception, joined: bool) -> None:
        self.error = error
        self.last_joined_at: float | None = 1.0 if joined else None
        self.runs = 0

    async def run(self) -> None:
        self.runs += 1
        raise self.error

    def stop(self) -> None:
        pass


async def test_a_failing_consumer_is_restarted_then_reported_unhealthy() -> None:
    settings = Settings(connect_retry_initial_s=0.01, connect_retry_max_s=0.02,
                        consumer_unhealthy_after_s=0.3)
    processor = _FailingProcessor(RuntimeError("boom"), joined=True)
    fatal: list[str] = []
    supervisor = ConsumerSupervisor(processor, settings, Metrics(), fatal.append)  # type: ignore[arg-type]
    supervisor.start()
    await asyncio.sleep(0.1)
    assert processor.runs >= 2  # restarted with back-off
    assert supervisor.health().healthy
    await asyncio.sleep(0.4)
    health = supervisor.health()
    assert not health.healthy
    assert health.reason == "RuntimeError: boom"
    assert not fatal
    supervisor.stop()


async def test_a_bad_setting_before_the_first_assignment_ends_the_process() -> None:
    settings = Settings(connect_retry_initial_s=0.01)
    processor = _FailingProcessor(FatalConfigError("topic missing"), joined=False)
    fatal: list[Any] = []
    supervisor = ConsumerSupervisor(processor, settings, Metrics(), fatal.append)  # type: ignore[arg-type]
    await supervisor.start()
    assert fatal == ["topic missing"]
    assert processor.runs == 1
    assert not supervisor.health().healthy
