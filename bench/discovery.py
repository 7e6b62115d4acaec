"""Discovery over many accounts: index maintenance, queries in-process and over HTTP.

    python -m bench.discovery [--accounts 1000000] [--repeats 200] [--http-seconds 6]
                              [--ingest-accounts 600] [--batch-seconds 6]
                              [--rebuild-accounts 0]

0. Batch: POST /accounts/scores with 100 known ids a request over 100,000 synthetic
   scores, alternating with the bare FastAPI endpoint as in 3.

1. Builds one `DiscoveryIndex` of `--accounts` synthetic scores (tiers, credibility,
   engagement, confidence and topics spread like the demo's), timing each `update`; then
   re-indexes a tenth of them with moved scores (the steady state: an account re-scored
   after new events).
2. Runs typical queries against the index in-process, each `--repeats` times from random
   depths (first pages and pages deep in the order), and reports p50/p99.
3. Serves `GET /accounts` over the same index (bench/discovery_app.py, uvicorn, the
   service's router and renderer) and drives it with a mix of those queries over
   keep-alive connections, alternating one-second rounds with the constant-JSON bare
   FastAPI endpoint (bench/bare_app.py) under the same load.
4. Ingest share: folds a demo stream into an engine in batches of 2,000 events (the
   consumer's fetch size) and brings an index up to date for the accounts changed since
   the last refresh, after every batch and after every 40 batches (about one second of
   the pipeline at full speed: the service refreshes once a second); reports the cost
   against the engine's ingest in the same run, split into re-scoring (which the change
   stream needs as well), topics and the index update proper. A query before each refresh
   stands for someone paging: every change keeps the version it replaces, and the prune
   that later drops them is counted with the update.
5. With --rebuild-accounts N: a partition's first build after a restore at N accounts
   (`rebuild`).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

import orjson
from sortedcontainers import SortedList

from bench.queries import drive, free_port, summary, wait_http
from bench.workload import fresh_engine, populate
from service.discovery_build import ScoringChild
from service.discovery_state import MAINTENANCE_SHARE, MAX_VERSIONS_KEPT
from service.engine import Engine, EngineConfig
from service.engine.dedupe import EventIds
from service.engine.discovery import (
    LOAD_STEP_ELEMENTS,
    Cursor,
    DiscoveryIndex,
    DiscoveryQuery,
    IndexEntry,
    Sort,
    _Orders,
    encode_cursor,
    entry_of,
    index_topics,
)
from service.engine.engine import AccountScore
from service.engine.scoring import Component, Counts, Credibility, Engagement
from service.engine.tiers import ARTICLE_TIERS, expected_engagement_rate
from service.events import Event, decode_event
from service.simulation import TOPICS, account_events, demo_accounts

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RARE_TOPICS = tuple(f"rare-{number}" for number in range(50))
QUERIES: dict[str, DiscoveryQuery] = {
    "top 20 by credibility": DiscoveryQuery(limit=20),
    "micro + topic + min_credibility 70 (the issue's example)": DiscoveryQuery(
        tiers=frozenset({"micro"}), topic="veganism", min_credibility=70, limit=20),
    "micro, by engagement rate, 50": DiscoveryQuery(
        tiers=frozenset({"micro"}), sort=Sort("engagement_rate", True), limit=50),
    "topic + followers 1k-10k, by followers": DiscoveryQuery(
        topic="gardening", min_followers=1_000, max_followers=10_000,
        sort=Sort("followers", True), limit=20),
    "min_confidence 0.8 + min rate 5 %, 200": DiscoveryQuery(
        min_confidence=0.8, min_engagement_rate=0.05, limit=200),
    "nano + mid, ascending credibility": DiscoveryQuery(
        tiers=frozenset({"nano", "mid"}), sort=Sort("credibility", False), limit=20),
    "small topic (~0.2 %)": DiscoveryQuery(topic="rare-7", limit=20),
    "rare mix: mega + topic, by rate": DiscoveryQuery(
        tiers=frozenset({"mega"}), topic="climate", min_credibility=60,
        sort=Sort("engagement_rate", True), limit=20),
}


def shared_components() -> dict[str, Component]:
    """The seven components of a real score, shared by every synthetic one: the bodies
    render at their real size without a million copies of them."""
    rng = random.Random(5)
    engine = Engine()
    account, profile = demo_accounts(1, rng)[0]
    for event in account_events(account, profile, 1.8e9, 86_400, rng):
        result = decode_event(account.encode(), orjson.dumps(event), now=2e9,
                              max_event_bytes=8192, max_future_skew_s=300)
        assert isinstance(result, Event.__args__)  # type: ignore[attr-defined]
        engine.apply(result)
    score = engine.score(account)
    assert score is not None
    return score.credibility.components


def synthetic_scores(count: int, seed: int = 1) -> list[tuple[AccountScore, tuple[str, ...]]]:
    rng = random.Random(seed)
    components = shared_components()
    counts = Counts(posts=6, likes=1_075, comments=235, shares=93, sponsored_posts=1,
                    awaiting_post=0)
    scores = []
    for number in range(count):
        followers = int(10 ** rng.uniform(2.0, 6.7)) if rng.random() < 0.97 else None
        expected = None if followers is None else expected_engagement_rate(followers)
        rate = None if expected is None else round(expected * rng.lognormvariate(0, 0.6), 6)
        credibility = round(min(100.0, max(0.0, rng.gauss(55, 15))), 2)
        topics = tuple(rng.sample(TOPICS, rng.choice((1, 1, 1, 2, 3))))
        if rng.random() < 0.1:
            topics += (rng.choice(RARE_TOPICS),)
        scores.append((AccountScore(
            account_id=f"acct-{number:07d}", partition=0,
            tier=ARTICLE_TIERS.tier_for(followers), tier_scheme="article",
            followers=followers, counts=counts,
            engagement=Engagement(rate=rate, weighted_rate=rate, expected_rate=expected,
                                  posts=6, posts_with_followers=6,
                                  mean_followers_at_post=followers),
            credibility=Credibility(credibility, round(rng.uniform(0.3, 0.95), 4),
                                    components),
            window_days=30.0, window_start=1.8e9, as_of=1.8e9 + 30 * 86_400,
        ), topics))
    return scores


def moved(score: AccountScore, rng: random.Random) -> AccountScore:
    """The same account after new events: credibility and rate moved a little."""
    rate = score.engagement.rate
    new_rate = None if rate is None else round(rate * rng.uniform(0.95, 1.05), 6)
    credibility = round(min(100.0, max(0.0, score.credibility.score + rng.gauss(0, 2))), 2)
    return AccountScore(
        score.account_id, score.partition, score.tier, score.tier_scheme, score.followers,
        score.counts,
        Engagement(new_rate, new_rate, score.engagement.expected_rate, 6, 6,
                   score.engagement.mean_followers_at_post),
        Credibility(credibility, score.credibility.confidence, score.credibility.components),
        score.window_days, score.window_start, score.as_of)


def resident_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def build(count: int) -> tuple[DiscoveryIndex, list[tuple[AccountScore, tuple[str, ...]]]]:
    scores = synthetic_scores(count)
    gc.collect()
    resident = resident_bytes()
    index = DiscoveryIndex()
    gc.disable()  # the collector's passes over a growing heap are not the index's cost
    started = time.perf_counter()
    for score, topics in scores:
        index.update(score, topics)
    took = time.perf_counter() - started
    gc.enable()
    gc.collect()
    print(f"index memory: {(resident_bytes() - resident) / count:.0f} bytes per account "
          f"(resident set before and after the build)")
    # As the service does after a restore: what is already there is not rescanned.
    gc.freeze()
    print(f"built: {count:,} accounts in {took:.1f} s ({took / count * 1e6:.1f} µs an insert)")
    return index, scores


def maintenance(index: DiscoveryIndex, scores: list[tuple[AccountScore, tuple[str, ...]]],
                share: float = 0.1) -> float:
    """Re-indexes `share` of the accounts with moved scores while someone pages (each
    change keeps the version it replaces), then prunes down to the most versions a
    service index keeps: the queries after it walk past those, as in the service."""
    rng = random.Random(2)
    chosen = rng.sample(scores, int(len(scores) * share))
    changed = [(moved(score, rng), topics) for score, topics in chosen]
    index.query(DiscoveryQuery())  # a reader: versions are kept from here on
    gc.collect()
    resident = resident_bytes()
    started = time.perf_counter()
    for score, topics in changed:
        index.update(score, topics)
    took = (time.perf_counter() - started) / len(changed)
    del chosen, changed
    gc.collect()
    kept = index.versions_kept
    print(f"re-indexed: {kept:,} accounts with moved scores, {took * 1e6:.1f} µs each; "
          f"{(resident_bytes() - resident) / max(1, kept):.0f} bytes per version kept "
          f"(resident set before and after)")
    started = time.perf_counter()
    index.keep_at_most(MAX_VERSIONS_KEPT)
    pruned = index.prune()
    took_prune = time.perf_counter() - started
    print(f"pruned: {pruned:,} replaced versions, {took_prune / max(1, pruned) * 1e6:.1f} µs "
          f"each; {index.versions_kept:,} kept for cursors during the queries")
    return took


def random_cursor(index: DiscoveryIndex, query: DiscoveryQuery, rng: random.Random
                  ) -> Cursor | None:
    """A cursor as deep as a client paging on would reach: the first page half the time,
    else up to 50 pages in."""
    if rng.random() < 0.5:
        return None
    after = None
    for _ in range(rng.randrange(1, 50)):
        page = index.query(DiscoveryQuery(**{**_fields(query), "after": after}))
        if page.resume_after is None:
            break
        after = page.resume_after
    return after


def _fields(query: DiscoveryQuery) -> dict[str, object]:
    return {name: getattr(query, name) for name in query.__dataclass_fields__}


def in_process(index: DiscoveryIndex, repeats: int) -> None:
    rng = random.Random(3)
    print(f"load average before the queries: {os.getloadavg()[0]:.1f} on {os.cpu_count()} "
          f"cores")
    print("| query | p50 | p99 | items (median) | accounts examined (max) |")
    print("|---|---|---|---|---|")
    for name, query in QUERIES.items():
        timings, items, examined = [], [], []
        cursors = [random_cursor(index, query, rng) for _ in range(repeats)]
        for after in cursors:
            asked = DiscoveryQuery(**{**_fields(query), "after": after})
            started = time.perf_counter()
            page = index.query(asked)
            timings.append(time.perf_counter() - started)
            items.append(len(page.hits))
            examined.append(page.examined)
        print(f"| {name} | {percentile(timings, 0.5) * 1e3:.2f} ms | "
              f"{percentile(timings, 0.99) * 1e3:.2f} ms | {sorted(items)[len(items) // 2]} | "
              f"{max(examined):,} |")


def query_string(query: DiscoveryQuery, after: Cursor | None) -> str:
    parts = [f"sort={query.sort}", f"limit={query.limit}"]
    parts += [f"tier={tier}" for tier in sorted(query.tiers)]
    for name in ("topic", "min_credibility", "min_followers", "max_followers",
                 "min_engagement_rate", "min_confidence"):
        value = getattr(query, name)
        if value is not None:
            parts.append(f"{name}={value}")
    if after is not None:
        # The position only: the served index is another one, with its own generations
        # (a cursor pinning this process's would be refused there with a 410).
        position = Cursor(after.value, after.account_id)
        parts.append(f"cursor={encode_cursor(query.sort, position)}")
    return "/accounts?" + "&".join(parts)


def over_http(index: DiscoveryIndex, accounts: int, seconds: float,
              connections: int) -> None:
    rng = random.Random(4)
    paths = [query_string(query, random_cursor(index, query, rng))
             for query in QUERIES.values() if query.limit <= 50 for _ in range(20)]
    app_port, bare_port = free_port(), free_port()
    env = {**os.environ, "BENCH_DISCOVERY_ACCOUNTS": str(accounts)}
    served = subprocess.Popen([sys.executable, "-m", "uvicorn", "bench.discovery_app:app",
                               "--host", "127.0.0.1", "--port", str(app_port),
                               "--no-access-log", "--log-level", "warning"], cwd=REPO, env=env)
    bare = subprocess.Popen([sys.executable, "-m", "uvicorn", "bench.bare_app:app",
                             "--host", "127.0.0.1", "--port", str(bare_port),
                             "--no-access-log", "--log-level", "warning"], cwd=REPO)
    try:
        wait_http(f"http://127.0.0.1:{bare_port}/accounts/x/score")
        wait_http(f"http://127.0.0.1:{app_port}/accounts?limit=1", timeout_s=600)
        timings: dict[int, list[float]] = {app_port: [], bare_port: []}
        failures = dict.fromkeys(timings, 0)
        rounds = max(1, round(seconds))
        bare_paths = ["/accounts/x/score"]
        for _ in range(rounds):
            for port, used in ((app_port, paths), (bare_port, bare_paths)):
                failures[port] += asyncio.run(drive(port, used, seconds / rounds,
                                                    connections, timings[port]))
        found = summary(timings[app_port], seconds, failures[app_port])
        baseline = summary(timings[bare_port], seconds, failures[bare_port])
    finally:
        served.terminate()
        bare.terminate()
        served.wait(30)
        bare.wait(30)
    print(f"\nover HTTP: {connections} keep-alive connections, {seconds:g} s each in "
          f"{rounds} alternating rounds; {len(paths)} discovery URLs (the queries above "
          f"with limit <= 50, first and deep pages)")
    print("| endpoint | requests/s | p50 | p99 | non-200 |")
    print("|---|---|---|---|---|")
    for name, result in ((f"GET /accounts over {accounts:,} accounts", found),
                         ("constant JSON (bare FastAPI)", baseline)):
        print(f"| {name} | {result['rps']:,.0f} | {result['p50_ms']:.2f} ms | "
              f"{result['p99_ms']:.2f} ms | {result['failures']} |")
    print(f"discovery / bare throughput: {found['rps'] / baseline['rps']:.2f}x")


async def post_connection(port: int, bodies: list[bytes], until: float,
                          latencies: list[float]) -> int:
    """Like bench.queries.one_connection, for POST /accounts/scores."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    failures = 0
    rng = random.Random()
    try:
        while time.perf_counter() < until:
            body = rng.choice(bodies)
            started = time.perf_counter()
            writer.write(b"POST /accounts/scores HTTP/1.1\r\nHost: bench\r\n"
                         b"Content-Type: application/json\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
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


async def drive_posts(port: int, bodies: list[bytes], seconds: float, connections: int,
                      latencies: list[float]) -> int:
    until = time.perf_counter() + seconds
    failures = await asyncio.gather(*(post_connection(port, bodies, until, latencies)
                                      for _ in range(connections)))
    return sum(failures)


def batch_over_http(accounts: int, seconds: float, connections: int, ids: int = 100) -> None:
    """POST /accounts/scores with `ids` known ids against the bare endpoint, alternating."""
    rng = random.Random(8)
    bodies = [orjson.dumps({"account_ids": [f"acct-{rng.randrange(accounts):07d}"
                                            for _ in range(ids)]}) for _ in range(50)]
    app_port, bare_port = free_port(), free_port()
    env = {**os.environ, "BENCH_DISCOVERY_ACCOUNTS": str(accounts)}
    served = subprocess.Popen([sys.executable, "-m", "uvicorn", "bench.discovery_app:app",
                               "--host", "127.0.0.1", "--port", str(app_port),
                               "--no-access-log", "--log-level", "warning"], cwd=REPO, env=env)
    bare = subprocess.Popen([sys.executable, "-m", "uvicorn", "bench.bare_app:app",
                             "--host", "127.0.0.1", "--port", str(bare_port),
                             "--no-access-log", "--log-level", "warning"], cwd=REPO)
    try:
        wait_http(f"http://127.0.0.1:{bare_port}/accounts/x/score")
        wait_http(f"http://127.0.0.1:{app_port}/accounts?limit=1", timeout_s=600)
        timings: dict[int, list[float]] = {app_port: [], bare_port: []}
        failures = dict.fromkeys(timings, 0)
        rounds = max(1, round(seconds))
        for _ in range(rounds):
            failures[app_port] += asyncio.run(drive_posts(
                app_port, bodies, seconds / rounds, connections, timings[app_port]))
            failures[bare_port] += asyncio.run(drive(
                bare_port, ["/accounts/x/score"], seconds / rounds, connections,
                timings[bare_port]))
        batch = summary(timings[app_port], seconds, failures[app_port])
        baseline = summary(timings[bare_port], seconds, failures[bare_port])
    finally:
        served.terminate()
        bare.terminate()
        served.wait(30)
        bare.wait(30)
    print(f"\nbatch over HTTP: {ids} known ids a request, {accounts:,} accounts, "
          f"{connections} keep-alive connections, {seconds:g} s each in {rounds} rounds")
    print("| endpoint | requests/s | p50 | p99 | non-200 |")
    print("|---|---|---|---|---|")
    for name, result in ((f"POST /accounts/scores ({ids} ids)", batch),
                         ("constant JSON (bare FastAPI)", baseline)):
        print(f"| {name} | {result['rps']:,.0f} | {result['p50_ms']:.2f} ms | "
              f"{result['p99_ms']:.2f} ms | {result['failures']} |")
    print(f"batch / bare throughput: {batch['rps'] / baseline['rps']:.2f}x")


def pairwise_loading(index: DiscoveryIndex, entries: Iterable[tuple[str, IndexEntry]],
                     step: int = LOAD_STEP_ELEMENTS) -> Iterator[None]:
    """The load before its steps were bounded (`DiscoveryIndex.loading` at a91a3dd), the
    baseline of the same run: runs merged pairwise by timsort, each merge and each
    SortedList made in one step, linear in the order's size."""
    runs: dict[tuple[str, int | str, bool], list[list[Any]]] = {}
    yield from index.placed_in_runs(entries, runs, step)  # the same first phase
    for (tier, key, unknown), held in runs.items():
        for run in held:
            run.sort()
            yield
        while len(held) > 1:
            held.sort(key=len)
            first, second = held.pop(0), held.pop(0)
            first += second
            first.sort()
            held.append(first)
            yield
        orders = index._tiers.get(tier)
        if orders is None:
            orders = index._tiers[tier] = _Orders()
        if isinstance(key, str):
            orders.topics[key] = SortedList(held[0])
        elif unknown:
            orders.unknown[key].update(held[0])
        else:
            orders.known[key].update(held[0])
        yield


def timed_steps(steps: Iterator[None]) -> tuple[list[float], list[float]]:
    """Runs a load's steps; each one's wall and CPU time. The collector is off: in the
    service it is paced (service/runtime_tuning.py), and a full collection over the new
    entries would be the collector's pause, not a step's."""
    wall: list[float] = []
    cpu: list[float] = []
    gc.disable()
    try:
        while True:
            started, started_cpu = time.perf_counter(), time.process_time()
            if next(steps, StopIteration) is StopIteration:
                break
            wall.append(time.perf_counter() - started)
            cpu.append(time.process_time() - started_cpu)
    finally:
        gc.enable()
    return wall, cpu


def sorted_lists(index: DiscoveryIndex) -> dict[tuple[str, str], list[Any]]:
    return {(tier, f"{kind}:{key}"): list(order)
            for tier, orders in index._tiers.items()
            for kind, keyed in (("known", enumerate(orders.known)),
                                ("unknown", enumerate(orders.unknown)),
                                ("topic", orders.topics.items()))
            for key, order in keyed}


def rebuild(accounts: int, chunk: int = 10_000, sample: int = 100_000) -> None:
    """A partition's first build after a restore, from an engine of `accounts` accounts
    (bench/workload.py's, packed as after a restore). As the service does it: a forked
    child scores every account (service/discovery_build.py) while this process decodes
    the entries it streams back, then loads the index in steps; timed are the child's
    wall time, this process's time (what the event loop pays) and the longest load step.
    Against it: the build on the loop, re-scoring `sample` accounts here for the cost an
    account, and an index made by one `put` an account (the way before) and by one
    `load`. Memory per account of the index made by the load."""
    engine = fresh_engine()
    for first in range(0, accounts, chunk):
        populate(engine, min(chunk, accounts - first), seed=first, first=first, partitions=1)
        for partition_clock in engine.partitions.values():
            # The dedupe memory is not this bench's subject (bench/memory.py does so).
            partition_clock.event_ids = EventIds()
    engine.expire()
    gc.collect()
    gc.freeze()  # as the service does after a restore
    account_ids = list(engine.accounts)
    clock = time.perf_counter
    began = clock()
    child = ScoringChild(engine, account_ids)
    fork_pause = clock() - began
    entries: list[tuple[str, IndexEntry]] = []
    decoding = 0.0
    while not child.done:
        started = clock()
        received = child.receive(5_000)
        decoding += clock() - started
        entries += received
        if not received:
            time.sleep(0.005)
    child_wall = clock() - began
    assert child.failed is None, child.failed
    assert len(entries) == len(account_ids)
    gc.collect()
    resident = resident_bytes()
    index = DiscoveryIndex()
    steps, steps_cpu = timed_steps(index.loading(iter(entries)))
    load = sum(steps)
    per_account = (resident_bytes() - resident) / accounts
    before_index = DiscoveryIndex()
    steps_before, steps_before_cpu = timed_steps(pairwise_loading(before_index,
                                                                  iter(entries)))
    load_before = sum(steps_before)
    assert sorted_lists(before_index) == sorted_lists(index), "the loads differ"
    del before_index
    # Once more after the baseline: neither one has the younger heap to itself.
    again = DiscoveryIndex()
    steps_again, steps_again_cpu = timed_steps(again.loading(iter(entries)))
    del again
    one_by_one = DiscoveryIndex()
    started = clock()
    for account_id, entry in entries:
        one_by_one.put(account_id, entry)
    puts = clock() - started
    del one_by_one
    sampled = account_ids[:sample]
    scoring = topics = 0.0
    for account_id in sampled:
        started = clock()
        score = engine.score(account_id)
        scoring += clock() - started
        assert score is not None
        started = clock()
        entry_of(engine, score)
        topics += clock() - started
    share = MAINTENANCE_SHARE
    print(f"\nrebuild after a restore: {accounts:,} accounts (load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    print("| step | seconds | per account |")
    print("|---|---|---|")
    rows = (
        (f"re-scoring (`Engine.score`, {len(sampled):,} accounts sampled)", scoring,
         len(sampled)),
        ("topics and entry (`entry_of`, the same sample)", topics, len(sampled)),
        ("index: one `put` an account (the way before)", puts, accounts),
        ("index: `loading` before, pairwise merges (all steps)", load_before, accounts),
        ("index: `loading`, all steps", load, accounts),
        ("forked child: fork (the loop's pause)", fork_pause, accounts),
        ("forked child: scoring everything (wall time, other core)", child_wall, accounts),
        ("forked child: decoding its entries here", decoding, accounts),
    )
    for name, seconds, count in rows:
        print(f"| {name} | {seconds:.2f} | {seconds / count * 1e6:.1f} µs |")
    scoring_each = (scoring + topics) / len(sampled)
    before = scoring_each * accounts + puts
    in_loop_now = scoring_each * accounts + load
    forked_loop = fork_pause + decoding + load
    forked_wall = max(child_wall, forked_loop / share)
    print(f"longest load step: {max(steps) * 1e3:.1f} ms wall, {max(steps_cpu) * 1e3:.1f} "
          f"ms CPU ({len(steps)} steps)")
    for name, wall, cpu in (("before, pairwise merges", steps_before, steps_before_cpu),
                            ("now, bounded steps", steps, steps_cpu),
                            ("now again, after the baseline", steps_again,
                             steps_again_cpu)):
        print(f"load {name}: {sum(wall):.2f} s in {len(wall):,} steps; longest step "
              f"{max(wall) * 1e3:.1f} ms wall, {max(cpu) * 1e3:.1f} ms CPU; steps over "
              f"50 ms of CPU: {sum(1 for took in cpu if took > 0.05)}")
    print(f"loop time of the whole build: before {before:.0f} s, in process now "
          f"{in_loop_now:.0f} s, forked {forked_loop:.0f} s")
    print(f"at {share:.0%} of the loop: before {before / share / 60:.1f} min; in process "
          f"now {in_loop_now / share / 60:.1f} min; forked about "
          f"{forked_wall / 60:.1f} min (the child's scoring, or the loop's share of "
          f"decoding and loading, whichever is longer)")
    print(f"index memory after a load: {per_account:.0f} bytes per account")
    del index, entries


def demo_stream(account_count: int) -> list[Event]:
    rng = random.Random(6)
    events: list[Event] = []
    start = time.time() - 10 * 86_400
    for account, profile in demo_accounts(account_count, rng):
        for event in account_events(account, profile, start, 86_400, rng):
            result = decode_event(account.encode(), orjson.dumps(event), now=time.time(),
                                  max_event_bytes=8192, max_future_skew_s=300)
            assert isinstance(result, Event.__args__)  # type: ignore[attr-defined]
            events.append(result)
    events.sort(key=lambda event: event.occurred_at)
    return events


def ingest_share(events: list[Event], account_count: int, refresh_batches: int,
                 batch: int = 2_000) -> None:
    """Engine ingest in batches; every `refresh_batches` batches, the accounts changed
    since the last refresh are re-scored and re-indexed, each once."""
    engine = Engine(EngineConfig())
    index = DiscoveryIndex()
    timed: dict[str, float] = dict.fromkeys(("ingest", "rescore", "topics", "update"), 0.0)
    refreshed = refreshes = 0
    clock = time.perf_counter
    changed: set[str] = set()

    def refresh() -> None:
        for account_id in changed:
            started = clock()
            score = engine.score(account_id)
            timed["rescore"] += clock() - started
            assert score is not None
            account = engine.accounts.get(account_id)
            assert account is not None
            started = clock()
            topics = index_topics(account.window_posts(score.window_start))
            timed["topics"] += clock() - started
            started = clock()
            index.update(score, topics)
            timed["update"] += clock() - started

    for number, first in enumerate(range(0, len(events), batch), start=1):
        chunk = events[first : first + batch]
        started = clock()
        for event in chunk:
            engine.apply(event)
        timed["ingest"] += clock() - started
        changed.update(event.account_id for event in chunk)
        if number % refresh_batches == 0 or first + batch >= len(events):
            # Someone pages all along: every change keeps the version it replaces.
            index.query(DiscoveryQuery())
            refresh()
            refreshed += len(changed)
            refreshes += 1
            changed.clear()
    # The versions kept for cursors leave the lists once expired: index work too.
    started = clock()
    index.expire_before(index.generation)
    index.prune()
    timed["update"] += clock() - started
    ingest = timed["ingest"]
    print(f"\ningest share: {len(events):,} demo events of {account_count} accounts in "
          f"batches of {batch:,}, a refresh every {refresh_batches} batch(es): "
          f"{refreshed / refreshes:.0f} accounts re-indexed per refresh")
    print("| step | seconds | per event | against the engine's ingest |")
    print("|---|---|---|---|")
    for name, label in (("ingest", "engine ingest (`Engine.apply`)"),
                        ("update", "index update (`update`, and `prune` of the versions "
                                   "kept for cursors)"),
                        ("topics", "topics of the window's posts (`index_topics`)"),
                        ("rescore", "re-scoring the changed accounts (`Engine.score`)")):
        seconds = timed[name]
        print(f"| {label} | {seconds:.3f} | {seconds / len(events) * 1e6:.2f} µs | "
              f"{seconds / ingest:.1%} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--http-seconds", type=float, default=6.0)
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--ingest-accounts", type=int, default=600)
    parser.add_argument("--batch-seconds", type=float, default=6.0,
                        help="POST /accounts/scores with 100 ids (over 100 k accounts)")
    parser.add_argument("--rebuild-accounts", type=int, default=0,
                        help="a partition's first build after a restore, at this size")
    arguments = parser.parse_args()
    if arguments.rebuild_accounts > 0:
        rebuild(arguments.rebuild_accounts)
    if arguments.batch_seconds > 0:
        batch_over_http(min(arguments.accounts, 100_000), arguments.batch_seconds,
                        arguments.connections)
    index, scores = build(arguments.accounts)
    maintenance(index, scores)
    del scores
    in_process(index, arguments.repeats)
    if arguments.http_seconds > 0:
        over_http(index, arguments.accounts, arguments.http_seconds, arguments.connections)
    del index
    if arguments.ingest_accounts > 0:
        events = demo_stream(arguments.ingest_accounts)
        for refresh_batches in (1, 40):
            ingest_share(events, arguments.ingest_accounts, refresh_batches)


if __name__ == "__main__":
    main()
