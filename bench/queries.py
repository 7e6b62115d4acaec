"""Score-query throughput and latency while ingest runs, against a bare FastAPI endpoint.

    python -m bench.queries [--seconds 10] [--connections 16] [--accounts 300]

Starts the service (as `python -m service`) on a fresh topic, loads it with demo
accounts, keeps a producer sending live events during the whole run, then drives
`GET /accounts/{id}/score` for random known accounts over keep-alive connections for a
fixed time, and the same client against bench/bare_app.py served by uvicorn with the
same settings, under the same ingest load. The two alternate in rounds (one second
each by default), so that drift on a shared machine falls on both alike. The service's
periodic snapshot is held off during the run (its pause is bench.snapshot's subject):
a forked writer busy on one of two cores would fall on whichever round it hit.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace

import httpx
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.ingest import BOOTSTRAP, REPO, ensure_broker
from service.simulation import account_events, demo_accounts


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def one_connection(port: int, paths: list[str], until: float,
                         latencies: list[float]) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    failures = 0
    rng = random.Random()
    try:
        while time.perf_counter() < until:
            path = rng.choice(paths)
            started = time.perf_counter()
            writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if not head.startswith(b"HTTP/1.1 200"):
                failures += 1
    finally:
        writer.close()
    return failures


async def drive(port: int, paths: list[str], seconds: float, connections: int,
                latencies: list[float]) -> int:
    """One round against one server; returns the non-200 answers."""
    until = time.perf_counter() + seconds
    failures = await asyncio.gather(*(one_connection(port, paths, until, latencies)
                                      for _ in range(connections)))
    return sum(failures)


async def alternate(ports: tuple[int, ...], paths: list[str], seconds: float,
                    round_s: float, connections: int) -> dict[int, dict[str, float]]:
    """Each server in turn, in rounds of about `round_s`, so that the machine's other load
    falls alike on all of them; a summary per port."""
    timings: dict[int, list[float]] = {port: [] for port in ports}
    failures = dict.fromkeys(ports, 0)
    rounds = max(1, round(seconds / round_s))
    for _ in range(rounds):
        for port in ports:
            failures[port] += await drive(port, paths, seconds / rounds, connections,
                                          timings[port])
    return {port: summary(timings[port], seconds, failures[port]) for port in ports}


def summary(latencies: list[float], seconds: float, failures: int) -> dict[str, float]:
    latencies.sort()
    return {"rps": len(latencies) / seconds,
            "p50_ms": latencies[len(latencies) // 2] * 1000,
            "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
            "requests": len(latencies), "failures": failures}


def wait_http(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


async def background_ingest(topic: str, accounts: list[str], stop: asyncio.Event,
                            rate: float) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=20, acks=1)
    await producer.start()
    sent = 0
    rng = random.Random(3)
    started = time.monotonic()
    try:
        while not stop.is_set():
            account = rng.choice(accounts)
            event = {"event_id": f"live-{sent}", "type": "like", "account_id": account,
                     "post_id": f"{account}-post-5", "actor_id": f"fan-{rng.randrange(500)}",
                     "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            await producer.send(topic, orjson.dumps(event), key=account.encode())
            sent += 1
            ahead = sent / rate - (time.monotonic() - started)
            if ahead > 0:
                await asyncio.sleep(ahead)
    finally:
        await producer.stop()
    return sent


def consumed(url: str) -> float:
    total = 0.0
    for line in httpx.get(url).text.splitlines():
        if line.startswith("engagement_events_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def load_accounts(topic: str, count: int) -> tuple[list[str], int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 3, 1)])
    await admin.close()
    rng = random.Random(1)
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=20, acks=1)
    await producer.start()
    chosen = demo_accounts(count, rng)
    events = []
    for account_id, profile in chosen:
        small = replace(profile, interactions_per_post=min(profile.interactions_per_post, 60))
        events += account_events(account_id, small, time.time() - 10 * 86_400, 86_400, rng)
    events.sort(key=lambda event: str(event["occurred_at"]))
    for event in events:
        await producer.send(topic, orjson.dumps(event), key=str(event["account_id"]).encode())
    await producer.stop()
    return [account_id for account_id, _ in chosen], len(events)


async def run(seconds: float, connections: int, accounts: int, rate: float,
              round_s: float) -> None:
    topic = f"bench-queries-{uuid.uuid4().hex[:8]}"
    ids, loaded = await load_accounts(topic, accounts)
    service_port, bare_port = free_port(), free_port()
    folder = tempfile.mkdtemp()
    env = {**os.environ, "ENGAGEMENT_KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP,
           "ENGAGEMENT_EVENTS_TOPIC": topic, "ENGAGEMENT_DLQ_TOPIC": f"{topic}.dlq",
           "ENGAGEMENT_SCORES_TOPIC": f"{topic}.scores",
           "ENGAGEMENT_CONSUMER_GROUP": f"g-{topic}", "ENGAGEMENT_SNAPSHOT_DIR": folder,
           "ENGAGEMENT_HTTP_HOST": "127.0.0.1", "ENGAGEMENT_HTTP_PORT": str(service_port),
           "ENGAGEMENT_LOG_LEVEL": "WARNING", "ENGAGEMENT_SNAPSHOT_INTERVAL_S": "3600"}
    service = subprocess.Popen([sys.executable, "-m", "service"], env=env, cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bare = subprocess.Popen([sys.executable, "-m", "uvicorn", "bench.bare_app:app",
                             "--host", "127.0.0.1", "--port", str(bare_port),
                             "--no-access-log", "--log-level", "warning"], cwd=REPO)
    stop = asyncio.Event()
    try:
        wait_http(f"http://127.0.0.1:{service_port}/readyz")
        wait_http(f"http://127.0.0.1:{bare_port}/accounts/x/score")
        metrics = f"http://127.0.0.1:{service_port}/metrics"
        deadline = time.monotonic() + 300
        while consumed(metrics) < loaded and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        ingest = asyncio.create_task(background_ingest(topic, ids, stop, rate))
        paths = [f"/accounts/{account}/score" for account in ids]
        await asyncio.sleep(1)
        summaries = await alternate((service_port, bare_port), paths, seconds, round_s,
                                    connections)
        score, baseline = summaries[service_port], summaries[bare_port]
        stop.set()
        sent = await ingest
    finally:
        stop.set()
        service.terminate()
        bare.terminate()
        service.wait(30)
        bare.wait(30)
    print(f"ingest during the run: {sent / (2 * seconds + 1):,.0f} events/s produced "
          f"(target {rate:,.0f}); {connections} keep-alive connections, {seconds:g} s each "
          f"in {max(1, round(seconds / round_s))} alternating rounds")
    print("| endpoint | requests/s | p50 | p99 | non-200 |")
    print("|---|---|---|---|---|")
    for name, result in (("GET /accounts/{id}/score (service)", score),
                         ("constant JSON (bare FastAPI)", baseline)):
        print(f"| {name} | {result['rps']:,.0f} | {result['p50_ms']:.2f} ms | "
              f"{result['p99_ms']:.2f} ms | {result['failures']} |")
    print(f"score / bare throughput: {score['rps'] / baseline['rps']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--accounts", type=int, default=300)
    parser.add_argument("--ingest-rate", type=float, default=2_000.0,
                        help="live events per second sent while queries run")
    parser.add_argument("--round-seconds", type=float, default=1.0,
                        help="length of one round before switching to the other server")
    arguments = parser.parse_args()
    ensure_broker()
    asyncio.run(run(arguments.seconds, arguments.connections, arguments.accounts,
                    arguments.ingest_rate, arguments.round_seconds))


if __name__ == "__main__":
    main()
