"""The discovery indexes of the partitions this process owns, kept up to date with their
engines: the consumer notes which accounts each checkpoint carries (changed, expired or
evicted), and `refresh` re-scores and re-indexes them, each once, however many events it
had in between. A partition that arrives (assigned, or restored anew) is indexed in full,
in the background; until then, and while it restores, discovery names it as missing.

Re-scoring is what maintenance costs (bench/discovery.py), so it runs on a timer, in
slices, and takes at most MAINTENANCE_SHARE of the time: under heavy ingest the index
trails the engine further instead of slowing ingestion. Discovery answers render every
item from the engine, so a body is never older than the engine; only its place in the
order may be.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping

from service.discovery_api import PartitionSource, PartitionView
from service.engine.discovery import DiscoveryIndex, reindex

REFRESH_INTERVAL_S = 1.0
REFRESH_SLICE_ACCOUNTS = 500  # ~30 ms of re-scoring
MAINTENANCE_SHARE = 0.1  # of the event loop's time, at most


class DiscoveryIndexes:
    def __init__(self) -> None:
        self._held: dict[int, tuple[PartitionSource, DiscoveryIndex]] = {}
        self._changed: dict[int, set[str]] = {}
        self._building: set[int] = set()  # partitions whose first full build is not done
        self._answering: set[int] = set()  # partitions that answer queries now
        self._owned: set[int] = set()

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
                self._building.discard(partition)
        self._answering = set()
        self._owned = set(sources)
        for partition, source in sources.items():
            if source is None:
                continue
            if partition not in self._held:
                self._held[partition] = (source, DiscoveryIndex(partition))
                self._changed[partition] = set(source.engine.accounts)
                self._building.add(partition)
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

    def refresh(self, most: int = REFRESH_SLICE_ACCOUNTS) -> int:
        """Re-indexes up to `most` of the accounts noted since they were last indexed;
        returns how many. A slice at a time: re-scoring costs tens of microseconds an
        account, too long to do thousands without letting queries in between."""
        done = 0
        for partition, accounts in list(self._changed.items()):
            source, index = self._held[partition]
            take = [accounts.pop() for _ in range(min(most - done, len(accounts)))]
            reindex(index, source.engine, take)
            done += len(take)
            if not accounts:
                del self._changed[partition]
                self._building.discard(partition)
            if done >= most:
                break
        return done

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
        while True:
            started = time.perf_counter()
            if not indexes.refresh():
                break
            # Queries and ingestion go on between slices, for 9x as long as a slice took.
            await asyncio.sleep((time.perf_counter() - started) * rest_per_busy_s)
            indexes.follow(sources_of())
