"""The discovery indexes of the partitions this process consumes, kept up to date with
the engine: the consumer notes which accounts each batch changed, and `refresh` re-scores
and re-indexes them, each once, however many events it had in between.

Re-scoring is what maintenance costs (bench/discovery.py), so it runs on a timer, not per
batch, and takes at most MAINTENANCE_SHARE of the time: under heavy ingest the index
trails the engine further instead of slowing ingestion. Discovery answers render every
item from the engine, so a body is never older than the engine; only its place in the
order may be.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

from service.discovery_api import PartitionView
from service.engine import Engine
from service.engine.discovery import DiscoveryIndex, reindex

REFRESH_INTERVAL_S = 1.0
MAINTENANCE_SHARE = 0.1  # of the event loop's time, at most
REFRESH_SLICE_ACCOUNTS = 500  # ~30 ms of re-scoring


class DiscoveryIndexes:
    def __init__(self) -> None:
        self.indexes: dict[int, DiscoveryIndex] = {}
        self._changed: dict[int, set[str]] = {}

    def note(self, changed: Iterable[tuple[int, str]]) -> None:
        """(partition, account_id) of the accounts a batch changed."""
        pending = self._changed
        for partition, account_id in changed:
            accounts = pending.get(partition)
            if accounts is None:
                accounts = pending[partition] = set()
            accounts.add(account_id)

    def refresh(self, engine: Engine, most: int = REFRESH_SLICE_ACCOUNTS) -> int:
        """Re-indexes up to `most` of the accounts changed since they were last indexed;
        returns how many. A slice at a time: re-scoring costs tens of microseconds an
        account, too long to do thousands without letting queries in between."""
        done = 0
        for partition, accounts in list(self._changed.items()):
            index = self.indexes.get(partition)
            if index is None:
                index = self.indexes[partition] = DiscoveryIndex(partition)
            take = [accounts.pop() for _ in range(min(most - done, len(accounts)))]
            reindex(index, engine, take)
            done += len(take)
            if not accounts:
                del self._changed[partition]
            if done >= most:
                break
        return done

    def views(self, engine: Engine) -> dict[int, PartitionView]:
        return {partition: PartitionView(engine, index)
                for partition, index in self.indexes.items()}


async def follow_engine(indexes: DiscoveryIndexes, engine_of: Callable[[], Engine],
                        interval_s: float = REFRESH_INTERVAL_S) -> None:
    """Keeps `indexes` up to date with the engine until cancelled."""
    rest_per_busy_s = 1.0 / MAINTENANCE_SHARE - 1.0
    while True:
        await asyncio.sleep(interval_s)
        while True:
            started = time.perf_counter()
            if not indexes.refresh(engine_of()):
                break
            # Queries and ingestion go on between slices, for 9x as long as a slice took.
            await asyncio.sleep((time.perf_counter() - started) * rest_per_busy_s)
