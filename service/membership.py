"""Who owns which partition: the consumer group's assignment, shared with every member.

Kafka's group protocol already elects a leader that assigns partitions; the assignor
below rides on it, as Faust's `PartitionAssignor` does on aiokafka. Each member puts its
advertised URL and the partitions it holds into its join metadata; the leader assigns
partitions stickily (a member keeps what it holds, up to its fair share, so a rebalance
moves as little state as it can) and writes the whole map, partition -> owner URL, into
every member's assignment. So every instance learns every owner at each rebalance,
with no coordination service but Kafka.

With `ENGAGEMENT_STANDBY_REPLICAS` = n, the leader also names n other members per
partition to keep a standby copy (Kafka Streams' `num.standby.replicas`): they tail its
changelog, so that when the owner dies, one of them takes over warm. A partition without
an owner goes first to a member that holds its standby. A partition that moves away from
a member (to balance, or in a warm swap) names that member its standby first: it hands
its committed state over to its standby set (service/consumer.py) instead of dropping it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)

log = logging.getLogger(__name__)
PROTOCOL_VERSION = 0


@dataclass(frozen=True, slots=True)
class ClusterMap:
    """One generation of the group: each partition's owner and every member's URL."""

    generation: int = 0
    owners: dict[int, str] = field(default_factory=dict)  # partition -> owner URL
    members: tuple[str, ...] = ()
    standbys: dict[int, tuple[str, ...]] = field(default_factory=dict)  # partition -> URLs
    standby_here: frozenset[int] = frozenset()  # the partitions this member keeps warm

    def owner_of(self, partition: int) -> str | None:
        return self.owners.get(partition)


def sticky_assignment(partitions: list[int], held: Mapping[str, Iterable[int]],
                      warm: Mapping[str, Iterable[int]] | None = None
                      ) -> dict[str, list[int]]:
    """Balanced (shares differ by at most one) and sticky: a member keeps the partitions
    it holds up to its share; a partition left over goes to a member with room that keeps
    it warm (a standby), if any, then to whoever has room, in a stable order; last,
    partitions that landed cold are swapped towards members that keep them warm."""
    members = sorted(held)
    if not members:
        return {}
    base, extra = divmod(len(partitions), len(members))
    # The larger shares go to the members that hold the most already: fewer moves.
    by_holdings = sorted(members, key=lambda m: (-len(list(held[m])), m))
    share = {member: base + (1 if rank < extra else 0)
             for rank, member in enumerate(by_holdings)}
    assigned: dict[str, list[int]] = {member: [] for member in members}
    taken: set[int] = set()
    valid = set(partitions)
    for member in members:
        for partition in sorted(set(held[member])):
            if partition in valid and partition not in taken \
                    and len(assigned[member]) < share[member]:
                assigned[member].append(partition)
                taken.add(partition)
    for member in members:
        for partition in sorted(set((warm or {}).get(member, ()))):
            if partition in valid and partition not in taken \
                    and len(assigned[member]) < share[member]:
                assigned[member].append(partition)
                taken.add(partition)
    free = iter(p for p in sorted(partitions) if p not in taken)
    for member in members:
        while len(assigned[member]) < share[member]:
            assigned[member].append(next(free))
    if warm:
        _swap_towards_warm(assigned, held, warm)
    return assigned


def _swap_towards_warm(assigned: dict[str, list[int]], held: Mapping[str, Iterable[int]],
                       warm: Mapping[str, Iterable[int]]) -> None:
    """A partition placed cold (its member neither holds it nor keeps it warm) while a
    member that keeps it warm had no room: swap it for one of that member's partitions
    that the first keeps warm, so both land warm and the shares stay as they are. (Kafka
    Streams gets there later, with warm-up replicas and probing rebalances; here the
    standbys already are the warm copies.) A partition the warm member holds is given
    up only if nothing it merely received will do: a warm takeover is milliseconds, a
    cold restore seconds per hundred thousand accounts."""
    holds = {member: set(held.get(member, ())) for member in assigned}
    keeps = {member: holds[member] | set(warm.get(member, ())) for member in assigned}
    for member in sorted(assigned):
        for partition in list(assigned[member]):
            if partition in keeps[member]:
                continue
            for other in sorted(assigned):
                if other == member or partition not in keeps[other]:
                    continue
                trades = sorted((q for q in assigned[other] if q in keeps[member]),
                                key=lambda q: (q in holds[other], q))
                if trades:
                    trade = trades[0]
                    assigned[member][assigned[member].index(partition)] = trade
                    assigned[other][assigned[other].index(trade)] = partition
                    break


def standby_assignment(active: Mapping[str, Iterable[int]],
                       warm: Mapping[str, Iterable[int]], replicas: int
                       ) -> dict[str, list[int]]:
    """`replicas` standbys per partition, never on its owner: members that already keep
    it warm first (a standby copy, or the state of its previous owner: no copy to
    rebuild), then the members with the fewest standbys."""
    members = sorted(active)
    owner = {p: member for member, ps in active.items() for p in ps}
    standby: dict[str, list[int]] = {member: [] for member in members}
    for partition in sorted(owner):
        candidates = [m for m in members if m != owner[partition]]
        candidates.sort(key=lambda m: (partition not in set(warm.get(m, ())),
                                       len(standby[m]), m))
        for member in candidates[:replicas]:
            standby[member].append(partition)
    return standby


class MembershipAssignor(AbstractPartitionAssignor):  # type: ignore[misc]
    """The group's assignor; one instance per consumer, holding this member's view."""

    name = "engagement-sticky"
    version = PROTOCOL_VERSION

    def __init__(self, own_url: str, held: Callable[[], Iterable[int]],
                 on_change: Callable[[ClusterMap], None],
                 warm: Callable[[], Iterable[int]] = tuple, standby_replicas: int = 0
                 ) -> None:
        self.own_url = own_url
        self._held = held
        self._warm = warm
        self._on_change = on_change
        self.standby_replicas = standby_replicas
        self.cluster = ClusterMap()

    def metadata(self, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
        user_data = orjson.dumps({"url": self.own_url, "held": sorted(self._held()),
                                  "warm": sorted(self._warm()),
                                  "standby_replicas": self.standby_replicas})
        return ConsumerProtocolMemberMetadata(self.version, sorted(topics), user_data)

    def assign(self, cluster: Any, members: Mapping[str, ConsumerProtocolMemberMetadata]
               ) -> dict[str, ConsumerProtocolMemberAssignment]:
        topics = sorted({topic for meta in members.values() for topic in meta.subscription})
        urls: dict[str, str] = {}
        held: dict[str, list[int]] = {}
        warm: dict[str, list[int]] = {}
        replicas = 0  # the most any member asks for: a rolling change of it takes effect
        for member_id, meta in members.items():
            data = _member_data(meta.user_data)
            urls[member_id] = str(data.get("url", ""))
            held[member_id] = [int(p) for p in data.get("held", [])]
            warm[member_id] = [int(p) for p in data.get("warm", [])]
            replicas = max(replicas, int(data.get("standby_replicas", 0)))
        replicas = min(replicas, len(members) - 1)
        per_topic: dict[str, dict[str, list[int]]] = {}
        for topic in topics:
            partitions = sorted(cluster.partitions_for_topic(topic) or [])
            per_topic[topic] = sticky_assignment(partitions, held, warm)
        # The inputs are co-partitioned, so one topic's assignment is every topic's.
        active = per_topic[topics[0]] if topics else {}
        # A member that held a partition it loses keeps the most current copy of all:
        # as its standby, it hands its state over instead of rebuilding one.
        keeps = {member: held[member] + warm[member] for member in members}
        standby = standby_assignment(active, keeps, replicas)
        owners = {partition: urls[member]
                  for assigned in per_topic.values()
                  for member, partitions in assigned.items() for partition in partitions}
        standbys: dict[int, list[str]] = {}
        for member, partitions in standby.items():
            for partition in partitions:
                standbys.setdefault(partition, []).append(urls[member])
        shared = {"owners": {str(p): url for p, url in owners.items()},
                  "members": sorted(set(urls.values())),
                  "standbys": {str(p): sorted(u) for p, u in standbys.items()}}
        return {
            member_id: ConsumerProtocolMemberAssignment(
                self.version,
                [(topic, sorted(per_topic[topic].get(member_id, []))) for topic in topics],
                orjson.dumps({**shared, "standby": standby.get(member_id, [])}),
            )
            for member_id in members
        }

    def on_assignment(self, assignment: ConsumerProtocolMemberAssignment) -> None:
        data = _member_data(assignment.user_data)
        owners = {int(p): str(url) for p, url in data.get("owners", {}).items()}
        standbys = {int(p): tuple(str(u) for u in urls)
                    for p, urls in data.get("standbys", {}).items()}
        self.cluster = ClusterMap(self.cluster.generation + 1, owners,
                                  tuple(data.get("members", ())), standbys,
                                  frozenset(int(p) for p in data.get("standby", ())))
        log.info("group membership", extra={
            "generation": self.cluster.generation, "members": list(self.cluster.members),
            "owners": {str(p): u for p, u in owners.items()},
            "standby_here": sorted(self.cluster.standby_here)})
        self._on_change(self.cluster)

    def forget(self) -> None:
        """This member left the group (or lost it): it knows no owner any more."""
        self.cluster = ClusterMap(self.cluster.generation + 1)
        self._on_change(self.cluster)


def _member_data(raw: bytes | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        log.warning("unreadable member data in the group; ignored")
        return {}
    return data if isinstance(data, dict) else {}
