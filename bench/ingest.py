"""Ingest throughput: the service's pipeline against a bare aiokafka consumer (the
ceiling) and a Quix Streams application (the peer), on the same topic, in the same run.

    python -m bench.ingest [--events 1000000] [--workloads realistic wide] [--skip-quix]
                           [--rounds 1] [--compare PATH ...] [--variants [NAME ...]]
                           [--use-topic WORKLOAD TOPIC ...]
    python -m bench.ingest --fold-alone [--events 1000000] [--workloads wide] [--rounds 1]
    python -m bench.ingest --engine-alone [--events 1000000] [--workloads wide]
                           [--compare PATH ...] [--skip-reference] [--rounds 1]
                           [--codec-variants]

For each workload, produces N events to a fresh topic on the local broker (started if
none answers), then times, each in its own process, from start to the last message
processed:
  * bare:     AIOKafkaConsumer.getmany in a loop, nothing else;
  * pipeline: the service's StreamProcessor (decode, validate, dedupe, window, metrics,
              changelog transactions every commit interval), beside the loop monitor and
              the collector's pacer, as the service runs it;
  * PATH:     the pipeline of another checkout (e.g. a worktree of an older commit),
              under this harness and this checkout's virtualenv (the checkout's folder
              first on the path), named by its folder; only with --compare;
Each is printed from start and steady: from the first events through (after the group
join and the topics and producers a start creates) to the last.
  * with --variants [NAME ...], more runs of this checkout's pipeline (all if none is
    named):
    pipeline-reference: the Python reference of the packed-account codec instead of the
                        compiled one (service/engine/packing.py, native/);
    pipeline-all-hot:   a hot set of 1 M accounts (ENGAGEMENT_HOT_ACCOUNTS), so that no
                        account is ever packed: against `pipeline` on the wide workload,
                        the cost of a working set past the hot set;
    pipeline-small-hot: a hot set of 1,000 accounts per partition, so that nearly every
                        event of the wide workload is folded into a packed account;
    pipeline-python-fold: the engine's Python reference for every event instead of the
                        compiled batch fold of interactions (ENGAGEMENT_NATIVE_FOLD=0,
                        native/src/fold.rs);
  * with --engine-alone, no Kafka: the workload decoded in advance and applied to one
    engine (a checkpoint's drain every 100,000 events), each contender in its own
    process (this checkout with the compiled codec and
    with the reference, unless --skip-reference; with --codec-variants, the compiled codec
    without each of its options, bench/codec.py, at the old default and every account
    hot only; the checkouts of --compare), each with
    three hot sets: 20,000 (the old default), the one the service now sizes from its
    default memory budget, and every account), in CPU µs per event after a warm-up of
    300,000 events (the wide workload's accounts and posts); then, in the same process,
    pack and unpack of 2,000 of its accounts (µs per account);
  * with --fold-alone, no Kafka: the consumer's per-record loop (decode, fold, route:
    `consumer.fold_records`) over the workload's messages as records, 2,000 at a time,
    with a checkpoint's drain of the changed accounts every 100,000 records,
    into one partition's state at default settings, with the native fold and with the
    Python one (ENGAGEMENT_NATIVE_FOLD=0), each in its own process, in CPU µs per event
    after a warm-up of 300,000 events;
  * quix:     Quix Streams counting per account in a 30-day tumbling window on event
              time (RocksDB state; with and without its changelog topic); realistic only.
The workloads:
  * realistic: service/simulation.py, nine kinds of account, in event-time order; its
               1,111 accounts all fit the default hot set;
  * wide:      a working set of 50,000 accounts (more than the default hot set of
               20,000), each with a 1 M-actor audience: every event goes to a random
               account, from a random actor of its audience, in event-time order.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from service.simulation import account_events, demo_accounts, rfc3339

REPO = Path(__file__).resolve().parent.parent
BOOTSTRAP = os.environ.get("ENGAGEMENT_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
PARTITIONS = 3


def ensure_broker() -> None:
    answers = subprocess.run([sys.executable, str(REPO / "scripts" / "broker_answers.py")],
                             env={**os.environ, "ENGAGEMENT_KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP})
    if answers.returncode != 0:
        subprocess.run([str(REPO / "scripts" / "kafka.sh"), "start"], check=True)


def realistic_events(count: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    events: list[dict[str, object]] = []
    start = time.time() - 20 * 86_400
    for account_id, profile in demo_accounts(max(10, count // 900), rng):
        events += account_events(account_id, profile, start + rng.uniform(0, 86_400),
                                 2 * 86_400, rng)
        if len(events) >= count:
            break
    events = events[:count]
    events.sort(key=lambda event: str(event["occurred_at"]))
    return [orjson.dumps(event) for event in events]


WIDE_ACCOUNTS = 50_000
WIDE_AUDIENCE = 1_000_000
WIDE_POSTS = 4


def wide_events(count: int, seed: int = 1) -> list[bytes]:
    """A follower count and WIDE_POSTS posts per account, then interactions on random
    accounts' posts by random actors, 20 events per second of event time."""
    rng = random.Random(seed)
    start = time.time() - 20 * 86_400
    events: list[bytes] = []
    moment = start
    for index in range(WIDE_ACCOUNTS):
        account = f"wide-{index:05d}"
        events.append(orjson.dumps({
            "event_id": f"{account}-f", "type": "followers", "account_id": account,
            "followers": rng.randrange(1_000, 200_000), "occurred_at": rfc3339(moment)}))
        for post in range(WIDE_POSTS):
            events.append(orjson.dumps({
                "event_id": f"{account}-p{post}", "type": "post", "account_id": account,
                "post_id": f"{account}-p{post}", "sponsored": rng.random() < 0.1,
                "topics": [rng.choice(("veganism", "travel", "fitness", "gaming"))],
                "occurred_at": rfc3339(moment)}))
        moment += 0.05
    kinds = ("like",) * 8 + ("comment", "share")
    for number in range(max(0, count - len(events))):
        account = f"wide-{rng.randrange(WIDE_ACCOUNTS):05d}"
        events.append(orjson.dumps({
            "event_id": f"w{number}", "type": rng.choice(kinds), "account_id": account,
            "post_id": f"{account}-p{rng.randrange(WIDE_POSTS)}",
            "actor_id": f"fan-{rng.randrange(WIDE_AUDIENCE)}", "occurred_at": rfc3339(moment)}))
        moment += 0.05
    return events[:count]


WORKLOADS = {"realistic": realistic_events, "wide": wide_events}


async def produce(topic: str, count: int, workload: str = "realistic") -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=50, acks=1,
                                max_batch_size=1 << 20)
    await producer.start()
    try:
        for value in WORKLOADS[workload](count):
            key = orjson.loads(value)["account_id"].encode()
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def bare(topic: str, count: int) -> dict[str, float]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=BOOTSTRAP,
                                group_id=f"bare-{uuid.uuid4().hex}",
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                max_partition_fetch_bytes=4 << 20)
    started, cpu_started = time.perf_counter(), time.process_time()
    await consumer.start()
    seen = 0
    first: tuple[float, float, int] | None = None
    try:
        while seen < count:
            batch = await consumer.getmany(timeout_ms=200, max_records=2000)
            seen += sum(len(records) for records in batch.values())
            if first is None and seen:
                first = time.perf_counter(), time.process_time(), seen
    finally:
        ended, cpu_ended = time.perf_counter(), time.process_time()
        await consumer.stop()
    return timings(started, cpu_started, ended, cpu_ended, first, count)


def timings(started: float, cpu_started: float, ended: float, cpu_ended: float,
            first: tuple[float, float, int] | None, count: int) -> dict[str, float]:
    """From start to the last event, and the steady part: from the moment the first
    events were through (after the group join, the topics and producers a start
    creates) to the last, over the events after that moment. CPU time over the same
    spans too: what other work on a shared machine disturbs least."""
    assert first is not None
    first_at, first_cpu, first_events = first
    return {"seconds": ended - started, "cpu_seconds": cpu_ended - cpu_started,
            "steady_seconds": ended - first_at, "steady_cpu_seconds": cpu_ended - first_cpu,
            "steady_events": count - first_events}


async def pipeline(topic: str, count: int, compiled: bool = True) -> dict[str, float]:
    from service.consumer import StreamProcessor
    from service.engine import packing
    from service.metrics import Metrics
    from service.runtime_tuning import CollectorPacer
    from service.settings import Settings

    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(kafka_bootstrap_servers=BOOTSTRAP, events_topic=topic,
                            dlq_topic=f"{topic}.dlq", consumer_group=f"pipe-{uuid.uuid4().hex}",
                            scores_topic=f"{topic}.scores",
                            snapshot_dir=Path(folder), snapshot_interval_s=3600,
                            expiry_interval_s=3600)
        packing.use_compiled(compiled)
        metrics = Metrics()
        consumer = StreamProcessor(settings, metrics)
        started, cpu_started = time.perf_counter(), time.process_time()
        task = asyncio.create_task(consumer.run())
        # What the service runs beside the consumer (service/app.py): the loop monitor and
        # the collector's pacer.
        background = [asyncio.create_task(metrics.loop_monitor().run()),
                      asyncio.create_task(CollectorPacer().run())]
        first: tuple[float, float, int] | None = None
        while (done := sum(s.position or 0 for s in consumer.states.values())) < count:
            if task.done():
                task.result()
            if first is None and done:
                first = time.perf_counter(), time.process_time(), done
            await asyncio.sleep(0.01)
        ended, cpu_ended = time.perf_counter(), time.process_time()
        for helper in background:
            helper.cancel()
        consumer.stop()
        await task
    # The audience signals folded, the score-change stream's work (absent from an older
    # --compare checkout's metrics).
    stream = {name: value for name, metric in (
                  ("signals", "engagement_audience_signals_total"),
                  ("rescores", "engagement_score_rescores_total"),
                  ("published", "engagement_score_changes_published_total"))
              if (value := metrics.registry.get_sample_value(metric)) is not None}
    return {**timings(started, cpu_started, ended, cpu_ended,
                      first or (ended, cpu_ended, count), count), **stream}


def quix(topic: str, count: int, changelog: bool) -> float:
    from datetime import timedelta

    from quixstreams import Application

    def event_time(value: dict[str, object], headers: object, timestamp: float,
                   timestamp_type: object) -> int:
        moment = str(value["occurred_at"]).replace("Z", "+00:00")
        return int(datetime.fromisoformat(moment).timestamp() * 1000)

    with tempfile.TemporaryDirectory() as folder:
        app = Application(broker_address=BOOTSTRAP, consumer_group=f"quix-{uuid.uuid4().hex}",
                          auto_offset_reset="earliest", state_dir=folder,
                          use_changelog_topics=changelog)
        source = app.topic(topic, value_deserializer="json", timestamp_extractor=event_time)
        frame = app.dataframe(source)
        seen = 0
        started = time.perf_counter()

        def count_one(value: object) -> None:
            nonlocal seen
            seen += 1
            if seen >= count:
                app.stop()

        frame = frame.update(count_one)
        frame = frame.tumbling_window(timedelta(days=30)).count().current()
        app.run()
        return time.perf_counter() - started


ENGINE_WARM_UP = 300_000
# Events between two checkpoints' drains of the changed accounts in --engine-alone and
# --fold-alone: about one commit interval (1 s) of the pipeline on the wide workload.
FOLD_CHECKPOINT_EVERY = 100_000
# bench.codec.CODECS's variants of the compiled codec, for --codec-variants.
CODEC_VARIANTS = ("compiled, collector tracks", "compiled, no prefetch",
                  "compiled, evictions one at a time")
OLD_DEFAULT_HOT_SET = 20_000  # ENGAGEMENT_HOT_ACCOUNTS's default before the memory budget
CODEC_SAMPLE = 2_000


def engine_alone(workload: str, count: int, hot_accounts: int, codec: str
                 ) -> dict[str, float]:
    import gc

    # This file's sibling, whichever checkout's `service` runs: the child runs this file
    # as a script, so its folder is first on the path.
    from codec import select

    from service.engine import Engine, EngineConfig, packing
    from service.events import Rejection, decode_event

    select(codec)
    now = time.time()
    events = []
    for value in WORKLOADS[workload](count):
        key = orjson.loads(value)["account_id"].encode()
        event = decode_event(key, value, now=now, max_event_bytes=1 << 20,
                             max_future_skew_s=1e9)
        assert not isinstance(event, Rejection)
        events.append(event)
    gc.collect()
    gc.freeze()
    engine = Engine(EngineConfig(hot_accounts=hot_accounts))
    # A checkpoint's drain every FOLD_CHECKPOINT_EVERY events (a checkout before the
    # drain existed packs nothing at checkpoints here).
    drain = getattr(engine.accounts, "drain_packed", None)
    warm = min(ENGINE_WARM_UP, count // 2)
    cpu = 0.0
    for index, event in enumerate(events):
        if index == warm:
            cpu = time.process_time()
        engine.apply(event, 0)
        if drain is not None and index % FOLD_CHECKPOINT_EVERY == FOLD_CHECKPOINT_EVERY - 1:
            drain()
    per_event = (time.process_time() - cpu) / (len(events) - warm)
    accounts = [account for account_id in list(engine.accounts)[:CODEC_SAMPLE]
                if (account := engine.accounts.get(account_id)) is not None]
    cpu = time.process_time()
    packed = [packing.pack(account) for account in accounts]
    pack_s = (time.process_time() - cpu) / len(accounts)
    cpu = time.process_time()
    for account, blob in zip(accounts, packed, strict=True):
        packing.unpack(account.account_id, blob)
    unpack_s = (time.process_time() - cpu) / len(accounts)
    return {"cpu_us_per_event": per_event * 1e6, "unpacks": engine.accounts.stats.unpacks,
            "pack_us": pack_s * 1e6, "unpack_us": unpack_s * 1e6}


def default_hot_set() -> int:
    """The hot set this checkout's service gives one partition's engine at default
    settings outside a container (sized from the default memory budget)."""
    from service.consumer import engine_config
    from service.settings import Settings

    return engine_config(Settings()).hot_accounts


def run_engine_alone(workloads: list[str], count: int, checkouts: dict[str, Path],
                     with_reference: bool = True, rounds: int = 1,
                     codec_variants: bool = False) -> None:
    # (name, checkout, codec as bench.codec.select names it, with every hot set)
    contenders = [("this checkout, compiled", REPO, "compiled", True),
                  *([("this checkout, reference", REPO, "reference", True)]
                    if with_reference else []),
                  # Each option of the compiled codec against its absence: only the hot
                  # sets where accounts are packed (the old default) and none (every).
                  *[(f"this checkout, {variant}", REPO, variant, False)
                    for variant in (CODEC_VARIANTS if codec_variants else ())],
                  # The compiled codec where the checkout has one (`use_compiled`).
                  *[(name, path, "checkout", True) for name, path in checkouts.items()]]
    default_hot = default_hot_set()
    hot_sets = (OLD_DEFAULT_HOT_SET, default_hot, 1_000_000)
    for workload in workloads:
        # Every cell in turn, `rounds` times; the fastest of each cell counts (the other
        # processes on a shared machine slow CPU time too, through the caches).
        best: dict[tuple[str, int], dict[str, float]] = {}
        for _ in range(rounds):
            for name, checkout, codec, every_hot_set in contenders:
                for hot in hot_sets:
                    if not every_hot_set and hot == default_hot:
                        continue
                    # This file, with the checkout's `service` first on the path.
                    result = subprocess.run(
                        [sys.executable, str(Path(__file__).resolve()), "--child", "engine",
                         "--topic", f"{workload}:{hot}:{codec}", "--events", str(count)],
                        capture_output=True, text=True, check=True, cwd=checkout,
                        env={**os.environ, "PYTHONPATH": str(checkout)})
                    measured = json.loads(result.stdout.strip().splitlines()[-1])
                    kept = best.get((name, hot))
                    if kept is None or measured["cpu_us_per_event"] < kept["cpu_us_per_event"]:
                        best[(name, hot)] = measured
        print(f"[{workload}] the engine alone, {count:,} events, CPU µs per event, best of "
              f"{rounds}")
        print(f"| build | hot set {OLD_DEFAULT_HOT_SET:,} (the old default) | hot set "
              f"{default_hot:,} (the default budget's) | every account hot | gap at "
              f"{OLD_DEFAULT_HOT_SET:,} | gap at {default_hot:,} | unpacks at "
              f"{OLD_DEFAULT_HOT_SET:,} | pack µs | unpack µs |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name, _, _, _ in contenders:
            old, every = best[(name, OLD_DEFAULT_HOT_SET)], best[(name, 1_000_000)]
            budget = best.get((name, default_hot))
            old_us, every_us = old["cpu_us_per_event"], every["cpu_us_per_event"]
            budget_cells = ("-", "-") if budget is None else (
                f"{budget['cpu_us_per_event']:.2f}",
                f"{budget['cpu_us_per_event'] / every_us:.2f}x")
            print(f"| {name} | {old_us:.2f} | {budget_cells[0]} | {every_us:.2f} | "
                  f"{old_us / every_us:.2f}x | {budget_cells[1]} | {old['unpacks']:,} | "
                  f"{old['pack_us']:.2f} | {old['unpack_us']:.2f} |", flush=True)


FOLD_BATCH = 2_000  # records per call of the consumer's loop, as a fetch gives them


def fold_alone(workload: str, count: int, native: bool) -> dict[str, float]:
    """The consumer's per-record loop (`consumer.fold_records`: decode, fold, route)
    without Kafka: the workload's messages as records, FOLD_BATCH at a time, into one
    partition's state at default settings, and every FOLD_CHECKPOINT_EVERY records the
    changed accounts drained as a checkpoint drains them (packed, `drain_packed`); CPU µs
    per event after a warm-up."""
    import gc
    from types import SimpleNamespace

    from service.consumer import engine_config, fold_records
    from service.partition_state import PartitionState
    from service.settings import Settings

    settings = Settings(native_fold=native)
    records = [SimpleNamespace(key=orjson.loads(value)["account_id"].encode(), value=value,
                               offset=offset)
               for offset, value in enumerate(WORKLOADS[workload](count))]
    state = PartitionState(0, engine_config(settings))
    assert state.engine.folds_natively is native
    outcomes: Counter[tuple[str, str]] = Counter()
    rejected: list[Any] = []
    now = time.time()
    gc.collect()
    gc.freeze()
    warm = min(ENGINE_WARM_UP, count // 2)
    cpu = 0.0
    for start in range(0, len(records), FOLD_BATCH):
        if start == warm:
            cpu = time.process_time()
        batch = records[start : start + FOLD_BATCH]
        index = 0
        while index < len(batch):
            index = fold_records(state, batch, index, settings=settings, now=now,
                                 partitions=PARTITIONS, budget_s=1e9, outcomes=outcomes,
                                 rejected=rejected)
        if (start + FOLD_BATCH) % FOLD_CHECKPOINT_EVERY == 0:
            state.engine.accounts.drain_packed()
    per_event = (time.process_time() - cpu) / (len(records) - warm)
    assert not rejected
    stats = state.engine.accounts.stats
    return {"cpu_us_per_event": per_event * 1e6, "unpacks": stats.unpacks,
            "packed_folds": stats.packed_folds}


def run_fold_alone(workloads: list[str], count: int, rounds: int) -> None:
    for workload in workloads:
        best: dict[str, dict[str, float]] = {}
        for _ in range(rounds):
            for mode in ("native", "python"):
                result = subprocess.run(
                    [sys.executable, "-m", "bench.ingest", "--child", "fold",
                     "--topic", f"{workload}:{mode}", "--events", str(count)],
                    capture_output=True, text=True, check=True, cwd=REPO)
                measured = json.loads(result.stdout.strip().splitlines()[-1])
                kept = best.get(mode)
                if kept is None or measured["cpu_us_per_event"] < kept["cpu_us_per_event"]:
                    best[mode] = measured
        native, python = best["native"], best["python"]
        print(f"[{workload}] the consumer's loop without Kafka, {count:,} events, CPU µs per "
              f"event after {min(ENGINE_WARM_UP, count // 2):,}, best of {rounds}: "
              f"native fold {native['cpu_us_per_event']:.2f}, Python fold "
              f"{python['cpu_us_per_event']:.2f} "
              f"({python['cpu_us_per_event'] / native['cpu_us_per_event']:.2f}x), unpacks "
              f"{native['unpacks']:,} / {python['unpacks']:,}, events folded packed "
              f"{native.get('packed_folds', 0):,} / {python.get('packed_folds', 0):,}",
              flush=True)


VARIANTS = {"pipeline-reference": ("pipeline-reference", {}),
            "pipeline-all-hot": ("pipeline", {"ENGAGEMENT_HOT_ACCOUNTS": "1000000"}),
            "pipeline-small-hot": ("pipeline", {"ENGAGEMENT_HOT_ACCOUNTS": "1000"}),
            "pipeline-python-fold": ("pipeline", {"ENGAGEMENT_NATIVE_FOLD": "0"})}


def run_child(kind: str, topic: str, count: int, checkout: Path = REPO,
              env: dict[str, str] | None = None) -> dict[str, float]:
    """One contender in its own process. Another checkout's service code runs under this
    checkout's harness (its folder first on the path), so that every contender is timed
    the same way."""
    extra = {} if checkout == REPO else {"PYTHONPATH": str(checkout)}
    result = subprocess.run([sys.executable, str(REPO / "bench" / "ingest.py"), "--child", kind,
                             "--topic", topic, "--events", str(count)],
                            capture_output=True, text=True, check=True, cwd=checkout,
                            env={**os.environ, "ENGAGEMENT_LOG_LEVEL": "WARNING", **extra,
                                 **(env or {})})
    answer: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--skip-quix", action="store_true")
    parser.add_argument("--workloads", nargs="+", choices=sorted(WORKLOADS),
                        default=["realistic", "wide"])
    parser.add_argument("--rounds", type=int, default=1,
                        help="every contender this many times, in turn; the best counts")
    parser.add_argument("--compare", nargs="*", default=[], metavar="PATH",
                        help="checkouts whose pipelines run too, named by their folders")
    parser.add_argument("--variants", nargs="*", choices=sorted(VARIANTS), default=None,
                        help="also these variants of the pipeline (all of them if none is "
                             "named): the reference codec, a hot set of every account, the "
                             "Python fold")
    parser.add_argument("--engine-alone", action="store_true",
                        help="no Kafka: the engine alone, with both codecs and hot sets")
    parser.add_argument("--skip-reference", action="store_true",
                        help="with --engine-alone: not the reference codec")
    parser.add_argument("--codec-variants", action="store_true",
                        help="with --engine-alone: also the compiled codec without each of "
                             "its options (bench.codec.CODECS)")
    parser.add_argument("--fold-alone", action="store_true",
                        help="no Kafka: the consumer's loop with the native fold and with "
                             "the Python one")
    parser.add_argument("--use-topic", nargs=2, action="append", default=[],
                        metavar=("WORKLOAD", "TOPIC"),
                        help="a topic an earlier run produced (its name is printed) holding "
                             "exactly --events events of that workload, instead of a new one")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    arguments.use_topics = dict(arguments.use_topic)
    if arguments.child:
        kind, topic, count = arguments.child, arguments.topic, arguments.events
        if kind == "engine":
            workload, hot, codec = topic.split(":", 2)
            print(json.dumps(engine_alone(workload, count, int(hot), codec)))
            return
        if kind == "fold":
            workload, mode = topic.split(":", 1)
            print(json.dumps(fold_alone(workload, count, mode == "native")))
            return
        if kind == "bare":
            answer = asyncio.run(bare(topic, count))
        elif kind in ("pipeline", "pipeline-reference"):
            answer = asyncio.run(pipeline(topic, count, kind == "pipeline"))
        else:
            answer = {"seconds": quix(topic, count, changelog=kind == "quix")}
        print(json.dumps(answer))
        return
    count = arguments.events
    checkouts = {Path(path).resolve().name: Path(path).resolve() for path in arguments.compare}
    if arguments.fold_alone:
        run_fold_alone(arguments.workloads, count, arguments.rounds)
        return
    if arguments.engine_alone:
        run_engine_alone(arguments.workloads, count, checkouts,
                         with_reference=not arguments.skip_reference, rounds=arguments.rounds,
                         codec_variants=arguments.codec_variants)
        return
    ensure_broker()
    for workload in arguments.workloads:
        topic = arguments.use_topics.get(workload, "")
        if not topic:
            topic = f"bench-ingest-{workload}-{uuid.uuid4().hex[:8]}"
            started = time.perf_counter()
            asyncio.run(produce(topic, count, workload))
            print(f"[{workload}] produced {count:,} events to {topic} in "
                  f"{time.perf_counter() - started:.1f} s")
        variants = ([] if arguments.variants is None
                    else arguments.variants or list(VARIANTS))
        kinds = ["bare", "pipeline", *variants, *checkouts]
        if workload == "realistic" and not arguments.skip_quix:
            kinds += ["quix", "quix-no-changelog"]
        rates: dict[str, float] = {}
        steady: dict[str, float] = {}
        for round_number in range(arguments.rounds):
            for kind in kinds:
                if kind in checkouts:
                    answer = run_child("pipeline", topic, count, checkouts[kind])
                elif kind in VARIANTS:
                    child, env = VARIANTS[kind]
                    answer = run_child(child, topic, count, env=env)
                else:
                    answer = run_child(kind, topic, count)
                seconds = answer["seconds"]
                rates[kind] = max(rates.get(kind, 0.0), count / seconds)
                line = (f"[{workload}] round {round_number + 1} {kind:>18}: {seconds:7.2f} s  "
                        f"{count / seconds:>10,.0f} events/s")
                if answer.get("steady_events"):
                    rate = answer["steady_events"] / answer["steady_seconds"]
                    steady[kind] = max(steady.get(kind, 0.0), rate)
                    line += (f"; steady {answer['steady_seconds']:.2f} s {rate:>10,.0f} events/s"
                             f" (CPU {answer['steady_cpu_seconds']:.2f} s)")
                if "signals" in answer:
                    line += f"; signals {answer['signals']:,.0f}"
                if "rescores" in answer:  # the score-change stream's work in the run
                    line += (f"; re-scored {answer['rescores']:,.0f}, published "
                             f"{answer['published']:,.0f}")
                print(line, flush=True)
        for contender in ("pipeline", *variants, *checkouts):
            # (a run too short to have a steady part, all of it in the first fetch, has none)
            steady_ratio = (f"; steady {steady[contender] / steady['bare']:.3f}x"
                            if contender in steady and "bare" in steady else "")
            print(f"[{workload}] {contender} / bare aiokafka: "
                  f"{rates[contender] / rates['bare']:.3f}x{steady_ratio}")
        for peer in ("quix", "quix-no-changelog"):
            if peer in rates:
                print(f"[{workload}] pipeline / {peer}: {rates['pipeline'] / rates[peer]:.2f}x")

if __name__ == "__main__":
    main()
