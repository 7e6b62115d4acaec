"""How long one expiry slice holds the event loop, at 100 k and 1 M accounts.

    python -m bench.expiry [--accounts 100000 1000000]

The consumer runs one slice of `Engine.expire_in_slices()` per turn of its loop, so the
longest slice is how long ingestion and queries wait for expiry. Three sweeps over the
accounts of bench/workload.py (default settings: 20,000 of them hot, the rest packed),
each with the stream time moved so that one case applies to every account: nothing is
due, part of each account goes (every packed account is unpacked and packed again), and
everything goes. The first slice of a sweep also forgets the dedupe ids that left the
horizon (window + allowed lateness).
"""

from __future__ import annotations

import argparse
import time

from bench.workload import START, fresh_engine, populate
from service.engine.engine import DAY_S, Engine


def sweep(engine: Engine, stream_time: float) -> dict[str, float]:
    for clock in engine.partitions.values():
        clock.stream_time = stream_time
    durations = []
    gone = 0
    slices = engine.expire_in_slices()
    while True:
        started = time.perf_counter()
        step = next(slices, None)
        durations.append(time.perf_counter() - started)
        if step is None:
            break
        gone += step
    durations.pop()  # the call that found the sweep finished
    ordered = sorted(durations)
    return {"slices": len(durations), "longest_s": ordered[-1],
            "p50_s": ordered[len(ordered) // 2], "p99_s": ordered[int(len(ordered) * 0.99)],
            "total_s": sum(durations), "gone": gone}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, nargs="+", default=[100_000, 1_000_000])
    arguments = parser.parse_args()
    print("| accounts | case | slices | longest | p50 | p99 | whole sweep | accounts gone |")
    print("|---|---|---|---|---|---|---|---|")
    start = START.timestamp()
    for accounts in arguments.accounts:
        engine = fresh_engine()
        populate(engine, accounts)
        lateness_and_window = engine.config.window_s + engine.config.allowed_lateness_s
        # Events are at START + index ms and 40 s later; the horizon is the stream time
        # minus the window and the allowed lateness.
        cases = (("nothing due", start + 1_100),
                 ("part of each", start + 1_100 + lateness_and_window),
                 ("everything", start + 80 * DAY_S))
        for case, stream_time in cases:
            r = sweep(engine, stream_time)
            print(f"| {accounts:,} | {case} | {r['slices']:.0f} | "
                  f"{r['longest_s'] * 1000:.1f} ms | {r['p50_s'] * 1000:.1f} ms | "
                  f"{r['p99_s'] * 1000:.1f} ms | {r['total_s']:.2f} s | {r['gone']:,.0f} |",
                  flush=True)


if __name__ == "__main__":
    main()
