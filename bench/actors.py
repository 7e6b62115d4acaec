"""The actor side of the audience signal: the compiled core against the Python reference.

    python -m bench.actors [--interactions 200000] [--actors 20000] [--accounts 5000]
                           [--batch 10000] [--rounds 7] [--memory-actors 1000000]

Speed: packed re-keyed interaction batches (version 2, as the repartition topic carries
them) judged by `ActorActivity.observe_packed`, signal objects included, each
implementation on a fresh `ActorActivity` in alternating rounds in this process, by CPU
time (the machine is shared); the best and the median round. The stream: fans who come
back to a few favourite accounts and bots (1 actor in 20) that serve many, over 10 days
so that the actors' periods slide.

Memory: `--memory-actors` actors, each seen once in each of the period's 4 buckets, in a
child process per implementation; the growth of its resident size over the actors (the
compiled core's allocations are not visible to tracemalloc).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time

from service.engine import audience
from service.engine.audience import ACTIVITY_BUCKET_S, ActorActivity, InteractionBatch

T0 = 1_764_000_000.0
DAYS = 10


def stream(interactions: int, actors: int, accounts: int, batch: int,
           seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    hashes = [rng.getrandbits(64) for _ in range(actors)]
    bots = set(hashes[::20])
    favourites = {actor: [f"account-{rng.randrange(accounts)}" for _ in range(rng.randint(1, 8))]
                  for actor in hashes}
    # Actors' activity is skewed: a few are much more active than most.
    weights = [1.0 / (rank + 10) for rank in range(actors)]
    chosen = rng.choices(hashes, weights, k=interactions)
    batches = []
    packing = InteractionBatch()
    for number, actor in enumerate(chosen):
        account = (f"account-{rng.randrange(accounts)}" if actor in bots
                   else rng.choice(favourites[actor]))
        packing.add(actor, account, T0 + number / interactions * DAYS * 86_400.0)
        if packing.count == batch:
            batches.append(packing.to_bytes())
            packing = InteractionBatch()
    if packing.count:
        batches.append(packing.to_bytes())
    return batches


def judge(batches: list[bytes], compiled: bool) -> tuple[float, int]:
    activity = ActorActivity(compiled=compiled)
    started = time.process_time()
    signals = 0
    for data in batches:
        signals += len(activity.observe_packed(data))
    return time.process_time() - started, signals


def rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_child(actors: int, compiled: bool) -> None:
    """Run in a child: resident bytes per actor, as JSON on stdout."""
    rng = random.Random(2)
    hashes = [rng.getrandbits(64) for _ in range(actors)]
    account_ids = [f"account-{n}" for n in range(5_000)]
    activity = ActorActivity(compiled=compiled)
    before = rss_bytes()
    for bucket in range(audience.ACTIVITY_BUCKETS):
        at = T0 + bucket * ACTIVITY_BUCKET_S
        for start in range(0, actors, 100_000):
            batch = InteractionBatch()
            for actor in hashes[start : start + 100_000]:
                batch.add(actor, account_ids[actor % 5_000], at)
            activity.observe_packed(batch.to_bytes())
    assert len(activity) == actors
    print(json.dumps({"bytes_per_actor": (rss_bytes() - before) / actors,
                      "snapshot_bytes_per_actor": len(activity.snapshot()) / actors}))


def memory(actors: int, compiled: bool) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-m", "bench.actors", "--memory-child", str(actors),
                          "--compiled" if compiled else "--reference"],
                         check=True, capture_output=True, text=True).stdout
    return dict(json.loads(out))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--interactions", type=int, default=200_000)
    parser.add_argument("--actors", type=int, default=20_000)
    parser.add_argument("--accounts", type=int, default=5_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--memory-actors", type=int, default=1_000_000)
    parser.add_argument("--memory-child", type=int)
    parser.add_argument("--compiled", action="store_true")
    parser.add_argument("--reference", action="store_true")
    arguments = parser.parse_args()
    if arguments.memory_child:
        memory_child(arguments.memory_child, arguments.compiled)
        return
    if not audience.COMPILED_AVAILABLE:
        raise SystemExit("the compiled core is not built: make install")

    batches = stream(arguments.interactions, arguments.actors, arguments.accounts,
                     arguments.batch)
    reference_signals = ActorActivity(compiled=False)
    compiled_signals = ActorActivity(compiled=True)
    for data in batches:  # the same signals either way, before anything is timed
        assert reference_signals.observe_packed(data) == compiled_signals.observe_packed(data)
    times: dict[str, list[float]] = {"reference": [], "compiled": []}
    signals = 0
    for _ in range(arguments.rounds):
        for name in times:
            seconds, signals = judge(batches, compiled=name == "compiled")
            times[name].append(seconds)
    count = arguments.interactions
    print(f"{count:,} interactions of {arguments.actors:,} actors on {arguments.accounts:,} "
          f"accounts, {len(batches)} batches of {arguments.batch:,}, {signals:,} signals; "
          f"CPU time, {arguments.rounds} alternating rounds; "
          f"load average {os.getloadavg()[0]:.2f}")
    for name, seconds in times.items():
        print(f"{name:>10}: best {min(seconds) / count * 1e6:5.2f} us per interaction, "
              f"median {statistics.median(seconds) / count * 1e6:5.2f}")
    print(f"compiled / reference: {min(times['reference']) / min(times['compiled']):.1f}x "
          f"as fast (best), "
          f"{statistics.median(times['reference']) / statistics.median(times['compiled']):.1f}x "
          f"(median)")
    if arguments.memory_actors:
        for name in ("reference", "compiled"):
            figures = memory(arguments.memory_actors, compiled=name == "compiled")
            print(f"{name:>10}: {figures['bytes_per_actor']:6.1f} bytes per actor resident at "
                  f"{arguments.memory_actors:,} actors (snapshot: "
                  f"{figures['snapshot_bytes_per_actor']:.0f} bytes per actor)")


if __name__ == "__main__":
    main()
