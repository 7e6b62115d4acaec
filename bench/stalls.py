"""The longest event-loop block during ingest plus queries, with the garbage collector as
Python paces it and with the pacer (service/runtime_tuning.py), in the same run.

    python -m bench.stalls [--accounts 1000000] [--seconds 60] [--max-event-ids 5000000]
                           [--pacer-interval-s 0.05] [--compare PATH ...]
    python -m bench.stalls --structures [--accounts 1000000] [--max-event-ids 5000000]
    python -m bench.stalls --configurations paced paced-reference   (a choice of them)

Each configuration runs in its own process, one after the other, on the same state and
the same stream. The state: `accounts` accounts, each with a follower count and a post,
packed as after a restore, the collector frozen as the restore freezes it (the engine's
default hot set of 20,000 accounts: the service now sizes it from a memory budget, but a
working set of every account passes any hot set, so every event unpacks one). Then, for
`seconds`, in one event loop as in the service (no Kafka, no HTTP: what the engine does
to the loop):
  * ingest: likes on the posts of random accounts (the working set is every account,
    far past the hot set: each event unpacks one account and packs another) by actors of
    a 1 M-actor audience, in batches of 2,000 with a yield every 256 (as StreamConsumer);
  * queries: a cold score of a random account, as often as the loop allows;
  * expiry: one slice of a sweep per batch, a sweep every 10 s (as StreamConsumer);
  * the event-loop monitor (service/loop_monitor.py), every 10 ms.
Configurations: `floor` (no engine: the loop computes 5 ms of CPU at a time and yields,
so its longest block is what waiting for a core adds on this machine at this load),
`default` (the collector as Python runs it), `paced` (the pacer), and
`paced-reference` (the pacer, with the Python reference of the packed-account codec
instead of the compiled one). Each reports the 1-minute load average at its start and
end. It reports the longest block (on the wall clock, and in the loop thread's CPU
time: the service's own part, see service/loop_monitor.py), the slowest apply and
score, the collector's pauses by generation (gc.callbacks; durations also in the thread's
CPU time, which the machine's other processes do not stretch), and at the end one full
collection of the whole heap: what it finds (the engine makes no reference cycles) and
how long it holds the loop.

`--structures` times, with the collector off, the pauses that the engine's containers
cause by themselves at these sizes: the order of all accounts, which every event moves
to its end, as a plain dict (pop and insert: the dict compacts all of it now and then)
and as the OrderedDict the store keeps (`move_to_end`), and the dedupe
memory with one hour growing to `--max-event-ids` ids, then forgotten at once.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import subprocess
import sys
import time
from collections import OrderedDict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from service.engine import Engine, EngineConfig, packing
from service.engine.dedupe import EventIds
from service.engine.persistence import export_accounts, export_partitions, import_state
from service.events import FollowersEvent, LikeEvent, PostEvent
from service.loop_monitor import LoopBlockMonitor
from service.runtime_tuning import DEFAULT_INTERVAL_S, CollectorPacer

REPO = Path(__file__).resolve().parent.parent
BATCH = 2_000
YIELD_EVERY = 256
AUDIENCE = 1_000_000
EVENTS_PER_EVENT_SECOND = 300.0  # event time moves 1 s per 300 events
EXPIRY_EVERY_S = 10.0
FLOOR_CHUNK_S = 0.005
CHECKPOINT_EVERY_S = 1.0  # ENGAGEMENT_COMMIT_INTERVAL_S
START = datetime(2026, 11, 1, tzinfo=UTC).timestamp()


class GcPauses:
    """Each collection's duration, on the wall clock and in this thread's CPU time (the
    machine's other processes stretch the first, not the second)."""

    def __init__(self) -> None:
        self.by_generation: dict[int, list[tuple[float, float]]] = {0: [], 1: [], 2: []}
        self._started = (0.0, 0.0)

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = (time.perf_counter(), time.thread_time())
        else:
            wall, cpu = self._started
            self.by_generation[info["generation"]].append(
                (time.perf_counter() - wall, time.thread_time() - cpu))

    def summary(self) -> dict[str, Any]:
        return {str(generation): {
                    "count": len(pauses), "total_s": round(sum(p[0] for p in pauses), 3),
                    "longest_ms": round(max((p[0] for p in pauses), default=0.0) * 1e3, 1),
                    "longest_cpu_ms": round(max((p[1] for p in pauses), default=0.0) * 1e3, 1)}
                for generation, pauses in self.by_generation.items()}


def build(accounts: int, max_event_ids: int) -> Engine:
    engine = Engine(EngineConfig(max_event_ids=max_event_ids))
    moment = datetime.fromtimestamp(START, UTC)
    for index in range(accounts):
        account = f"acct-{index}"
        engine.apply(FollowersEvent(f"{account}-f", account, moment, START, 1_000 + index % 9_000),
                     index % 3)
        engine.apply(PostEvent(f"{account}-p", account, moment, START, f"{account}-p",
                               index % 5 == 0, ("veganism",)), index % 3)
    # As after a restore: every account packed, the collector frozen (as the consumer
    # does it: no full collection between the restore and the freeze, which would
    # untrack the store's dicts of packed accounts).
    partitions, packed, changes = (export_partitions(engine), list(export_accounts(engine)),
                                   engine.changes)
    config = engine.config
    del engine
    gc.collect()
    restored = import_state(config, partitions, packed, changes)
    del partitions, packed
    gc.freeze()
    return restored


async def run(engine: Engine, accounts: int, seconds: float, pacer_interval_s: float | None
              ) -> dict[str, Any]:
    rng = random.Random(7)
    monitor = LoopBlockMonitor()
    tasks = [asyncio.create_task(monitor.run())]
    pacer = CollectorPacer(pacer_interval_s or DEFAULT_INTERVAL_S)
    if pacer_interval_s is not None:
        tasks.append(asyncio.create_task(pacer.run()))
    stop = time.perf_counter() + seconds
    slowest = {"apply": 0.0, "score": 0.0, "chunk": 0.0, "expiry_slice": 0.0,
               "apply_cpu": 0.0, "score_cpu": 0.0, "expiry_slice_cpu": 0.0}
    counts = {"events": 0, "scores": 0}
    stream_time = START + 60.0

    async def ingest() -> None:
        nonlocal stream_time
        next_expiry = time.perf_counter() + EXPIRY_EVERY_S
        next_checkpoint = time.perf_counter() + CHECKPOINT_EVERY_S
        sweep = None
        number = 0
        while time.perf_counter() < stop:
            chunk_started = time.perf_counter()
            for index in range(BATCH):
                if index % YIELD_EVERY == YIELD_EVERY - 1:
                    slowest["chunk"] = max(slowest["chunk"], time.perf_counter() - chunk_started)
                    await asyncio.sleep(0)
                    chunk_started = time.perf_counter()
                which = rng.randrange(accounts)
                account = f"acct-{which}"
                stream_time += 1.0 / EVENTS_PER_EVENT_SECOND
                event = LikeEvent(f"e{number}", account, datetime.fromtimestamp(stream_time, UTC),
                                  stream_time, f"{account}-p", f"fan-{rng.randrange(AUDIENCE)}")
                number += 1
                started, cpu = time.perf_counter(), time.thread_time()
                engine.apply(event, which % 3)
                slowest["apply"] = max(slowest["apply"], time.perf_counter() - started)
                slowest["apply_cpu"] = max(slowest["apply_cpu"], time.thread_time() - cpu)
            counts["events"] += BATCH
            if time.perf_counter() >= next_checkpoint:
                # What the consumer's checkpoint takes (the changelog's ids): otherwise
                # the set of changed ids grows to every account, and its resizes (25 ms
                # of CPU at 1 M) are the bench's own.
                engine.accounts.discard_changes()
                next_checkpoint = time.perf_counter() + CHECKPOINT_EVERY_S
            if sweep is None and time.perf_counter() >= next_expiry:
                sweep = engine.expire_in_slices()
                next_expiry = time.perf_counter() + EXPIRY_EVERY_S
            started, cpu = time.perf_counter(), time.thread_time()
            if sweep is not None and next(sweep, None) is None:
                sweep = None
            slowest["expiry_slice"] = max(slowest["expiry_slice"], time.perf_counter() - started)
            slowest["expiry_slice_cpu"] = max(slowest["expiry_slice_cpu"],
                                              time.thread_time() - cpu)
            await asyncio.sleep(0)

    async def query() -> None:
        while time.perf_counter() < stop:
            started, cpu = time.perf_counter(), time.thread_time()
            engine.score(f"acct-{rng.randrange(accounts)}")
            slowest["score"] = max(slowest["score"], time.perf_counter() - started)
            slowest["score_cpu"] = max(slowest["score_cpu"], time.thread_time() - cpu)
            counts["scores"] += 1
            await asyncio.sleep(0.001)

    began = time.perf_counter()
    await asyncio.gather(ingest(), query())
    elapsed = time.perf_counter() - began
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"longest_block_ms": round(monitor.longest_s * 1e3, 1),
            "longest_block_cpu_ms": round(getattr(monitor, "longest_cpu_s", -1e-3) * 1e3, 1),
            "slowest_apply_ms": round(slowest["apply"] * 1e3, 1),
            "slowest_score_ms": round(slowest["score"] * 1e3, 1),
            "slowest_apply_cpu_ms": round(slowest["apply_cpu"] * 1e3, 1),
            "slowest_score_cpu_ms": round(slowest["score_cpu"] * 1e3, 1),
            "slowest_256_events_ms": round(slowest["chunk"] * 1e3, 1),
            "slowest_expiry_slice_ms": round(slowest["expiry_slice"] * 1e3, 1),
            "slowest_expiry_slice_cpu_ms": round(slowest["expiry_slice_cpu"] * 1e3, 1),
            "events_per_s": round(counts["events"] / elapsed),
            "scores_per_s": round(counts["scores"] / elapsed),
            "unpacks": engine.accounts.stats.unpacks,
            "pacer_longest_step_ms": round(pacer.stats.longest_step_s * 1e3, 1)}


async def floor(seconds: float) -> dict[str, Any]:
    """The machine's floor: the same monitor over a loop that only computes, FLOOR_CHUNK_S
    of CPU at a time, then yields. Its longest block is what waiting for a core adds."""
    monitor = LoopBlockMonitor()
    task = asyncio.create_task(monitor.run())
    stop = time.perf_counter() + seconds
    longest_chunk = longest_chunk_cpu = 0.0
    while time.perf_counter() < stop:
        started, cpu = time.perf_counter(), time.thread_time()
        while time.thread_time() - cpu < FLOOR_CHUNK_S:
            pass
        longest_chunk = max(longest_chunk, time.perf_counter() - started)
        longest_chunk_cpu = max(longest_chunk_cpu, time.thread_time() - cpu)
        await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return {"longest_block_ms": round(monitor.longest_s * 1e3, 1),
            "longest_block_cpu_ms": round(monitor.longest_cpu_s * 1e3, 1),
            "longest_chunk_ms": round(longest_chunk * 1e3, 1),
            "longest_chunk_cpu_ms": round(longest_chunk_cpu * 1e3, 1)}


def child(configuration: str, accounts: int, seconds: float, max_event_ids: int,
          pacer_interval_s: float) -> None:
    if configuration == "floor":
        load = os.getloadavg()[0]
        print(json.dumps({**asyncio.run(floor(seconds)), "load_1m": [
            round(load, 2), round(os.getloadavg()[0], 2)]}))
        return
    started = time.perf_counter()
    engine = build(accounts, max_event_ids)
    built_s = time.perf_counter() - started
    load = os.getloadavg()[0]
    pauses = GcPauses()
    gc.callbacks.append(pauses)
    paced = configuration.startswith("paced")
    packing.use_compiled(configuration != "paced-reference")
    result = asyncio.run(run(engine, accounts, seconds, pacer_interval_s if paced else None))
    gc.callbacks.remove(pauses)
    gc.unfreeze()
    started = time.perf_counter()
    found = gc.collect()
    full_s = time.perf_counter() - started
    print(json.dumps({**result, "load_1m": [round(load, 2), round(os.getloadavg()[0], 2)],
                      "gc_pauses": pauses.summary(), "build_s": round(built_s, 1),
                      "whole_heap_collection_ms": round(full_s * 1e3, 1),
                      "whole_heap_garbage_found": found, "tracked_objects": len(gc.get_objects())}))


def structures(accounts: int, event_ids: int) -> None:
    gc.disable()
    rng = random.Random(3)
    by_account: dict[str, bytes] = {f"acct-{index}": b"packed" for index in range(accounts)}
    longest = 0.0
    for _ in range(2 * accounts):
        account = f"acct-{rng.randrange(accounts)}"
        started = time.perf_counter()
        held = by_account.pop(account)
        by_account[account] = held
        longest = max(longest, time.perf_counter() - started)
    print(f"dict of {accounts:,} accounts, most recently active last: longest move "
          f"{longest * 1e3:.1f} ms over {2 * accounts:,} events")
    del by_account
    ordered = OrderedDict((f"acct-{index}", b"packed") for index in range(accounts))
    longest = 0.0
    for _ in range(2 * accounts):
        account = f"acct-{rng.randrange(accounts)}"
        started = time.perf_counter()
        ordered.move_to_end(account)
        longest = max(longest, time.perf_counter() - started)
    print(f"OrderedDict of {accounts:,} accounts (the store's): longest move_to_end "
          f"{longest * 1e3:.1f} ms over {2 * accounts:,} events")
    del ordered
    memory = EventIds()
    longest = 0.0
    for number in range(event_ids):
        event_id = f"event-{number}"
        started = time.perf_counter()
        memory.add(0, event_id)
        longest = max(longest, time.perf_counter() - started)
    print(f"the dedupe memory, one hour growing to {event_ids:,} ids: longest add "
          f"{longest * 1e3:.1f} ms")
    started = time.perf_counter()
    memory.forget_oldest(1)
    print(f"that hour forgotten at once: {(time.perf_counter() - started) * 1e3:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--max-event-ids", type=int, default=5_000_000)
    parser.add_argument("--pacer-interval-s", type=float, default=None,
                        help="default: each checkout's own (service.runtime_tuning)")
    parser.add_argument("--compare", nargs="*", default=[], metavar="PATH",
                        help="checkouts whose engines run the same configurations after "
                             "this one's (this checkout's bench)")
    parser.add_argument("--structures", action="store_true")
    parser.add_argument("--configurations", nargs="+",
                        default=["floor", "default", "paced", "paced-reference"],
                        choices=["floor", "default", "paced", "paced-reference"])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.structures:
        structures(arguments.accounts, arguments.max_event_ids)
        return
    if arguments.child:
        child(arguments.child, arguments.accounts, arguments.seconds, arguments.max_event_ids,
              arguments.pacer_interval_s or DEFAULT_INTERVAL_S)
        return
    checkouts = [("", REPO), *((f"{Path(path).resolve().name} ", Path(path).resolve())
                               for path in arguments.compare)]
    for configuration in arguments.configurations:
        for name, checkout in checkouts if configuration != "floor" else checkouts[:1]:
            # This file, with the checkout's `service` first on the path.
            result = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), "--child", configuration,
                 "--accounts", str(arguments.accounts), "--seconds", str(arguments.seconds),
                 "--max-event-ids", str(arguments.max_event_ids),
                 "--pacer-interval-s", str(arguments.pacer_interval_s
                                           or _interval_of(checkout))],
                capture_output=True, text=True, check=True, cwd=checkout,
                env={**os.environ, "PYTHONPATH": str(checkout)})
            print(f"{name}{configuration:>8}: {result.stdout.strip()}", flush=True)


def _interval_of(checkout: Path) -> float:
    """The pacer's default interval in a checkout's service/runtime_tuning.py."""
    result = subprocess.run(
        [sys.executable, "-c", "from service.runtime_tuning import DEFAULT_INTERVAL_S as i; "
         "print(i)"], capture_output=True, text=True, check=True, cwd=checkout,
        env={**os.environ, "PYTHONPATH": str(checkout)})
    return float(result.stdout)


if __name__ == "__main__":
    main()
