"""What an event costs on an account that stays packed, against the same account hot, by
the account's size: the figures behind `store.PACKED_FOLD_MAX_BYTES`.

One account with N posts (two topics each) gets likes by many actors (its sketch past
its exact capacity) through the compiled fold (`Engine.fold_records`), once as the only
hot account and once packed behind a full hot set of one other account, with the
threshold lifted so that it stays packed whatever its size (`--limit`: the store's
default instead, so that a big account is made hot again). CPU µs per event after a
warm-up, best of `--rounds`; no Kafka.

    python -m bench.packed_fold [--posts 2 16 64 256] [--events 30000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import datetime
import time
from dataclasses import dataclass

import orjson

from service.engine import Engine, EngineConfig
from service.engine.audience import InteractionBatch

START = 1.7e9
NOW = 2e9
WARM_UP = 2_000


@dataclass(frozen=True)
class Record:
    key: bytes | None
    value: bytes | None
    offset: int


def at(moment: float) -> str:
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).isoformat().replace(
        "+00:00", "Z")


def record(offset: int, event: dict[str, object]) -> Record:
    return Record(str(event["account_id"]).encode(), orjson.dumps(event), offset)


def stream(posts: int, events: int) -> list[Record]:
    records = [record(n, {"event_id": f"p{n}", "type": "post", "account_id": "big",
                          "post_id": f"post-{n}", "occurred_at": at(START + n),
                          "sponsored": False, "topics": ["food", "travel"]})
               for n in range(posts)]
    records += [record(posts + n, {"event_id": f"e{n}", "type": "like", "account_id": "big",
                                   "post_id": f"post-{n % posts}",
                                   "actor_id": f"actor-{n * 7_919 % 100_000}",
                                   "occurred_at": at(START + posts + n * 0.01)})
                for n in range(events)]
    return records


def refuse(record: Record) -> None:
    raise SystemExit(f"the compiled fold left a record to Python: {record}")


def fold(engine: Engine, records: list[Record], routes: dict[int, InteractionBatch]) -> None:
    engine.fold_records(records, 0, 0, routes, 3, now=NOW, max_event_bytes=8_192,
                        max_future_skew_s=300, budget_s=1e9, outcomes=[0] * 15,
                        otherwise=refuse)


def per_event(posts: int, events: int, packed: bool, limit: bool) -> tuple[float, int, int]:
    """CPU µs per event, the account's packed size, and the events folded packed."""
    engine = Engine(EngineConfig(hot_accounts=1 if packed else 10))
    if packed and not limit:
        engine.accounts.packed_fold_max_bytes = 2**62
    routes: dict[int, InteractionBatch] = {}
    if packed:  # another account takes the one hot place
        fold(engine, [record(0, {"event_id": "o", "type": "followers", "account_id": "other",
                                 "followers": 5, "occurred_at": at(START)})], routes)
    records = stream(posts, events)
    fold(engine, records[: posts + WARM_UP], routes)
    if packed:
        engine.accounts.get("other")  # "big" packed out
    cpu = time.process_time()
    fold(engine, records[posts + WARM_UP :], routes)
    seconds = time.process_time() - cpu
    size = len(engine.accounts.packed_one("big") or b"")
    return seconds / (len(records) - posts - WARM_UP) * 1e6, size, \
        engine.accounts.stats.packed_folds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, nargs="+", default=[2, 16, 64, 256])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--limit", action="store_true",
                        help="the store's PACKED_FOLD_MAX_BYTES instead of no limit")
    arguments = parser.parse_args()
    print("| posts | packed bytes | hot µs/event | packed µs/event | packed / hot | "
          "events folded packed |")
    print("|---|---|---|---|---|---|")
    for posts in arguments.posts:
        hot = min(per_event(posts, arguments.events, False, arguments.limit)
                  for _ in range(arguments.rounds))
        cold = min(per_event(posts, arguments.events, True, arguments.limit)
                   for _ in range(arguments.rounds))
        print(f"| {posts} | {cold[1]:,} | {hot[0]:.2f} | {cold[0]:.2f} | "
              f"{cold[0] / hot[0]:.2f}x | {cold[2]:,} |", flush=True)


if __name__ == "__main__":
    main()
