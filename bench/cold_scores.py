"""Cold scores: what a query for a random account among a million costs.

    python -m bench.cold_scores [--accounts 1000000] [--scores 20000] [--http-seconds 10]
                                [--connections 16] [--skip-http] [--compare PATH ...]

The state: `accounts` accounts as bench/workload.py builds them (a follower count, two
posts, six interactions by four actors), then exported and restored as after a restart:
every account packed, none hot, the collector frozen. Two parts, each contender in its
own process:

* the engine: for random ids, each asked once (so no answer comes from the score
  cache), in µs (p50, p99, mean):
  - `cold score`: `Engine.score` and its numbers (tier, credibility), what the
    score-change gate and discovery's index read;
  - `cold score + body`: `responses.score_json(Engine.score(...))` on other ids, what an
    HTTP answer costs (the components explained and the JSON rendered);
  - what the time goes to: unpacking the account (`packing.unpack` of the same bytes),
    the score of an account already unpacked (the cache emptied), and the gate's
    re-score at a checkpoint (`PartitionState.score_changes`' loop body: an uncached
    score of an unpacked account offered to a `ChangeGate`, whose values are already
    recorded so it emits nothing; emitted ones add the body, rendered by the consumer);
  with the compiled packed-account codec and scoring (native/src/scoring.rs), and with
  both Python references; with `--compare PATH`, also each checkout at PATH
  (`git archive <commit> | tar -x -C PATH`) with its compiled parts, measured by this
  script on that checkout's `service`;
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
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.ingest import REPO
from bench.queries import alternate, free_port, wait_http
from bench.workload import populate
from service.engine import Engine, EngineConfig, packing
from service.engine.persistence import export_accounts, export_partitions, import_state


def restored(accounts: int, compiled_scoring: bool = True) -> Engine:
    # The option only when off: a --compare checkout may predate it.
    config = EngineConfig(max_accounts=2 * accounts,
                          **({} if compiled_scoring else {"native_scoring": False}))
    engine = Engine(config)
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
    from service.engine.score_changes import ChangeGate
    from service.responses import score_json

    packing.use_compiled(compiled)
    engine = restored(accounts, compiled_scoring=compiled)
    rng = random.Random(11)
    # Disjoint random ids for each measurement of a cold account.
    chosen = [f"acct-{index}" for index in rng.sample(range(accounts), 3 * scores)]
    ids, with_body, others = chosen[:scores], chosen[scores:2 * scores], chosen[2 * scores:]
    cold: list[float] = []
    for account_id in ids:
        started = time.perf_counter()
        engine.score(account_id)  # its numbers are attributes: nothing left to compute
        cold.append(time.perf_counter() - started)
    cold_with_body: list[float] = []
    for account_id in with_body:
        started = time.perf_counter()
        score = engine.score(account_id)
        assert score is not None
        score_json(score)
        cold_with_body.append(time.perf_counter() - started)
    # The parts: unpacking an account (others, still packed), and the score of one
    # already unpacked (ids, hot now) with the score cache emptied.
    unpack_times: list[float] = []
    for account_id in others[: scores // 2]:
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
    # The gate's re-score: the loop body of PartitionState.score_changes, for accounts
    # whose values the gate has recorded (a first offer of each, untimed).
    gate = ChangeGate()
    for account_id in ids:
        score = engine.score(account_id)
        assert score is not None
        gate.offer(account_id, score.tier, score.credibility.score, score.as_of)
    gate_times: list[float] = []
    for account_id in ids[: scores // 2]:
        engine._scores.clear()
        started = time.perf_counter()
        score = engine.score(account_id)
        assert score is not None
        gate.offer(account_id, score.tier, score.credibility.score, score.as_of)
        gate_times.append(time.perf_counter() - started)
    print(json.dumps({"cold_score": percentiles(cold),
                      "cold_score_with_body": percentiles(cold_with_body),
                      "unpack": percentiles(unpack_times),
                      "score_of_an_unpacked_account": percentiles(compute_times),
                      "gate_rescore": percentiles(gate_times)}))


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


def run_engine(accounts: int, scores: int, checkouts: dict[str, Path]
               ) -> dict[str, Any]:
    """Each contender in its own process, one after the other: this checkout compiled
    and as the references, then each checkout of --compare (its `service`, this
    script)."""
    contenders: list[tuple[str, str, Path]] = [("compiled", "1", REPO),
                                               ("reference", "0", REPO)]
    contenders += [(name, "1", path) for name, path in checkouts.items()]
    results = {}
    for name, compiled, checkout in contenders:
        output = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child", "engine",
             "--compiled", compiled, "--accounts", str(accounts), "--scores", str(scores)],
            capture_output=True, text=True, check=True, cwd=checkout,
            env={**os.environ, "PYTHONPATH": str(checkout)})
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
        summaries = await alternate((service_port, bare_port), paths, seconds, round_s,
                                    connections)
    finally:
        service.terminate()
        bare.terminate()
        service.wait(30)
        bare.wait(30)
    return {"cold score (engine + score_json)": summaries[service_port],
            "constant JSON (bare FastAPI)": summaries[bare_port]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--scores", type=int, default=20_000)
    parser.add_argument("--http-seconds", type=float, default=10.0)
    parser.add_argument("--round-s", type=float, default=1.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--compare", nargs="*", default=[], metavar="PATH",
                        help="checkouts to measure the engine part of, by folder name")
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
    checkouts = {Path(path).resolve().name: Path(path).resolve() for path in arguments.compare}
    engine = run_engine(arguments.accounts, arguments.scores, checkouts)
    print(f"engine, {arguments.accounts:,} accounts restored (all packed), "
          f"{arguments.scores:,} random ids, each once (µs):")
    print("| build / codec | cold score p50 | p99 | mean | cold score + body p50 | p99 | "
          "mean | unpack p50 | score of an unpacked account p50 | gate re-score p50 | mean |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, result in engine.items():
        cold, body, unpack, compute, gate = (
            result["cold_score"], result["cold_score_with_body"], result["unpack"],
            result["score_of_an_unpacked_account"], result["gate_rescore"])
        print(f"| {name} | {cold['p50_us']} | {cold['p99_us']} | {cold['mean_us']} | "
              f"{body['p50_us']} | {body['p99_us']} | {body['mean_us']} | "
              f"{unpack['p50_us']} | {compute['p50_us']} | {gate['p50_us']} | "
              f"{gate['mean_us']} |")
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
