"""What an event costs on an account that stays packed, against the same account hot and
under the store's rule, by the account's size and by its events between two
checkpoints: the figures behind `store.PACKED_FOLD_MAX_BYTES`.

One account with N posts (two topics each) gets likes by many actors (its sketch past
its exact capacity) through the compiled fold (`Engine.fold_records`), with a checkpoint's
drain (`AccountStore.drain_packed`, which packs a changed hot account) after every K
events, timed with the fold:
  * hot:    the account is always hot (an allowance of 0 bytes: every event makes it hot,
            no drain leaves it packed);
  * packed: it always stays packed (no allowance);
  * rule:   the store's default: packed while its events since the drain times its
            size stay within 4 KiB, and left packed by a drain that as many folds would
            have left packed.
CPU µs per event after a warm-up, best of `--rounds`; no Kafka.

    python -m bench.packed_fold [--posts 2 16 64 256] [--per-checkpoint 1 3 10 100]
                                [--events 30000] [--rounds 3]
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


MODES = {"hot": 0, "packed": 2**62, "rule": None}  # the allowance, None: the store's


def per_event(posts: int, events: int, per_checkpoint: int, mode: str
              ) -> tuple[float, int, int]:
    """CPU µs per event, the account's packed size, and the events folded packed."""
    engine = Engine(EngineConfig(hot_accounts=10))
    allowance = MODES[mode]
    if allowance is not None:
        engine.accounts.packed_fold_max_bytes = allowance
    routes: dict[int, InteractionBatch] = {}
    records = stream(posts, events)
    fold(engine, records[: posts + WARM_UP], routes)
    engine.accounts.drain_packed()
    timed = records[posts + WARM_UP :]
    cpu = time.process_time()
    for start in range(0, len(timed), per_checkpoint):
        fold(engine, timed[start : start + per_checkpoint], routes)
        engine.accounts.drain_packed()
    seconds = time.process_time() - cpu
    size = len(engine.accounts.packed_one("big") or b"")
    return seconds / len(timed) * 1e6, size, engine.accounts.stats.packed_folds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, nargs="+", default=[2, 16, 64, 256])
    parser.add_argument("--per-checkpoint", type=int, nargs="+", default=[1, 3, 10, 100])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    print("| posts | packed bytes | events per checkpoint | hot µs/event | packed µs/event | "
          "rule µs/event | rule / best | events the rule folded packed |")
    print("|---|---|---|---|---|---|---|---|")
    for posts in arguments.posts:
        for per_checkpoint in arguments.per_checkpoint:
            best = {mode: min(per_event(posts, arguments.events, per_checkpoint, mode)
                              for _ in range(arguments.rounds)) for mode in MODES}
            hot, packed, rule = best["hot"], best["packed"], best["rule"]
            print(f"| {posts} | {packed[1]:,} | {per_checkpoint} | {hot[0]:.2f} | "
                  f"{packed[0]:.2f} | {rule[0]:.2f} | "
                  f"{rule[0] / min(hot[0], packed[0]):.2f}x | {rule[2]:,} |", flush=True)


if __name__ == "__main__":
    main()
