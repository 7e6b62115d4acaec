"""The discovery indexes of the partitions this process owns, kept up to date with their
engines: the consumer notes which accounts each checkpoint carries (changed, expired or
evicted), and `refresh` re-scores and re-indexes them, each once, however many events it
had in between. A partition that arrives (assigned, or restored anew) is indexed in full,
in the background: its accounts are scored by a forked child (service/discovery_build.py;
a slice at a time in process where fork is not available), then the index is loaded
from the entries in steps of bounded size (`DiscoveryIndex.loading`); until
then, and while it restores, discovery names it as missing.

Re-scoring is what maintenance costs (bench/discovery.py), so it runs on a timer, in
slices, and takes at most MAINTENANCE_SHARE of the time: under heavy ingest the index
trails the engine further instead of slowing ingestion. Discovery answers render every
item from the engine, so a body is never older than the engine; only its place in the
order may be.

Paging reads a point in time (service/engine/discovery.py): an index keeps what older
generations read for KEEP_POINT_IN_TIME_S, and the process at most MAX_VERSIONS_KEPT
replaced versions (split evenly between its indexes), whichever is shorter; a cursor
older than that is refused (410).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping

from service import discovery_build
from service.discovery_api import PartitionSource, PartitionView
from service.discovery_build import ScoringChild
from service.engine.discovery import DiscoveryIndex, IndexEntry, entry_of, reindex
from service.engine.engine import AccountScore

log = logging.getLogger(__name__)
REFRESH_INTERVAL_S = 1.0
REFRESH_SLICE_ACCOUNTS = 500  # ~30 ms of re-scoring
MAINTENANCE_SHARE = 0.1  # of the event loop's time, at most
KEEP_POINT_IN_TIME_S = 300.0  # how long a cursor pages through its first page's order
# Per process, shared by its indexes: ~85 MB at ~1.7 KB a version (bench/discovery.py),
# whatever the churn; at the refresher's most, about a minute of changes.
MAX_VERSIONS_KEPT = 50_000
DECODE_PER_SCORE = 10  # entries a build decodes from its child in the time of one score


class _Build:
    """A partition's first full index: the accounts left to score (here, or by a forked
    child), those scored, then the load in steps."""

    __slots__ = ("child", "entries", "left", "loading")

    def __init__(self, account_ids: Iterable[str]) -> None:
        self.left = list(account_ids)
        self.entries: list[tuple[str, IndexEntry]] = []
        self.child: ScoringChild | None = None
        self.loading: Iterator[None] | None = None  # once every account is scored

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()
            self.child = None


class DiscoveryIndexes:
    def __init__(self, keep_s: float = KEEP_POINT_IN_TIME_S,
                 max_versions: int = MAX_VERSIONS_KEPT,
                 fork_builds: bool = discovery_build.AVAILABLE) -> None:
        self._held: dict[int, tuple[PartitionSource, DiscoveryIndex]] = {}
        self._changed: dict[int, set[str]] = {}
        self._building: dict[int, _Build] = {}  # partitions whose first build is not done
        self._answering: set[int] = set()  # partitions that answer queries now
        self._owned: set[int] = set()
        # Per partition, (time, generation) once a tick: which generation is how old.
        self._marks: dict[int, deque[tuple[float, int]]] = {}
        self.keep_s = keep_s
        self.max_versions = max_versions
        self.fork_builds = fork_builds  # score first builds in a forked child

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
                build = self._building.pop(partition, None)
                if build is not None:
                    build.stop()
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
            if build.child is None and build.left and self._may_fork():
                # The fork copies the page tables: a pause of tens of ms at 1 M accounts.
                build.child = ScoringChild(source.engine, build.left)
                build.left = []
                return done + most
            if build.child is not None:
                done += self._receive(partition, build, most - done)
                if done >= most:
                    return done
                continue
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
            if partition in self._building:
                continue  # indexed after its load, which fills an empty index
            source, index = self._held[partition]
            take = [accounts.pop() for _ in range(min(most - done, len(accounts)))]
            reindex(index, source.engine, take)
            done += len(take)
            if not accounts:
                del self._changed[partition]
            if done >= most:
                break
        return done

    def _may_fork(self) -> bool:
        """One child at a time: they share the machine's other core."""
        return self.fork_builds and not any(
            build.child is not None for build in self._building.values())

    def _receive(self, partition: int, build: _Build, most: int) -> int:
        """Takes what the partition's child has scored; returns the work it stood for."""
        child = build.child
        assert child is not None
        received = child.receive(most * DECODE_PER_SCORE)
        build.entries += received
        if child.failed is not None:
            # Scored here instead, from the start: the child's entries may be incomplete.
            log.warning("discovery build child failed; building in process",
                        extra={"partition": partition, "reason": child.failed})
            build.child, build.entries = None, []
            build.left = list(self._held[partition][0].engine.accounts)
            self.fork_builds = False
        elif child.done:
            build.child = None
            build.loading = self._held[partition][1].loading(build.entries)
            build.entries = []
        return max(1, len(received) // DECODE_PER_SCORE) if received else 0

    def close(self) -> None:
        """Ends the builds' children: the process stops following."""
        for build in self._building.values():
            build.stop()

    def expire(self, now: float) -> None:
        """Lets each index forget what only generations older than `keep_s` (or beyond
        its part of `max_versions` replaced versions) read. Called once a tick."""
        per_index = self.max_versions // max(1, len(self._held))
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
            index.keep_at_most(per_index)

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
    try:
        while True:
            await asyncio.sleep(interval_s)
            try:
                indexes.follow(sources_of())
                indexes.expire(time.monotonic())
                while True:
                    started = time.perf_counter()
                    if not indexes.refresh():
                        break
                    # Queries and ingestion go on between slices, 9x as long as one took.
                    await asyncio.sleep((time.perf_counter() - started) * rest_per_busy_s)
                    indexes.follow(sources_of())
            except Exception:
                # Discovery would stop following the engines without a word otherwise.
                log.exception("discovery refresh failed; trying again next tick")
    finally:
        indexes.close()
