"""Scale-out: ingest with one and two instances, the changelog's cost, failover after
`kill -9`, changelog restore speed, and forwarded against local queries. Real Kafka, real
service processes, all in one run.

    python -m bench.cluster [--events 1000000] [--accounts 200000]
                            [--failover-only | --ingest-only] [--reference-actors]

* ingest: the same events (bench.ingest's realistic mix, 6 partitions) consumed by one
  instance, then by two in one group, each a `StreamProcessor` in its own process (each
  one-instance run twice, alternating with the others, the better kept); the
  time from start to the last event consumed (both include joining the group). Also one
  instance with checkpoints every hour (no changelog writes during the run) against the
  default commit interval: the changelog's cost on ingest. With `--reference-actors`,
  three more pairs of one-instance runs (commit every 1 s), alternating the compiled actor
  core and the Python reference (`audience.use_compiled(False)`): the core's share of the
  cost, by the median of each, in the same run.
* failover: two service processes own `--accounts` accounts (one event each); one is
  killed with SIGKILL; the time until every sampled account of its partitions answers
  through the other, and that instance's restore rate from the changelog. Measured
  without and with a standby replica (ENGAGEMENT_STANDBY_REPLICAS=1), both with a 6 s
  session timeout (the broker's minimum), which the failover time includes.
* queries: p50/p99 of the same score asked from its owner and from the other instance.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.ingest import BOOTSTRAP, REPO, ensure_broker, realistic_events
from service.routing import partition_for

PARTITIONS = 6


async def create_topic(topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1),
                                   NewTopic(f"{topic}.dlq", 1, 1)])
    finally:
        await admin.close()


async def produce(topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=50, acks=1,
                                max_batch_size=1 << 20)
    await producer.start()
    try:
        for value in values:
            key = orjson.loads(value)["account_id"].encode()
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def consume_child(topic: str, group: str, progress: Path, commit_s: float,
                        reference_actors: bool = False) -> None:
    """One instance: a StreamProcessor writing how many events it consumed to a file."""
    from service.consumer import StreamProcessor
    from service.engine import audience
    from service.metrics import Metrics
    from service.settings import Settings

    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(kafka_bootstrap_servers=BOOTSTRAP, events_topic=topic,
                            dlq_topic=f"{topic}.dlq", consumer_group=group,
                            scores_topic=f"{topic}.scores",
                            snapshot_dir=Path(folder), snapshot_interval_s=3600,
                            expiry_interval_s=3600, commit_interval_s=commit_s,
                            advertised_url=f"http://bench-{os.getpid()}")
        if reference_actors:
            audience.use_compiled(False)
        processor = StreamProcessor(settings, Metrics())
        task = asyncio.create_task(processor.run())
        while not task.done():
            consumed = sum(s.position or 0 for s in processor.states.values())
            progress.write_text(f"{consumed} {time.process_time()}")
            await asyncio.sleep(0.02)
        task.result()


@dataclass(frozen=True)
class IngestRun:
    total_s: float  # from starting the instances to the last event consumed
    consuming_s: float  # from the first event consumed to the last
    cpu_s: float  # the instances' CPU time over that span, summed
    broker_cpu_s: float  # the broker's (every local Kafka JVM's) over the same span
    # From the moment every instance consumes (the group formed, its partitions moved
    # and restored) to the last event: the steady state that scaling is about.
    formed_s: float
    formed_events: int


def broker_cpu_s() -> float:
    """CPU seconds used so far by the local Kafka brokers (JVMs running kafka.Kafka): on
    one machine they share the cores with the instances."""
    total = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if b"kafka.Kafka" not in (proc / "cmdline").read_bytes():
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def _progress(path: Path) -> tuple[int, float]:
    consumed, cpu = (path.read_text() or "0 0").split()
    return int(consumed), float(cpu)


def ingest(topic: str, count: int, instances: int, commit_s: float,
           reference_actors: bool = False) -> IngestRun:
    """One group of `instances` consuming `count` events. The rate that matters is once
    the group has formed: process start-up, joining and the first assignment are not
    throughput. CPU time is what the machine's other load disturbs least."""
    group = f"bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as folder:
        files = [Path(folder) / f"progress-{n}" for n in range(instances)]
        started = time.perf_counter()
        first_consumed: float | None = None
        formed: tuple[float, int] | None = None
        broker_at_first = broker_cpu_s()
        cpu_at_first: dict[Path, float] = {}
        children = [subprocess.Popen(
            [sys.executable, "-m", "bench.cluster", "--child", topic, "--group", group,
             "--progress", str(path), "--commit-s", str(commit_s),
             *(["--reference-actors"] if reference_actors else [])], cwd=REPO,
            env={**os.environ, "ENGAGEMENT_LOG_LEVEL": "WARNING"}) for path in files]
        try:
            while True:
                progress = {path: _progress(path) for path in files if path.exists()}
                now = time.perf_counter()
                for path, (_, cpu) in progress.items():
                    cpu_at_first.setdefault(path, cpu)  # before its first event, or at it
                done = sum(consumed for consumed, _ in progress.values())
                if done and first_consumed is None:
                    first_consumed = now
                    broker_at_first = broker_cpu_s()
                if formed is None and len(progress) == instances and all(
                        consumed for consumed, _ in progress.values()):
                    formed = (now, done)
                if done >= count:
                    cpu = sum(cpu - cpu_at_first[path] for path, (_, cpu) in progress.items())
                    formed_at, formed_done = formed or (now, done)
                    return IngestRun(now - started, now - (first_consumed or started), cpu,
                                     broker_cpu_s() - broker_at_first,
                                     now - formed_at, count - formed_done)
                if any(child.poll() is not None for child in children):
                    raise RuntimeError("an instance exited")
                time.sleep(0.01)
        finally:
            for child in children:
                child.send_signal(signal.SIGKILL)
                child.wait()


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


SESSION_TIMEOUT_S = 6


def start_service(topic: str, folder: Path, name: str, standby: int = 0
                  ) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "ENGAGEMENT_KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP,
           "ENGAGEMENT_EVENTS_TOPIC": topic, "ENGAGEMENT_DLQ_TOPIC": f"{topic}.dlq",
           "ENGAGEMENT_SCORES_TOPIC": f"{topic}.scores",
           "ENGAGEMENT_CONSUMER_GROUP": f"group-{topic}", "ENGAGEMENT_HTTP_PORT": str(port),
           "ENGAGEMENT_HTTP_HOST": "127.0.0.1", "ENGAGEMENT_ADVERTISED_URL": url,
           "ENGAGEMENT_SNAPSHOT_DIR": str(folder / name), "ENGAGEMENT_LOG_FORMAT": "json",
           "ENGAGEMENT_HOT_ACCOUNTS": "2000", "ENGAGEMENT_SNAPSHOT_INTERVAL_S": "3600",
           "ENGAGEMENT_STANDBY_REPLICAS": str(standby),
           # The account cap is split over the partitions; 1 M accounts spread unevenly.
           "ENGAGEMENT_MAX_ACCOUNTS": "4000000",
           "ENGAGEMENT_SESSION_TIMEOUT_S": str(SESSION_TIMEOUT_S)}
    log = open(folder / f"{name}.log", "wb")  # noqa: SIM115 - the child owns it
    process = subprocess.Popen([sys.executable, "-m", "service"], env=env, stdout=log,
                               stderr=log, cwd=REPO)
    return process, url


def wait_ready(url: str, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready")


def cluster_owners(url: str) -> dict[int, str]:
    body = httpx.get(f"{url}/cluster", timeout=10).json()
    return {p["partition"]: p["owner"] for p in body["partitions"]}


def failover_and_queries(accounts: int, standby: int = 0) -> dict[str, float]:
    topic = f"bench-failover-{uuid.uuid4().hex[:8]}"
    asyncio.run(create_topic(topic))
    start = time.time() - 3600
    values = [orjson.dumps({
        "event_id": f"f-{n}", "type": "followers", "account_id": f"acct-{n}",
        "followers": 1000 + n % 5000,
        "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + n % 3000))})
        for n in range(accounts)]
    asyncio.run(produce(topic, values))
    result: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        a, a_url = start_service(topic, folder, "a", standby)
        b, b_url = start_service(topic, folder, "b", standby)
        try:
            wait_ready(a_url)
            wait_ready(b_url)
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:  # every account consumed and committed
                partitions = httpx.get(f"{a_url}/cluster", timeout=10).json()["partitions"]
                consumed = all(p["state"] == "active" and p["lag_messages"] == 0
                               for p in partitions)
                if consumed and (not standby or standbys_caught_up(a_url, b_url)):
                    break
                time.sleep(1)
            time.sleep(3)  # a few checkpoints: everything is in the changelog
            owners = cluster_owners(a_url)
            rng = random.Random(1)
            sample = rng.sample(range(accounts), min(accounts, 4000))
            of_a = [f"acct-{n}" for n in sample
                    if owners[partition_for(f"acct-{n}", PARTITIONS)] == a_url][:1000]
            of_b = [f"acct-{n}" for n in sample
                    if owners[partition_for(f"acct-{n}", PARTITIONS)] == b_url]
            result.update(query_latencies(a_url, b_url, of_a))
            moved = sum(1 for n in range(accounts)
                        if owners[partition_for(f"acct-{n}", PARTITIONS)] == b_url)
            log_before_kill = (folder / "a.log").stat().st_size
            b.send_signal(signal.SIGKILL)
            b.wait()
            killed = time.perf_counter()
            # One probe per moved partition (a partition answers whole once restored),
            # then every sampled account, to be sure.
            probes = {partition_for(acct, PARTITIONS): acct for acct in of_b}
            pending = list(probes.values())
            with httpx.Client(timeout=5) as client:
                while pending and time.perf_counter() - killed < 600:
                    pending = [acct for acct in pending
                               if client.get(f"{a_url}/accounts/{acct}/score").status_code
                               != 200]
                    time.sleep(0.02)
                result["failover_s"] = time.perf_counter() - killed
                missing = [acct for acct in of_b
                           if client.get(f"{a_url}/accounts/{acct}/score").status_code != 200]
                assert not missing, f"{len(missing)} accounts do not answer after failover"
            restored_lines = [orjson.loads(line) for line in (folder / "a.log").read_bytes()
                              .splitlines() if b'"partition restored"' in line]
            result["takeover_phases_s"] = restored_lines[-1]  # type: ignore[assignment]
            # Then each moved partition folds again what the dead one had not committed.
            result["catch_up_s"] = max((orjson.loads(line)["seconds"] for line in (
                folder / "a.log").read_bytes()[log_before_kill:].splitlines()
                if b'"partition caught up after the move"' in line), default=None)
            result["session_timeout_s"] = SESSION_TIMEOUT_S
            result["moved_accounts"] = moved
            restored = [orjson.loads(line) for line in (folder / "a.log").read_bytes()
                        .splitlines() if b'"partition restored"' in line]
            late = [r for r in restored if r["changelog_records"] > 0]
            result["restored_from_standby"] = sum(1 for r in late if r.get("from_standby"))
            if late:
                records = sum(r["accounts"] for r in late)
                seconds = max(r["seconds"] for r in late)
                result["restore_accounts_per_s"] = records / seconds
                result["restore_s"] = seconds
        finally:
            for process in (a, b):
                if process.poll() is None:
                    process.send_signal(signal.SIGKILL)
                    process.wait()
            for name in ("a", "b"):  # kept for a look at what happened
                (folder / f"{name}.log").replace(
                    Path(tempfile.gettempdir()) / f"bench-cluster-standby{standby}-{name}.log")
    return result


def standbys_caught_up(*urls: str) -> bool:
    partitions = [p for url in urls
                  for p in httpx.get(f"{url}/cluster/local", timeout=10).json()["partitions"]
                  if p["state"] == "standby"]
    return bool(partitions) and all(p["lag_messages"] == 0 for p in partitions)


def query_latencies(owner: str, other: str, accounts: list[str]) -> dict[str, float]:
    timings: dict[str, list[float]] = {"local": [], "forwarded": []}
    with httpx.Client(timeout=5) as client:
        for _ in range(3):
            for account in accounts:
                for kind, url in (("local", owner), ("forwarded", other)):
                    started = time.perf_counter()
                    response = client.get(f"{url}/accounts/{account}/score")
                    timings[kind].append(time.perf_counter() - started)
                    assert response.status_code == 200, response.text
    out = {}
    for kind, values in timings.items():
        values.sort()
        out[f"{kind}_p50_ms"] = statistics.median(values) * 1000
        out[f"{kind}_p99_ms"] = values[int(len(values) * 0.99)] * 1000
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=200_000)
    parser.add_argument("--failover-only", action="store_true",
                        help="only failover, without and with a standby replica")
    parser.add_argument("--ingest-only", action="store_true",
                        help="only ingest: one and two instances, and the checkpoints' cost")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--group", help=argparse.SUPPRESS)
    parser.add_argument("--progress", help=argparse.SUPPRESS)
    parser.add_argument("--commit-s", type=float, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument("--reference-actors", action="store_true",
                        help="one more ingest run with the actor side in Python")
    arguments = parser.parse_args()
    if arguments.child:
        asyncio.run(consume_child(arguments.child, arguments.group,
                                  Path(arguments.progress), arguments.commit_s,
                                  arguments.reference_actors))
        return
    ensure_broker()
    if arguments.failover_only:
        print(json.dumps({"without_standby": failover_and_queries(arguments.accounts, 0),
                          "with_standby": failover_and_queries(arguments.accounts, 1)},
                         indent=2))
        return
    topic = f"bench-cluster-{uuid.uuid4().hex[:8]}"
    asyncio.run(create_topic(topic))
    asyncio.run(produce(topic, realistic_events(arguments.events)))
    count = arguments.events
    # The first run after producing is the slowest (the broker's and the machine's
    # caches): each one-instance run twice, in alternating order, and the better kept.
    # The faster one instance makes "two over one" smaller; the lower CPU of each makes
    # the checkpoints' cost a difference of like with like.
    one_a, quiet_a, two, one_b, quiet_b = (
        ingest(topic, count, instances, commit_s) for instances, commit_s in
        ((1, 1.0), (1, 3600.0), (2, 1.0), (1, 1.0), (1, 3600.0)))
    one = max(one_a, one_b, key=lambda run: run.formed_events / run.formed_s)
    quiet = min(quiet_a, quiet_b, key=lambda run: run.cpu_s)
    one_cpu_s = min(one_a.cpu_s, one_b.cpu_s)
    figures: dict[str, object] = {
        "events": count,
        # Rates once the group has formed: every instance consuming, to the last event ...
        "one_instance_events_per_s": one.formed_events / one.formed_s,
        "two_instances_events_per_s": two.formed_events / two.formed_s,
        "two_over_one": (two.formed_events / two.formed_s) / (one.formed_events / one.formed_s),
        "two_instances_events_after_forming": two.formed_events,
        "one_instance_without_checkpoints_events_per_s": count / quiet.consuming_s,
        "changelog_overhead": min(one_a.consuming_s, one_b.consuming_s)
        / min(quiet_a.consuming_s, quiet_b.consuming_s) - 1,
        # ... from the first event consumed (the second instance joining mid-run) ...
        "from_first_event": {"two_over_one": one.consuming_s / two.consuming_s},
        # ... by the instances' CPU time per event (less disturbed by other load) ...
        "cpu_us_per_event": {"one_instance": one_cpu_s / count * 1e6,
                             "two_instances": two.cpu_s / count * 1e6,
                             "without_checkpoints": quiet.cpu_s / count * 1e6},
        "changelog_overhead_by_cpu": one_cpu_s / quiet.cpu_s - 1,
        "runs_of_one_instance": {
            "commit_1s": [{"events_per_s": run.formed_events / run.formed_s,
                           "cpu_us_per_event": run.cpu_s / count * 1e6} for run in (one_a, one_b)],
            "commit_1h": [{"events_per_s": count / run.consuming_s,
                           "cpu_us_per_event": run.cpu_s / count * 1e6}
                          for run in (quiet_a, quiet_b)]},
        # The cores the instances kept busy: below 1 per instance, they waited.
        "instance_cores": {"one_instance": one.cpu_s / one.consuming_s,
                           "two_instances": two.cpu_s / two.consuming_s},
        # The cores the broker used meanwhile: what the instances could not have.
        "broker_cores": {"one_instance": one.broker_cpu_s / one.consuming_s,
                         "two_instances": two.broker_cpu_s / two.consuming_s},
        "load_average": os.getloadavg(),
        # ... and from starting the processes, start-up and the group's forming included.
        "with_start_up": {"one_instance_s": one.total_s, "two_instances_s": two.total_s,
                          "two_over_one": one.total_s / two.total_s,
                          "without_checkpoints_s": quiet.total_s},
    }
    if arguments.reference_actors:
        cpu: dict[str, list[float]] = {"compiled": [], "reference": []}
        for _ in range(3):
            for name in cpu:
                run = ingest(topic, count, 1, 1.0, reference_actors=name == "reference")
                cpu[name].append(run.cpu_s / count * 1e6)
        medians = {name: statistics.median(values) for name, values in cpu.items()}
        quiet_us = quiet.cpu_s / count * 1e6
        figures["actor_core_cpu_us_per_event"] = {
            **cpu, "load_average": os.getloadavg(),
            "changelog_overhead_by_cpu": {name: median / quiet_us - 1
                                          for name, median in medians.items()},
            "compiled_saves_cpu": 1 - medians["compiled"] / medians["reference"]}
    if not arguments.ingest_only:
        figures.update(failover_and_queries(arguments.accounts))
        figures["with_standby"] = failover_and_queries(arguments.accounts, 1)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
