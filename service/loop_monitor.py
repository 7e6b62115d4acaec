"""How long the event loop is blocked: a task that sleeps a short interval and measures
how late it wakes up.

Everything in this process shares one event loop: a long `apply`, a slow expiry slice or
a pause of the garbage collector holds up ingestion and every HTTP request alike. A wake-up
that is late by `d` seconds means that something held the loop for about `d` (up to one
interval more: the block may start just after a wake-up). The monitor reports each
wake-up's lateness to a callback (the Prometheus histogram
`engagement_event_loop_block_seconds`) and keeps the longest one.

A wake-up is also late when the process waits for a core: on a machine with more
runnable processes than cores, a loop that only ever computes for 10 ms at a time is
seen late by 100 ms and more (bench/stalls.py, `floor`). So the monitor also keeps the
longest block in this thread's CPU time: the CPU time the thread spent while the monitor
slept, less the interval, and at most the lateness. That part is the service's own
doing; the rest of the lateness is the machine's. (It is exact when the loop computed
throughout the interval, and low by what a wait for a core took out of the interval.)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

DEFAULT_INTERVAL_S = 0.01


class LoopBlockMonitor:
    def __init__(self, interval_s: float = DEFAULT_INTERVAL_S,
                 observe: Callable[[float], None] | None = None) -> None:
        self.interval_s = interval_s
        self._observe = observe
        self.longest_s = 0.0
        self.longest_cpu_s = 0.0
        self.wakeups = 0

    async def run(self) -> None:
        """Runs until cancelled."""
        interval = self.interval_s
        observe = self._observe
        while True:
            started, started_cpu = time.perf_counter(), time.thread_time()
            await asyncio.sleep(interval)
            late = max(0.0, time.perf_counter() - started - interval)
            self.wakeups += 1
            if late > self.longest_s:
                self.longest_s = late
            # The thread's CPU time past the due time, at least: what it used while the
            # monitor slept, less the interval (exact when the loop was busy throughout).
            late_cpu = min(late, max(0.0, time.thread_time() - started_cpu - interval))
            if late_cpu > self.longest_cpu_s:
                self.longest_cpu_s = late_cpu
            if observe is not None:
                observe(late)

    def reset(self) -> float:
        """The longest block since the last reset (or the start); starts a new period."""
        longest, self.longest_s, self.longest_cpu_s = self.longest_s, 0.0, 0.0
        return longest
