"""Resident bytes per tracked account at 100 k and 1 M accounts.

    python -m bench.memory [--accounts 100000 1000000]

Each size runs in a fresh process; the baseline is the same process's resident size
before the accounts are built. The accounts are built in chunks of 10,000, and the
dedupe ids are forgotten after each chunk, as expiry forgets them once their events are
older than the allowed lateness: a steady stream holds the last hours' ids, not every
id since the first account (holding all 9 M would be measured as ~0.6 KB per account
that the allocator keeps after they are freed).
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys

from bench.workload import fresh_engine, populate
from service.engine.dedupe import EventIds

CHUNK_ACCOUNTS = 10_000


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def measure(accounts: int) -> dict[str, float]:
    gc.collect()
    before = resident_bytes()
    engine = fresh_engine()
    for first in range(0, accounts, CHUNK_ACCOUNTS):
        populate(engine, min(CHUNK_ACCOUNTS, accounts - first), seed=first, first=first)
        for clock in engine.partitions.values():
            clock.event_ids = EventIds()
    engine.recount_event_ids()
    gc.collect()
    grown = resident_bytes() - before
    return {"accounts": accounts, "resident_bytes": grown,
            "bytes_per_account": grown / accounts}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.one:
        print(json.dumps(measure(arguments.one)))
        return
    for accounts in arguments.accounts:
        run = subprocess.run([sys.executable, "-m", "bench.memory", "--one", str(accounts)],
                             capture_output=True, text=True, check=True)
        result = json.loads(run.stdout)
        print(f"{accounts:>9,} accounts: {result['resident_bytes'] / 2**20:8.1f} MiB resident, "
              f"{result['bytes_per_account']:7.0f} bytes per account")


if __name__ == "__main__":
    main()
