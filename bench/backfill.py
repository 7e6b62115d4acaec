"""Ingest of the same events in crawler order against event-time order, in one run.

    python -m bench.backfill [--events 1000000] [--before PATH] [--rounds 2]

A crawler sends one account's history, in time order, then the next account's, so each
account arrives up to a window behind its partition's stream time. The same N realistic
events (service/simulation.py, ~20 days of history) are produced to two fresh topics:
one in event-time order, one in crawler order (accounts in random order). Then, each in
its own process, from start to the last message processed:
  * bare:             a bare aiokafka consumer on the time-ordered topic (the ceiling);
  * pipeline, time:   the service's pipeline (bench.ingest's child) on the time-ordered;
  * pipeline, crawler: the same on the crawler-ordered topic;
  * with --before PATH, the pipeline of another checkout (e.g. the build before this
    change, `git worktree add PATH <commit>`) on both topics, for before/after.
The contenders take turns, for `--rounds` rounds; each one's best round counts. Before
that, the engine alone (no Kafka, events decoded once) applies both orders, and the
bench checks that both count every event (no event late, no duplicate).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.ingest import BOOTSTRAP, PARTITIONS, ensure_broker, run_child
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


def engine_only(events: list[dict[str, Any]]) -> tuple[float, Counter[str]]:
    decoded = []
    for event in events:
        result = decode_event(str(event["account_id"]).encode(), orjson.dumps(event),
                              now=time.time(), max_event_bytes=8192, max_future_skew_s=300)
        assert not isinstance(result, Rejection), result
        decoded.append((result, hash(event["account_id"]) % PARTITIONS))
    engine = Engine()
    apply = engine.apply
    started = time.perf_counter()
    outcomes = Counter(apply(event, partition) for event, partition in decoded)
    return time.perf_counter() - started, Counter({str(k): v for k, v in outcomes.items()})


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


def run_pipeline_in(checkout: Path, topic: str, count: int) -> float:
    """bench.ingest's pipeline child, with the service's code of another checkout."""
    result = subprocess.run([sys.executable, "-m", "bench.ingest", "--child", "pipeline",
                             "--topic", topic, "--events", str(count)],
                            capture_output=True, text=True, check=True, cwd=checkout,
                            env={**os.environ, "ENGAGEMENT_LOG_LEVEL": "WARNING",
                                 "PYTHONPATH": str(checkout)})
    return float(json.loads(result.stdout.strip().splitlines()[-1])["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--before", type=Path, help="another checkout to time as well")
    parser.add_argument("--skip-engine", action="store_true")
    parser.add_argument("--rounds", type=int, default=2)
    arguments = parser.parse_args()
    count = arguments.events
    by_account = population(count)
    in_time, by_crawler = time_order(by_account), crawler_order(by_account)
    count = len(in_time)
    print(f"{count:,} events of {len(by_account):,} accounts", flush=True)
    if not arguments.skip_engine:
        for name, events in (("time", in_time), ("crawler", by_crawler)):
            seconds, outcomes = engine_only(events)
            print(f"engine alone, {name:>7} order: {seconds:6.2f} s "
                  f"{count / seconds:>10,.0f} events/s  {dict(outcomes)}", flush=True)
            assert outcomes == Counter({"counted": count}), outcomes
    ensure_broker()
    suffix = uuid.uuid4().hex[:8]
    topics = {"time": f"bench-backfill-time-{suffix}",
              "crawler": f"bench-backfill-crawler-{suffix}"}
    started = time.perf_counter()
    asyncio.run(produce(topics["time"], in_time))
    asyncio.run(produce(topics["crawler"], by_crawler))
    print(f"produced both topics in {time.perf_counter() - started:.1f} s", flush=True)
    runs: list[tuple[str, Any]] = [
        ("bare (time order)", lambda: run_child("bare", topics["time"], count)),
        ("pipeline, time order", lambda: run_child("pipeline", topics["time"], count)),
        ("pipeline, crawler order", lambda: run_child("pipeline", topics["crawler"], count)),
    ]
    before = arguments.before
    if before is not None:
        runs += [
            ("before: pipeline, time order",
             lambda: run_pipeline_in(before, topics["time"], count)),
            ("before: pipeline, crawler order",
             lambda: run_pipeline_in(before, topics["crawler"], count)),
        ]
    # Rounds alternate the contenders, so that drift on a shared machine falls on all;
    # each contender's best round counts.
    seconds: dict[str, float] = {}
    for round_ in range(arguments.rounds):
        for name, run in runs:
            took = run()
            seconds[name] = min(seconds.get(name, took), took)
            print(f"round {round_ + 1}: {name:>32}: {took:7.2f} s "
                  f"{count / took:>10,.0f} events/s", flush=True)
    rates = {name: count / took for name, took in seconds.items()}
    for name, rate in rates.items():
        print(f"best of {arguments.rounds}: {name:>32}: {rate:>10,.0f} events/s")
    bare = rates["bare (time order)"]
    print(f"crawler / time order: "
          f"{rates['pipeline, crawler order'] / rates['pipeline, time order']:.2f}x")
    print(f"pipeline / bare: {rates['pipeline, time order'] / bare:.3f}x (time order), "
          f"{rates['pipeline, crawler order'] / bare:.3f}x (crawler order)")
    if before is not None:
        print(f"before / bare: {rates['before: pipeline, time order'] / bare:.3f}x (time), "
              f"{rates['before: pipeline, crawler order'] / bare:.3f}x (crawler)")
        print(f"after / before, time order: "
              f"{rates['pipeline, time order'] / rates['before: pipeline, time order']:.2f}x")


if __name__ == "__main__":
    main()

