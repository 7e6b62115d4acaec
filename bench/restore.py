"""A partition's changelog restore without Kafka: `PartitionState.apply_changelog` over
the records a build's own checkpoints wrote, then `finish_restore`, for this build and a
baseline build in the same run.

    python -m bench.restore [--accounts 166000] [--rounds 3] [--baseline <checkout>]...

What `bench.cluster --failover-only` holds: accounts with one followers event each,
consumed in batches of `--batch` events with a checkpoint after each (as the service
commits every second), the score-change stream re-scoring at most `--rescore` accounts
per checkpoint (its budget; the rest wait, with a gate record that says so). Each build
writes its changelog with its own checkpoint path, so the records are what that build
puts in Kafka. Then the partition is restored from them, as the consumer's
`_read_changelog` does it (the cyclic collector paused), `--rounds` times; the figure is
CPU time per round and accounts per second of it.

With `--baseline` (repeatable), each build runs in a child process of its own
(`PYTHONPATH` set to the checkout; this file is run by path, so the checkout needs no copy
of it), the builds alternating `--pairs` times: ratios from one run on a shared machine,
each build's median restore time over the first baseline's.
"""

from __future__ import annotations

import argparse
import gc
import inspect
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

Record = tuple[bytes, bytes | None]
START = datetime(2026, 11, 1, tzinfo=UTC)
TOPICS = ("events", "actors", "signals")


def write_changelog(accounts: int, batch: int, rescore: int, hot: int
                    ) -> tuple[list[Record], Any]:
    """The changelog records of one partition holding `accounts` accounts, as the
    build's checkpoints wrote them, and the config its states use."""
    from service.engine import EngineConfig
    from service.events import FollowersEvent
    from service.partition_state import PartitionState

    config = EngineConfig(max_accounts=accounts * 2, hot_accounts=hot)
    state = PartitionState(0, config)
    budgeted = "rescore_at_most" in inspect.signature(state.checkpoint).parameters
    records: list[Record] = []

    def checkpoint() -> None:
        made = (state.checkpoint(*TOPICS, rescore_at_most=rescore) if budgeted
                else state.checkpoint(*TOPICS))
        if made is not None:
            records.extend(made.changelog)

    for index in range(accounts):
        account = f"acct-{index}"
        moment = START + timedelta(seconds=index % 3000)
        state.engine.apply(FollowersEvent(f"f-{index}", account, moment,
                                          moment.timestamp(), 1000 + index % 5000), 0)
        state.position = index + 1
        if (index + 1) % batch == 0:
            checkpoint()
    checkpoint()
    return records, config


def restore(records: list[Record], config: Any) -> tuple[float, float, Any]:
    """CPU seconds of the records' apply and of `finish_restore`, and the state."""
    from service.partition_state import PartitionState

    state = PartitionState(0, config)
    gc.disable()
    try:
        started = time.process_time()
        for key, value in records:
            state.apply_changelog(key, value)
        applied = time.process_time()
        state.finish_restore()
        finished = time.process_time()
    finally:
        gc.enable()
    return applied - started, finished - applied, state


def kinds(records: list[Record]) -> dict[str, int]:
    counted: Counter[str] = Counter()
    for key, value in records:
        if key.startswith(b"!gate/"):
            counted["gate" if value is not None else "gate tombstone"] += 1
        elif key.startswith(b"!"):
            counted[key[1:].split(b"/")[0].decode()] += 1
        else:
            counted["account"] += 1
    return dict(counted)


def child(arguments: argparse.Namespace) -> None:
    import service

    records, config = write_changelog(arguments.accounts, arguments.batch,
                                      arguments.rescore, arguments.hot)
    rounds = []
    for _ in range(arguments.rounds):
        gc.collect()
        apply_s, finish_s, state = restore(records, config)
        assert len(state.engine.accounts) == arguments.accounts
        rounds.append({"apply_s": apply_s, "finish_s": finish_s,
                       "hot_after": state.engine.accounts.hot})
        del state
    print(json.dumps({"build": str(Path(service.__file__).parent.parent),
                      "records": len(records), "kinds": kinds(records), "rounds": rounds}))


def run_child(root: Path, arguments: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child",
               "--accounts", str(arguments.accounts), "--batch", str(arguments.batch),
               "--rescore", str(arguments.rescore), "--hot", str(arguments.hot),
               "--rounds", str(arguments.rounds)]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(command, env=env, cwd=root, check=True, capture_output=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def summary(runs: list[dict[str, Any]], accounts: int) -> dict[str, Any]:
    totals = [r["apply_s"] + r["finish_s"] for run in runs for r in run["rounds"]]
    applies = [r["apply_s"] for run in runs for r in run["rounds"]]
    finishes = [r["finish_s"] for run in runs for r in run["rounds"]]
    first = runs[0]
    return {
        "build": first["build"], "records": first["records"], "kinds": first["kinds"],
        "restore_s_median": statistics.median(totals), "restore_s_best": min(totals),
        "apply_s_median": statistics.median(applies),
        "finish_s_median": statistics.median(finishes),
        "us_per_record_median": statistics.median(applies) / first["records"] * 1e6,
        "accounts_per_s_median": accounts / statistics.median(totals),
        "hot_after": first["rounds"][0]["hot_after"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=166_000)
    parser.add_argument("--batch", type=int, default=5_000,
                        help="events between checkpoints")
    parser.add_argument("--rescore", type=int, default=250,
                        help="accounts re-scored per checkpoint at most (this build)")
    parser.add_argument("--hot", type=int, default=2_000, help="hot accounts")
    parser.add_argument("--rounds", type=int, default=3, help="restores per child")
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--baseline", type=Path, action="append", default=[],
                        help="a checkout of a build to compare (repeatable)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        child(arguments)
        return
    here = Path(__file__).resolve().parent.parent
    builds = [build.resolve() for build in arguments.baseline] + [here]
    runs: dict[Path, list[dict[str, Any]]] = {build: [] for build in builds}
    for _ in range(arguments.pairs):
        for build in builds:
            runs[build].append(run_child(build, arguments))
    figures: dict[str, Any] = {str(build): summary(found, arguments.accounts)
                               for build, found in runs.items()}
    first = figures[str(builds[0])]["restore_s_median"]
    figures["time_over_first"] = {str(build): figures[str(build)]["restore_s_median"] / first
                                  for build in builds}
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
