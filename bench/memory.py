"""Resident bytes per tracked account at 100 k and 1 M accounts.

    python -m bench.memory [--accounts 100000 1000000]
    python -m bench.memory --forms [--accounts 200000]

`--forms`: the bytes of one account in each of the store's two forms, the figures behind
`store.HOT_ACCOUNT_BYTES` and `PACKED_ACCOUNT_BYTES` (what sizes the hot set from
ENGAGEMENT_MEMORY_BUDGET_BYTES): the same accounts built once with every account hot
and once with a hot set of one (all packed), each in a fresh process.

Each size runs in a fresh process; the baseline is the same process's resident size
before the accounts are built. The accounts are built in chunks of 10,000, and the
dedupe ids are forgotten after each chunk: this measures the accounts alone; the dedupe
memory (the ids of a whole window, ~9 bytes each) is bench.dedupe's subject.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys

from bench.workload import fresh_engine, populate
from service.engine import Engine, EngineConfig
from service.engine.dedupe import EventIds
from service.engine.store import HOT_ACCOUNT_BYTES, PACKED_ACCOUNT_BYTES

CHUNK_ACCOUNTS = 10_000


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def measure(accounts: int, hot_accounts: int | None = None) -> dict[str, float]:
    gc.collect()
    before = resident_bytes()
    engine = (fresh_engine() if hot_accounts is None else
              Engine(EngineConfig(max_accounts=2_000_000, hot_accounts=hot_accounts)))
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
    parser.add_argument("--forms", action="store_true")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--hot", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.one:
        print(json.dumps(measure(arguments.one, arguments.hot)))
        return
    if arguments.forms:
        forms(arguments.accounts)
        return
    for accounts in arguments.accounts:
        run = subprocess.run([sys.executable, "-m", "bench.memory", "--one", str(accounts)],
                             capture_output=True, text=True, check=True)
        result = json.loads(run.stdout)
        print(f"{accounts:>9,} accounts: {result['resident_bytes'] / 2**20:8.1f} MiB resident, "
              f"{result['bytes_per_account']:7.0f} bytes per account")


def forms(sizes: list[int]) -> None:
    for accounts in sizes:
        per_account = {}
        for form, hot in (("hot", accounts), ("packed", 1)):
            run = subprocess.run([sys.executable, "-m", "bench.memory", "--one", str(accounts),
                                  "--hot", str(hot)], capture_output=True, text=True,
                                 check=True)
            per_account[form] = json.loads(run.stdout)["bytes_per_account"]
        print(f"{accounts:>9,} accounts: hot {per_account['hot']:7.0f} bytes per account "
              f"(store.HOT_ACCOUNT_BYTES = {HOT_ACCOUNT_BYTES}), packed "
              f"{per_account['packed']:7.0f} (store.PACKED_ACCOUNT_BYTES = "
              f"{PACKED_ACCOUNT_BYTES})")


if __name__ == "__main__":
    main()
