"""Ingest of the same events in crawler order against event-time order, in one run.

    python -m bench.backfill [--events 1000000] [--before PATH] [--rounds 3]

A crawler sends one account's history, in time order, then the next account's, so each
account arrives up to a window behind its partition's stream time. The same N realistic
events (service/simulation.py, ~20 days of history) are produced to two fresh topics:
one in event-time order, one in crawler order (accounts in random order). Then, each in
its own process, from start to the last message processed:
  * bare:             a bare aiokafka consumer on the time-ordered topic (the ceiling);
  * pipeline, time:   the service's pipeline (bench.ingest's child) on the time-ordered;
  * pipeline, crawler: the same on the crawler-ordered topic;
  * with --before PATH, the pipeline of another checkout (e.g. the build before this
    change, `git worktree add PATH <commit>`) on both topics, for before/after; it runs
    this build's bench.ingest child, so its consumer must have the same interface.
The contenders take turns, for `--rounds` rounds; each one's best round counts, by wall
time and by the CPU time of its process over the same span (what other work on a shared
machine disturbs least). Every contender runs bench.ingest's child of this build, with
the `service` package of its checkout. Before that, the engine alone (no Kafka, events
decoded once, CPU time) applies both orders in alternating rounds, for this build and
the --before one, and the bench checks that this build counts every event in both
orders (none late, none duplicate).
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
import uuid
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.ingest import BOOTSTRAP, PARTITIONS, REPO, ensure_broker
from service.engine import Engine
from service.events import Rejection, decode_event
from service.simulation import account_events, demo_accounts


def population(count: int, seed: int = 1) -> dict[str, list[dict[str, Any]]]:
    """Events by account, each account's in time order: as in bench.ingest."""
    rng = random.Random(seed)
    by_account: dict[str, list[dict[str, Any]]] = {}
    total = 0
    start = time.time() - 20 * 86_400
    for account_id, profile in demo_accounts(max(10, count // 900), rng):
        events = account_events(account_id, profile, start + rng.uniform(0, 86_400),
                                 2 * 86_400, rng)[: count - total]
        by_account[account_id] = events
        total += len(events)
        if total >= count:
            break
    return by_account


def time_order(by_account: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    events = [event for events in by_account.values() for event in events]
    events.sort(key=lambda event: str(event["occurred_at"]))
    return events


def crawler_order(by_account: dict[str, list[dict[str, Any]]],
                  seed: int = 2) -> list[dict[str, Any]]:
    accounts = list(by_account)
    random.Random(seed).shuffle(accounts)
    return [event for account in accounts for event in by_account[account]]


def decode_all(events: list[dict[str, Any]]) -> list[tuple[Any, int]]:
    decoded = []
    for event in events:
        result = decode_event(str(event["account_id"]).encode(), orjson.dumps(event),
                              now=time.time(), max_event_bytes=8192, max_future_skew_s=300)
        assert not isinstance(result, Rejection), result
        decoded.append((result, zlib.crc32(str(event["account_id"]).encode()) % PARTITIONS))
    return decoded


def engine_only(decoded: list[tuple[Any, int]]) -> tuple[float, Counter[str]]:
    """CPU seconds for one fresh engine to apply the decoded events, and the outcomes."""
    engine = Engine()
    apply = engine.apply
    gc.collect()
    started = time.process_time()
    outcomes = Counter(apply(event, partition) for event, partition in decoded)
    return time.process_time() - started, Counter({str(k): v for k, v in outcomes.items()})


def engine_child(count: int, rounds: int) -> None:
    """Both orders alternately in this process (whatever `service` it imports)."""
    by_account = population(count)
    orders = {"time": decode_all(time_order(by_account)),
              "crawler": decode_all(crawler_order(by_account))}
    best: dict[str, float] = {}
    outcomes: dict[str, dict[str, int]] = {}
    for _ in range(rounds):
        for name, decoded in orders.items():
            seconds, counted = engine_only(decoded)
            best[name] = min(best.get(name, seconds), seconds)
            outcomes[name] = dict(counted)
    print(json.dumps({"cpu_s": best, "outcomes": outcomes}))


def run_engine_child(checkout: Path, count: int, rounds: int) -> dict[str, Any]:
    """engine_child with the service's code of `checkout` (this file run by path)."""
    code = ("import runpy, sys; sys.path.insert(0, sys.argv[1]); "
            "runpy.run_path(sys.argv[2], run_name='engine_child')")
    result = subprocess.run([sys.executable, "-c", code, str(checkout), __file__,
                             str(count), str(rounds)],
                            capture_output=True, text=True, check=True, cwd=checkout)
    answer: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


async def produce(topic: str, events: list[dict[str, Any]]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=50, acks=1,
                                max_batch_size=1 << 20)
    await producer.start()
    try:
        for event in events:
            await producer.send(topic, orjson.dumps(event),
                                key=str(event["account_id"]).encode())
        await producer.flush()
    finally:
        await producer.stop()


def run_ingest_child(checkout: Path, kind: str, topic: str, count: int) -> tuple[float, float]:
    """bench.ingest's child (this build's bench) with the service's code of `checkout`:
    the wall and CPU seconds from the start to the last message processed."""
    code = ("import runpy, sys; script = sys.argv[2]; sys.path.insert(0, sys.argv[1]); "
            "sys.argv = [script, *sys.argv[3:]]; runpy.run_path(script, run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", code, str(checkout),
                             str(REPO / "bench" / "ingest.py"), "--child", kind,
                             "--topic", topic, "--events", str(count)],
                            capture_output=True, text=True, check=True, cwd=checkout,
                            env={**os.environ, "ENGAGEMENT_LOG_LEVEL": "WARNING"})
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    return float(answer["seconds"]), float(answer["cpu_seconds"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--before", type=Path, help="another checkout to time as well")
    parser.add_argument("--skip-engine", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    count = arguments.events
    by_account = population(count)
    in_time, by_crawler = time_order(by_account), crawler_order(by_account)
    count = len(in_time)
    print(f"{count:,} events of {len(by_account):,} accounts", flush=True)
    if not arguments.skip_engine:
        checkouts = {"": REPO} | ({"before: ": arguments.before} if arguments.before else {})
        for label, checkout in checkouts.items():
            result = run_engine_child(checkout, count, arguments.rounds)
            for name, cpu_s in result["cpu_s"].items():
                print(f"{label}engine alone, {name:>7} order: {cpu_s:6.2f} CPU s "
                      f"{count / cpu_s:>10,.0f} events/s  {result['outcomes'][name]}",
                      flush=True)
            if not label:
                for name, outcomes in result["outcomes"].items():
                    assert outcomes == {"counted": count}, (name, outcomes)
    ensure_broker()
    suffix = uuid.uuid4().hex[:8]
    topics = {"time": f"bench-backfill-time-{suffix}",
              "crawler": f"bench-backfill-crawler-{suffix}"}
    started = time.perf_counter()
    asyncio.run(produce(topics["time"], in_time))
    asyncio.run(produce(topics["crawler"], by_crawler))
    print(f"produced both topics in {time.perf_counter() - started:.1f} s", flush=True)
    contenders = [("bare (time order)", REPO, "bare", "time"),
                  ("pipeline, time order", REPO, "pipeline", "time"),
                  ("pipeline, crawler order", REPO, "pipeline", "crawler")]
    before = arguments.before
    if before is not None:
        contenders += [("before: pipeline, time order", before, "pipeline", "time"),
                       ("before: pipeline, crawler order", before, "pipeline", "crawler")]
    # Rounds alternate the contenders, so that drift on a shared machine falls on all;
    # each contender's best round counts, by wall time and by CPU time.
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for round_ in range(arguments.rounds):
        for name, checkout, kind, order in contenders:
            took, used = run_ingest_child(checkout, kind, topics[order], count)
            wall[name] = min(wall.get(name, took), took)
            cpu[name] = min(cpu.get(name, used), used)
            print(f"round {round_ + 1}: {name:>32}: {took:7.2f} s {count / took:>10,.0f} "
                  f"events/s  ({used:6.2f} CPU s)", flush=True)
    for name in wall:
        print(f"best of {arguments.rounds}: {name:>32}: {count / wall[name]:>10,.0f} "
              f"events/s, {count / cpu[name]:>10,.0f} per CPU s")
    for basis, seconds in (("wall", wall), ("CPU", cpu)):
        print(f"-- by {basis} time")
        report({name: count / took for name, took in seconds.items()}, before is not None)


def report(rates: dict[str, float], with_before: bool) -> None:
    bare = rates["bare (time order)"]
    print(f"crawler / time order: "
          f"{rates['pipeline, crawler order'] / rates['pipeline, time order']:.2f}x")
    print(f"pipeline / bare: {rates['pipeline, time order'] / bare:.3f}x (time order), "
          f"{rates['pipeline, crawler order'] / bare:.3f}x (crawler order)")
    if with_before:
        print(f"before / bare: {rates['before: pipeline, time order'] / bare:.3f}x (time), "
              f"{rates['before: pipeline, crawler order'] / bare:.3f}x (crawler)")
        print(f"after / before, time order: "
              f"{rates['pipeline, time order'] / rates['before: pipeline, time order']:.2f}x")


if __name__ == "__main__":
    main()
elif __name__ == "engine_child":
    engine_child(int(sys.argv[3]), int(sys.argv[4]))

