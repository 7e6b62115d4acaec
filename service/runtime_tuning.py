"""Paces Python's cyclic garbage collector so that it never holds the event loop for long.

What stalled `apply` and `score` for seconds (bench/stalls.py, docs/benchmarks.md): the
collector runs when tracked allocations minus deallocations pass a threshold. An account
unpacked for an event creates its objects and the account packed in exchange frees as
many, so with a working set larger than the hot set that count hardly moves while the
young generation fills with new objects: a young collection then walks hundreds of
thousands of them. And every object that survives joins the old generation, so that a
full collection, which walks all of it (the hot accounts, the score cache, every dedupe
set with its millions of ids), comes whenever a quarter of it is new: seconds at a time.

The pacer collects the young generation every `interval_s` (5 ms) of loop time, so it never
holds more than what was allocated since, and moves what survived to the permanent
generation (`gc.freeze()`), which no collection walks: a full
collection then sees only what became old since the last step. The engine's state is
freed by reference counting when it goes (it makes no reference cycles: a full
collection of the whole heap after the stall bench finds nothing to collect).

The price: a reference cycle that becomes garbage only after it has been frozen is not
collected. Outside the engine such cycles come from network connections (measured: about
one object per closed HTTP connection that lived longer than a pacer cycle). Setting
`full_collection_interval_s` unfreezes and collects the whole heap that often, which
bounds that memory and costs one full pause per interval.
"""

from __future__ import annotations

import asyncio
import gc
import time
from dataclasses import dataclass

# A step's pause is the walk of what was allocated since the last one: at 1 M accounts,
# every event unpacking one, 20 ms held up to 7 ms of CPU, 5 ms at most 2-4 ms for the
# same total (bench/stalls.py; docs/benchmarks.md 8b). A step comes at the loop's next
# yield, so a shorter interval only means a step at (almost) every yield.
DEFAULT_INTERVAL_S = 0.005


@dataclass(slots=True)
class PacerStats:
    steps: int = 0
    full_collections: int = 0
    longest_step_s: float = 0.0


class CollectorPacer:
    def __init__(self, interval_s: float = DEFAULT_INTERVAL_S,
                 full_collection_interval_s: float | None = None) -> None:
        self.interval_s = interval_s
        self.full_collection_interval_s = full_collection_interval_s
        self.stats = PacerStats()
        self._next_full = (None if full_collection_interval_s is None
                           else time.monotonic() + full_collection_interval_s)

    def step(self) -> None:
        """One young collection, and what survives it is frozen."""
        started = time.perf_counter()
        stats = self.stats
        stats.steps += 1
        if self._next_full is not None and time.monotonic() >= self._next_full:
            gc.unfreeze()
            gc.collect()
            gc.freeze()
            stats.full_collections += 1
            assert self.full_collection_interval_s is not None
            self._next_full = time.monotonic() + self.full_collection_interval_s
        else:
            gc.collect(0)
            gc.freeze()
        stats.longest_step_s = max(stats.longest_step_s, time.perf_counter() - started)

    async def run(self) -> None:
        """Steps every `interval_s` until cancelled. Start it once the state is
        restored (the restore freezes what it loaded)."""
        while True:
            await asyncio.sleep(self.interval_s)
            self.step()
