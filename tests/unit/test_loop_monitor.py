"""The event-loop monitor sees a block of the loop, and the metrics report it."""

from __future__ import annotations

import asyncio
import time

from service.metrics import Metrics

BLOCK_S = 0.2


async def test_a_blocked_loop_shows_as_a_late_wakeup_in_the_metrics() -> None:
    metrics = Metrics()
    monitor = metrics.loop_monitor()
    task = asyncio.create_task(monitor.run())
    await asyncio.sleep(0.05)
    time.sleep(BLOCK_S)  # what a long apply or a collector pause does to the loop
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    # The wake-up due during the block came at least the block minus one interval late.
    assert monitor.longest_s >= BLOCK_S - monitor.interval_s
    registry = metrics.registry
    assert registry.get_sample_value("engagement_event_loop_longest_block_seconds") == (
        monitor.longest_s)
    slow = registry.get_sample_value("engagement_event_loop_block_seconds_bucket",
                                     {"le": "0.1"})
    total = registry.get_sample_value("engagement_event_loop_block_seconds_count")
    assert total is not None
    assert slow is not None
    assert total == monitor.wakeups
    assert total - slow >= 1  # the block's wake-up is above 100 ms
    # A sleep holds the loop without using the CPU: not the thread's own work.
    assert monitor.longest_cpu_s < BLOCK_S / 2


async def test_a_block_of_computation_counts_in_cpu_time_too() -> None:
    metrics = Metrics()
    monitor = metrics.loop_monitor()
    task = asyncio.create_task(monitor.run())
    await asyncio.sleep(0.05)
    started = time.thread_time()
    while time.thread_time() - started < BLOCK_S:  # what a long apply does
        pass
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert monitor.longest_cpu_s >= BLOCK_S - monitor.interval_s
    assert monitor.longest_cpu_s <= monitor.longest_s
    assert metrics.registry.get_sample_value(
        "engagement_event_loop_longest_block_cpu_seconds") == monitor.longest_cpu_s


async def test_reset_starts_a_new_period() -> None:
    metrics = Metrics()
    monitor = metrics.loop_monitor()
    task = asyncio.create_task(monitor.run())
    await asyncio.sleep(0.03)
    time.sleep(0.1)
    await asyncio.sleep(0.03)
    assert monitor.reset() >= 0.1 - monitor.interval_s
    assert monitor.longest_s < 0.1 - monitor.interval_s
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
