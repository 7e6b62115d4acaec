"""The discovery indexes of the partitions this process owns, kept up to date with their
engines: the consumer notes which accounts each checkpoint carries (changed, expired or
evicted), and `refresh` re-scores and re-indexes them, each once, however many events it
had in between. A partition that arrives (assigned, or restored anew) is indexed in full,
in the background: its accounts are scored a slice at a time into a list, then the index
is loaded from it at once (`DiscoveryIndex.load`: each order sorted once); until then,
and while it restores, discovery names it as missing.

Re-scoring is what maintenance costs (bench/discovery.py), so it runs on a timer, in
slices, and takes at most MAINTENANCE_SHARE of the time: under heavy ingest the index
trails the engine further instead of slowing ingestion. Discovery answers render every
item from the engine, so a body is never older than the engine; only its place in the
order may be.

Paging reads a point in time (service/engine/discovery.py): an index keeps what older
generations read for KEEP_POINT_IN_TIME_S, and at most MAX_VERSIONS_KEPT replaced
versions, whichever is shorter; a cursor older than that is refused (410).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping

from service.discovery_api import PartitionSource, PartitionView
from service.engine.discovery import DiscoveryIndex, IndexEntry, entry_of, reindex
from service.engine.engine import AccountScore

REFRESH_INTERVAL_S = 1.0
REFRESH_SLICE_ACCOUNTS = 500  # ~30 ms of re-scoring
MAINTENANCE_SHARE = 0.1  # of the event loop's time, at most
KEEP_POINT_IN_TIME_S = 300.0  # how long a cursor pages through its first page's order
MAX_VERSIONS_KEPT = 50_000  # per index: ~10 MB (bench/discovery.py), whatever the churn


class _Build:
    """A partition's first full index: the accounts left to score, and those scored."""

    __slots__ = ("entries", "left", "loading")

    def __init__(self, account_ids: Iterable[str]) -> None:
        self.left = list(account_ids)
        self.entries: list[tuple[str, IndexEntry]] = []
        self.loading: Iterator[None] | None = None  # once every account is scored


class DiscoveryIndexes:
    def __init__(self, keep_s: float = KEEP_POINT_IN_TIME_S,
                 max_versions: int = MAX_VERSIONS_KEPT) -> None:
        self._held: dict[int, tuple[PartitionSource, DiscoveryIndex]] = {}
        self._changed: dict[int, set[str]] = {}
        self._building: dict[int, _Build] = {}  # partitions whose first build is not done
        self._answering: set[int] = set()  # partitions that answer queries now
        self._owned: set[int] = set()
        # Per partition, (time, generation) once a tick: which generation is how old.
        self._marks: dict[int, deque[tuple[float, int]]] = {}
        self.keep_s = keep_s
        self.max_versions = max_versions

    @property
    def indexes(self) -> dict[int, DiscoveryIndex]:
        return {partition: index for partition, (_, index) in self._held.items()}

    def follow(self, sources: Mapping[int, PartitionSource | None]) -> None:
        """The partitions owned now, or None for one that is restoring. A partition seen
        for the first time, or with a new engine (restored again), is indexed anew from
        all its accounts; one no longer owned is forgotten."""
        for partition in list(self._held):
            source = sources.get(partition)
            if partition not in sources or (
                    source is not None
                    and source.engine is not self._held[partition][0].engine):
                del self._held[partition]
                self._changed.pop(partition, None)
                self._building.pop(partition, None)
                self._marks.pop(partition, None)
        self._answering = set()
        self._owned = set(sources)
        for partition, source in sources.items():
            if source is None:
                continue
            if partition not in self._held:
                # A new incarnation: a cursor made by an earlier index of this partition
                # (here or on another instance) cannot read this one's generations.
                index = DiscoveryIndex(partition, incarnation=random.getrandbits(31))
                self._held[partition] = (source, index)
                self._building[partition] = _Build(source.engine.accounts)
                self._changed.pop(partition, None)
            if partition not in self._building:
                self._answering.add(partition)

    def note(self, partition: int, changed: Iterable[str]) -> None:
        """Accounts of `partition` whose state changed, expired or was evicted."""
        if partition not in self._held:
            return  # indexed in full when it is first followed
        pending = self._changed.get(partition)
        if pending is None:
            pending = self._changed[partition] = set()
        pending.update(changed)

    def scored(self, partition: int, account_id: str, score: AccountScore | None) -> None:
        """An account of `partition` scored now (None: it left the window), by whoever
        scored it anyway (the score-change gate at a checkpoint): indexed from that
        score, and not scored again by `refresh` for what was noted before."""
        held = self._held.get(partition)
        if held is None or partition in self._building:
            self.note(partition, (account_id,))
            return
        source, index = held
        if score is None:
            index.remove(account_id)
        else:
            index.put(account_id, entry_of(source.engine, score))
        pending = self._changed.get(partition)
        if pending is not None:
            pending.discard(account_id)

    def refresh(self, most: int = REFRESH_SLICE_ACCOUNTS) -> int:
        """Prunes versions no cursor may read any more, then scores accounts, for a
        partition's first build or noted since they were last indexed: up to `most` of
        both; returns how many. A slice at a time: re-scoring costs
        tens of microseconds an account, too long to do thousands without letting
        queries in between."""
        done = 0
        for _, index in self._held.values():
            done += index.prune(most - done)
            if done >= most:
                return done
        for partition, build in list(self._building.items()):
            source, index = self._held[partition]
            if build.loading is not None:
                # A step of the load: as long as scoring a slice, or less.
                if next(build.loading, StopIteration) is StopIteration:
                    del self._building[partition]
                return done + most
            engine = source.engine
            take = build.left[-(most - done):]
            del build.left[-(most - done):]
            for account_id in take:
                score = engine.score(account_id)
                if score is not None:
                    build.entries.append((account_id, entry_of(engine, score)))
            done += len(take)
            if not build.left:
                build.loading = index.loading(build.entries)
                build.entries = []
            if done >= most:
                return done
        for partition, accounts in list(self._changed.items()):
            source, index = self._held[partition]
            take = [accounts.pop() for _ in range(min(most - done, len(accounts)))]
            reindex(index, source.engine, take)
            done += len(take)
            if not accounts:
                del self._changed[partition]
            if done >= most:
                break
        return done

    def expire(self, now: float) -> None:
        """Lets each index forget what only generations older than `keep_s` (or beyond
        `max_versions` replaced versions) read. Called once a tick."""
        for partition, (_, index) in self._held.items():
            marks = self._marks.get(partition)
            if marks is None:
                marks = self._marks[partition] = deque()
            marks.append((now, index.generation))
            horizon = None
            while marks and marks[0][0] <= now - self.keep_s:
                horizon = marks.popleft()[1]
            if horizon is not None:
                # A query read a generation below `horizon` before that mark was taken.
                index.expire_before(horizon)
            index.keep_at_most(self.max_versions)

    def views(self) -> dict[int, PartitionView | None]:
        """Every partition owned: its engine and index, or None when it cannot answer
        (restoring, or its index not built yet)."""
        views: dict[int, PartitionView | None] = {}
        for partition in self._owned:
            if partition in self._answering:
                source, index = self._held[partition]
                views[partition] = PartitionView(source.engine, index, source.freshness())
            else:
                views[partition] = None
        return views


async def follow_engines(indexes: DiscoveryIndexes,
                         sources_of: Callable[[], Mapping[int, PartitionSource | None]],
                         interval_s: float = REFRESH_INTERVAL_S) -> None:
    """Keeps `indexes` up to date with the partitions' engines until cancelled."""
    rest_per_busy_s = 1.0 / MAINTENANCE_SHARE - 1.0
    while True:
        await asyncio.sleep(interval_s)
        indexes.follow(sources_of())
        indexes.expire(time.monotonic())
        while True:
            started = time.perf_counter()
            if not indexes.refresh():
                break
            # Queries and ingestion go on between slices, for 9x as long as a slice took.
            await asyncio.sleep((time.perf_counter() - started) * rest_per_busy_s)
            indexes.follow(sources_of())
