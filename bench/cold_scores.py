"""Cold scores: what a query for a random account among a million costs.

    python -m bench.cold_scores [--accounts 1000000] [--scores 20000] [--http-seconds 10]
                                [--connections 16] [--skip-http]

The state: `accounts` accounts as bench/workload.py builds them (a follower count, two
posts, six interactions by four actors), then exported and restored as after a restart:
every account packed, none hot, the collector frozen. Two parts, each contender in its
own process:

* the engine: `Engine.score` for random ids (each once, so no answer comes from the
  score cache), with the compiled packed-account codec and with the Python reference,
  in µs (p50, p99, mean), and what the time goes to: unpacking the account
  (`packing.unpack` of the same bytes) and computing the score of an account already
  unpacked (the cache emptied);
* over HTTP: the same restored engine behind `GET /accounts/{id}/score`, answered as the
  service answers it (`engine.score`, then `responses.score_json`), random ids among all
  accounts, against bench/bare_app.py (a constant body) on the same server settings,
  in alternating rounds. The service's own request path (auth, routing to the owner,
  metrics middleware) is bench.queries' subject; this isolates what a cold account
  adds to it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import statistics
import subprocess
import sys
import time
from typing import Any

from bench.ingest import REPO
from bench.queries import drive, free_port, summary, wait_http
from bench.workload import populate
from service.engine import Engine, EngineConfig, packing
from service.engine.persistence import export_accounts, export_partitions, import_state


def restored(accounts: int) -> Engine:
    engine = Engine(EngineConfig(max_accounts=2 * accounts))
    populate(engine, accounts)
    again = import_state(engine.config, export_partitions(engine),
                         list(export_accounts(engine)), engine.changes)
    del engine
    gc.collect()
    gc.freeze()
    return again


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50_us": round(ordered[len(ordered) // 2] * 1e6, 1),
            "p99_us": round(ordered[int(len(ordered) * 0.99)] * 1e6, 1),
            "mean_us": round(statistics.fmean(ordered) * 1e6, 1)}


def engine_child(accounts: int, scores: int, compiled: bool) -> None:
    packing.use_compiled(compiled)
    engine = restored(accounts)
    rng = random.Random(11)
    ids = [f"acct-{index}" for index in rng.sample(range(accounts), scores)]
    cold: list[float] = []
    for account_id in ids:
        started = time.perf_counter()
        engine.score(account_id)
        cold.append(time.perf_counter() - started)
    # The parts, on other accounts (these are hot now): unpacking one, and the score of
    # one already unpacked with the score cache emptied.
    others = [f"acct-{index}" for index in rng.sample(range(accounts), scores)
              if f"acct-{index}" not in set(ids)][: scores // 2]
    unpack_times: list[float] = []
    for account_id in others:
        packed = engine.accounts.packed_one(account_id)
        assert packed is not None
        started = time.perf_counter()
        packing.unpack(account_id, packed)
        unpack_times.append(time.perf_counter() - started)
    compute_times: list[float] = []
    for account_id in ids[: scores // 2]:
        engine._scores.clear()
        started = time.perf_counter()
        engine.score(account_id)
        compute_times.append(time.perf_counter() - started)
    print(json.dumps({"cold_score": percentiles(cold), "unpack": percentiles(unpack_times),
                      "score_of_an_unpacked_account": percentiles(compute_times)}))


def serve_child(accounts: int, port: int) -> None:
    import uvicorn
    from fastapi import FastAPI
    from starlette.responses import Response

    from service.responses import score_json

    engine = restored(accounts)
    app = FastAPI()

    @app.get("/accounts/{account_id}/score")
    async def account_score(account_id: str) -> Response:
        score = engine.score(account_id)
        if score is None:
            return Response(b"{}", status_code=404, media_type="application/json")
        return Response(score_json(score), media_type="application/json")

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def run_engine(accounts: int, scores: int) -> dict[str, Any]:
    results = {}
    for name, compiled in (("compiled", "1"), ("reference", "0")):
        output = subprocess.run(
            [sys.executable, "-m", "bench.cold_scores", "--child", "engine", "--compiled",
             compiled, "--accounts", str(accounts), "--scores", str(scores)],
            capture_output=True, text=True, check=True, cwd=REPO)
        results[name] = json.loads(output.stdout)
    return results


async def run_http(accounts: int, seconds: float, connections: int, round_s: float
                   ) -> dict[str, dict[str, float]]:
    service_port, bare_port = free_port(), free_port()
    service = subprocess.Popen(
        [sys.executable, "-m", "bench.cold_scores", "--child", "serve", "--port",
         str(service_port), "--accounts", str(accounts)], cwd=REPO)
    bare = subprocess.Popen([sys.executable, "-m", "uvicorn", "bench.bare_app:app",
                             "--host", "127.0.0.1", "--port", str(bare_port),
                             "--no-access-log", "--log-level", "warning"], cwd=REPO)
    try:
        wait_http(f"http://127.0.0.1:{service_port}/accounts/acct-0/score", timeout_s=900)
        wait_http(f"http://127.0.0.1:{bare_port}/accounts/x/score")
        rng = random.Random(5)
        # Random ids, each asked once or so: almost every answer is a cold one.
        paths = [f"/accounts/acct-{rng.randrange(accounts)}/score" for _ in range(200_000)]
        timings: dict[int, list[float]] = {service_port: [], bare_port: []}
        failures = dict.fromkeys(timings, 0)
        rounds = max(1, round(seconds / round_s))
        for _ in range(rounds):
            for port in (service_port, bare_port):
                failures[port] += await drive(port, paths, seconds / rounds, connections,
                                              timings[port])
    finally:
        service.terminate()
        bare.terminate()
        service.wait(30)
        bare.wait(30)
    return {"cold score (engine + score_json)": summary(timings[service_port], seconds,
                                                        failures[service_port]),
            "constant JSON (bare FastAPI)": summary(timings[bare_port], seconds,
                                                    failures[bare_port])}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--scores", type=int, default=20_000)
    parser.add_argument("--http-seconds", type=float, default=10.0)
    parser.add_argument("--round-s", type=float, default=1.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--child", choices=["engine", "serve"], help=argparse.SUPPRESS)
    parser.add_argument("--compiled", default="1", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child == "engine":
        engine_child(arguments.accounts, arguments.scores, arguments.compiled == "1")
        return
    if arguments.child == "serve":
        serve_child(arguments.accounts, arguments.port)
        return
    engine = run_engine(arguments.accounts, arguments.scores)
    print(f"engine, {arguments.accounts:,} accounts restored (all packed), "
          f"{arguments.scores:,} random ids, each once (µs):")
    print("| codec | cold score p50 | p99 | mean | unpack p50 | score of an unpacked "
          "account p50 |")
    print("|---|---|---|---|---|---|")
    for name, result in engine.items():
        cold, unpack, compute = (result["cold_score"], result["unpack"],
                                 result["score_of_an_unpacked_account"])
        print(f"| {name} | {cold['p50_us']} | {cold['p99_us']} | {cold['mean_us']} | "
              f"{unpack['p50_us']} | {compute['p50_us']} |")
    if arguments.skip_http:
        return
    http = asyncio.run(run_http(arguments.accounts, arguments.http_seconds,
                                arguments.connections, arguments.round_s))
    print(f"\nHTTP, random ids among {arguments.accounts:,}, {arguments.connections} "
          f"keep-alive connections, {arguments.http_seconds:g} s each in alternating rounds:")
    print("| endpoint | requests/s | p50 | p99 | non-200 |")
    print("|---|---|---|---|---|")
    for name, result in http.items():
        print(f"| {name} | {result['rps']:,.0f} | {result['p50_ms']:.2f} ms | "
              f"{result['p99_ms']:.2f} ms | {result['failures']} |")
    rates = [result["rps"] for result in http.values()]
    print(f"cold score / bare throughput: {rates[0] / rates[1]:.2f}x")


if __name__ == "__main__":
    main()
