"""Reading every account once, as discovery's first build of a partition does: a score of
each account of a restored engine (all packed), in CPU µs per account, past the hot set.

    python -m bench.cold_reads [--accounts 200000] [--compare PATH ...] [--rounds 1]

Each build in its own process (this checkout, then each PATH with its `service` first on
the path), on the same accounts (`bench.workload`), with the engine's default hot set of
20,000: every score unpacks an account and pushes another out of the hot set (packs it).
Session 5 measured with it whether putting an account that was only read back as the
bytes it came from (no pack) paid: it did not measurably (docs/benchmarks.md 8b).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def measure(accounts: int) -> dict[str, float]:
    from bench.cold_scores import restored as restored_engine

    restored = restored_engine(accounts)  # every account packed, the heap frozen
    ids = list(restored.accounts)
    cpu = time.process_time()
    for account_id in ids:
        restored.score(account_id)
    per_account = (time.process_time() - cpu) / len(ids)
    return {"cpu_us_per_account": per_account * 1e6,
            "unpacks": restored.accounts.stats.unpacks}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=200_000)
    parser.add_argument("--compare", nargs="*", default=[], metavar="PATH")
    parser.add_argument("--rounds", type=int, default=1, help="in turn; the fastest counts")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        print(json.dumps(measure(arguments.accounts)))
        return
    best: dict[str, float] = {}
    for round_number in range(arguments.rounds):
        for checkout in [REPO, *(Path(path).resolve() for path in arguments.compare)]:
            # This file, with the checkout's `service` and `bench.workload` first.
            result = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), "--child",
                 "--accounts", str(arguments.accounts)],
                capture_output=True, text=True, check=True, cwd=checkout,
                env={**os.environ, "PYTHONPATH": str(checkout)})
            measured = json.loads(result.stdout.strip().splitlines()[-1])
            per_account = measured["cpu_us_per_account"]
            best[checkout.name] = min(best.get(checkout.name, per_account), per_account)
            print(f"round {round_number + 1} {checkout.name}: {per_account:.2f} CPU µs per "
                  f"account read, {measured['unpacks']:,} unpacks (load "
                  f"{os.getloadavg()[0]:.2f})", flush=True)
    print("best: " + ", ".join(f"{name} {value:.2f}" for name, value in best.items()))


if __name__ == "__main__":
    main()
