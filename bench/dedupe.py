"""The dedupe memory: cost per id, RAM and disk per million remembered ids, against the
set of strings per hour it replaces, in the same run.

    python -m bench.dedupe [--ids 1000000 10000000]

Each size runs in a fresh process per structure. Ids look like real ones
(`<account>-post-<n>-<m>`, ~25 characters) and spread over the 720 hours of a 30-day
window. Two orders of insertion: time order (hour after hour) and crawler order (one
account's 720 hours after another's); then every id again (all re-sends).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import resource
import subprocess
import sys
import time

import lz4.frame
import msgpack

from service.engine.dedupe import EventIds

HOURS = 720
ACCOUNTS = 1_000


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def workload(ids: int, order: str) -> list[tuple[int, str]]:
    per_slot = -(-ids // (HOURS * ACCOUNTS))
    slots = [(hour, account) for account in range(ACCOUNTS) for hour in range(HOURS)]
    if order == "time":
        slots.sort()
    else:  # crawler: accounts in random order, each account's history in time order
        rng = random.Random(1)
        accounts = list(range(ACCOUNTS))
        rng.shuffle(accounts)
        rank = {account: index for index, account in enumerate(accounts)}
        slots.sort(key=lambda slot: (rank[slot[1]], slot[0]))
    pairs = []
    for hour, account in slots:
        for number in range(per_slot):
            pairs.append((hour, f"acct-{account:05d}-post-{hour}-{number}"))
    return pairs[:ids]


def measure(ids: int, structure: str, order: str) -> dict[str, float]:
    pairs = workload(ids, order)
    gc.collect()
    before = resident_bytes()
    if structure == "hashed":
        memory = EventIds()
        add = memory.add
        started = time.perf_counter()
        for hour, event_id in pairs:
            add(hour, event_id)
        insert_s = time.perf_counter() - started
        started = time.perf_counter()
        resent = sum(1 for hour, event_id in pairs if not add(hour, event_id))
        resend_s = time.perf_counter() - started
        assert resent == len(pairs)
        assert len(memory) == len(pairs)
    else:  # what the engine held before: a set of id strings per hour
        hours: dict[int, set[str]] = {}
        started = time.perf_counter()
        for hour, event_id in pairs:
            seen = hours.get(hour)
            if seen is None:
                seen = hours[hour] = set()
            elif event_id in seen:
                continue
            seen.add(event_id)
        insert_s = time.perf_counter() - started
        started = time.perf_counter()
        resent = sum(1 for hour, event_id in pairs if event_id in hours[hour])
        resend_s = time.perf_counter() - started
    gc.collect()
    # The id strings themselves are the workload's, shared by both structures; only
    # the set keeps them alive in the service, so they are charged to it below.
    grown = resident_bytes() - before
    if structure == "strings":
        grown += sum(sys.getsizeof(event_id) for _, event_id in pairs)
        disk = len(lz4.frame.compress(msgpack.packb(
            {hour: sorted(ids) for hour, ids in hours.items()})))
    else:
        started = time.perf_counter()
        exported = memory.export()
        export_s = time.perf_counter() - started
        disk = len(lz4.frame.compress(msgpack.packb(exported)))
        started = time.perf_counter()
        restored = EventIds()
        for hour, data in exported.items():
            restored.restore(hour, data)
        restore_s = time.perf_counter() - started
        assert len(restored) == len(memory)
    result = {"ids": len(pairs), "insert_us": insert_s / len(pairs) * 1e6,
              "resend_us": resend_s / len(pairs) * 1e6,
              "ram_bytes_per_id": grown / len(pairs), "disk_bytes_per_id": disk / len(pairs)}
    if structure == "hashed":
        result |= {"export_s": export_s, "restore_s": restore_s,
                   "counted_bytes_per_id": memory.nbytes() / len(pairs),
                   "expected_false_duplicates": memory.expected_false_duplicates()}
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ids", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.one:
        ids, structure, order = arguments.one
        print(json.dumps(measure(int(ids), structure, order)))
        return
    print("| ids | structure | order | insert | re-send | RAM per id | disk per id |")
    print("|---|---|---|---|---|---|---|")
    for ids in arguments.ids:
        for structure in ("strings", "hashed"):
            for order in ("time", "crawler"):
                run = subprocess.run([sys.executable, "-m", "bench.dedupe", "--one", str(ids),
                                      structure, order],
                                     capture_output=True, text=True, check=True)
                r = json.loads(run.stdout)
                extra = ""
                if structure == "hashed":
                    extra = (f" (export {r['export_s']:.2f} s, restore {r['restore_s']:.2f} s,"
                             f" held {r['counted_bytes_per_id']:.1f} B/id, expected false"
                             f" duplicates {r['expected_false_duplicates']:.1e})")
                print(f"| {r['ids']:,} | {structure} | {order} | {r['insert_us']:.2f} µs | "
                      f"{r['resend_us']:.2f} µs | {r['ram_bytes_per_id']:.1f} B | "
                      f"{r['disk_bytes_per_id']:.1f} B |{extra}", flush=True)


if __name__ == "__main__":
    main()
