"""The dedupe memory: cost per id, RAM and disk per million remembered ids, for its two
cores (the compiled one, native/src/dedupe.rs, and the Python reference) and the set of
strings per hour it replaced, in the same run. Times are CPU time (what other work on a
shared machine disturbs least). Memory is what tracemalloc sees allocated for the Python
structures, and what glibc's malloc has in use (`mallinfo2`) for the compiled core, whose
allocations tracemalloc does not see.

    python -m bench.dedupe [--ids 1000000 10000000]

Each size runs in a fresh process per structure. Ids look like real ones
(`<account>-post-<n>-<m>`, ~25 characters) and spread over the 720 hours of a 30-day
window. Two orders of insertion: time order (hour after hour) and crawler order (one
account's 720 hours after another's); then every id again (all re-sends). `insert` is
`EventIds.add` (hashing included, what the engine calls); `pre-hashed` is the core's
`add_hashed` with the hashes computed beforehand (what the compiled fold does, but here
still one Python call an id). The ratios at the end are the reference's time over the
compiled core's, per size and order.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import subprocess
import sys
import time
import tracemalloc

import lz4.frame
import msgpack

from service.engine.dedupe import EventIds, event_id_hash

HOURS = 720
ACCOUNTS = 1_000


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


STRUCTURES = ("strings", "reference", "compiled")


def malloc_in_use() -> int:
    """Bytes the compiled extension's Rust code holds (it counts its own allocations,
    which go to mimalloc: native/src/lib.rs)."""
    import engagement_native

    return int(engagement_native.allocated_bytes())


def prehashed_insert_s(structure: str, pairs: list[tuple[int, str]]) -> float:
    """CPU seconds to insert `pairs` through the core's `add_hashed`, hashed beforehand."""
    hashed = [(hour, event_id_hash(event_id)) for hour, event_id in pairs]
    add_hashed = EventIds(compiled=structure == "compiled").core.add_hashed
    started = time.process_time()
    for hour, value in hashed:
        add_hashed(hour, value)
    return time.process_time() - started


def fill(structure: str, pairs: list[tuple[int, str]]) -> tuple[object, float, float]:
    """The structure filled with `pairs`, the CPU seconds per insert and per re-send."""
    if structure != "strings":
        memory = EventIds(compiled=structure == "compiled")
        assert memory.compiled == (structure == "compiled")
        add = memory.add
        started = time.process_time()
        for hour, event_id in pairs:
            add(hour, event_id)
        insert_s = time.process_time() - started
        started = time.process_time()
        resent = sum(1 for hour, event_id in pairs if not add(hour, event_id))
        resend_s = time.process_time() - started
        assert resent == len(pairs)
        assert len(memory) == len(pairs)
        return memory, insert_s, resend_s
    hours: dict[int, set[str]] = {}  # what the engine held before: id strings per hour
    started = time.process_time()
    for hour, event_id in pairs:
        seen = hours.get(hour)
        if seen is None:
            seen = hours[hour] = set()
        elif event_id in seen:
            continue
        seen.add(event_id)
    insert_s = time.process_time() - started
    started = time.process_time()
    resent = sum(1 for hour, event_id in pairs if event_id in hours[hour])
    resend_s = time.process_time() - started
    assert resent == len(pairs)
    return hours, insert_s, resend_s


def measure(ids: int, structure: str, order: str) -> dict[str, float]:
    pairs = workload(ids, order)
    gc.collect()
    filled, insert_s, resend_s = fill(structure, pairs)
    del filled
    gc.collect()
    result = {"ids": len(pairs), "insert_us": insert_s / len(pairs) * 1e6,
              "resend_us": resend_s / len(pairs) * 1e6}
    if structure != "strings":
        result["prehashed_us"] = prehashed_insert_s(structure, pairs) / len(pairs) * 1e6
        gc.collect()
    # Memory: a second fill under tracemalloc (which slows it down, hence apart). The
    # id strings are the workload's; only the set keeps them alive in the service, so
    # their size is charged to it.
    if structure == "compiled":
        before = malloc_in_use()
        filled, _, _ = fill(structure, pairs)
        held = malloc_in_use() - before
    else:
        tracemalloc.start()
        filled, _, _ = fill(structure, pairs)
        held, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    if isinstance(filled, EventIds):
        started = time.process_time()
        exported = filled.export()
        export_s = time.process_time() - started
        disk = len(lz4.frame.compress(msgpack.packb(exported)))
        started = time.process_time()
        restored = EventIds(compiled=filled.compiled)
        for hour, data in exported.items():
            restored.restore(hour, data)
        restore_s = time.process_time() - started
        assert len(restored) == len(filled)
        result |= {"export_s": export_s, "restore_s": restore_s,
                   "nbytes_per_id": filled.nbytes() / len(pairs),
                   "expected_false_duplicates": filled.expected_false_duplicates()}
    else:
        assert isinstance(filled, dict)
        held += sum(sys.getsizeof(event_id) for _, event_id in pairs)
        disk = len(lz4.frame.compress(msgpack.packb(
            {hour: sorted(ids) for hour, ids in filled.items()})))
    result |= {"ram_bytes_per_id": held / len(pairs), "disk_bytes_per_id": disk / len(pairs)}
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
    print("| ids | structure | order | insert (CPU) | pre-hashed | re-send (CPU) | RAM per id "
          "| disk per id (lz4) | `nbytes()` per id | export | restore "
          "| expected false duplicates |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    ratios = []
    for ids in arguments.ids:
        for order in ("time", "crawler"):
            runs = {}
            for structure in STRUCTURES:
                run = subprocess.run([sys.executable, "-m", "bench.dedupe", "--one", str(ids),
                                      structure, order],
                                     capture_output=True, text=True, check=True)
                r = runs[structure] = json.loads(run.stdout)
                prehashed, extra = " |", " | | | |"
                if structure != "strings":
                    prehashed = f" {r['prehashed_us']:.2f} µs |"
                    extra = (f" {r['nbytes_per_id']:.1f} B | {r['export_s']:.2f} s | "
                             f"{r['restore_s']:.2f} s | {r['expected_false_duplicates']:.1e} |")
                print(f"| {r['ids']:,} | {structure} | {order} | {r['insert_us']:.2f} µs |"
                      f"{prehashed} {r['resend_us']:.2f} µs | {r['ram_bytes_per_id']:.1f} B | "
                      f"{r['disk_bytes_per_id']:.1f} B |{extra}", flush=True)
            reference, compiled = runs["reference"], runs["compiled"]
            ratios.append(f"| {ids:,} | {order} | " + " | ".join(
                f"{reference[key] / compiled[key]:.1f}x"
                for key in ("insert_us", "prehashed_us", "resend_us", "export_s", "restore_s"))
                + " |")
    print()
    print("| ids | order | insert: reference / compiled | pre-hashed | re-send | export "
          "| restore |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(ratios))


if __name__ == "__main__":
    main()
