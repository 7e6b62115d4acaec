"""What an event on an account past the hot set pays besides the fold: unpacking the
account, packing the one that leaves the hot set, and freeing that one's objects.

    python -m bench.codec [--events 600000] [--accounts 20000] [--rounds 5]
                          [--compare PATH ...]

The accounts are the wide workload's of `bench.ingest` (a follower count, 4 posts, one
actor sketch of ~6 actors after 600,000 events; ~14 by the end of the
`bench.ingest --engine-alone` run), built once per process by the engine
with every account hot. Then, `rounds` times, all of them are packed, unpacked (kept) and
freed, each step timed alone in CPU µs per account with the cyclic collector off (what
the codec costs), and once more with the collector on, as an event pays it: the three
steps per account in turn, the young collections included. Last, a miss as the store
pays it (`store_misses`): random accesses to the accounts with a quarter of them hot,
where the least recently used accounts are out of the CPU's caches when they are packed
(and packed in batches, where the checkout's store does that), and what a changelog
checkpoint pays to pack an account changed since the last one (`checkpoint_packs`).
Contenders, each in its own process: this checkout's compiled codec, the same without
each of its two options (`untrack`: unpacked objects left out of the cyclic collector;
`prefetch`: packing asks for an account's objects level by level) and with the store
packing accounts one at a time instead of in batches (`store.EVICTION_BATCH`), its
reference, and the compiled codec of each `--compare` checkout. The best round of each
step counts.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MISS_ACCESSES = 100_000


# The codecs compared: this checkout's compiled codec with its options, or the reference.
CODECS: dict[str, dict[str, bool] | None] = {
    "compiled": {},
    "compiled, collector tracks": {"untrack": False},
    "compiled, no prefetch": {"prefetch": False},
    # The store's option: accounts leave the hot set, and are packed for a checkpoint,
    # one at a time, not in batches.
    "compiled, evictions one at a time": {"one_at_a_time": True},
    "reference": None,
}


def select(codec: str) -> None:
    """Puts the codec named in `CODECS` in `packing`'s place ("checkout": the compiled
    codec as a checkout selects it by default, for `--compare`)."""
    from service.engine import packing

    use_compiled = getattr(packing, "use_compiled", None)  # absent in older checkouts
    if use_compiled is not None:
        use_compiled(CODECS.get(codec, {}) is not None)
    options = dict(CODECS.get(codec) or {})
    if options.pop("one_at_a_time", False):
        from service.engine import store

        store.BATCHED_HOT_SETS = sys.maxsize
        store.EVICTION_BATCH = 1
    if options:
        import engagement_native

        from service.engine.account import Account, Post, shared_topics
        from service.engine.sketches import ActorSketch

        chosen = engagement_native.Codec(Account, Post, ActorSketch, shared_topics, **options)
        # The store calls packing.pack, pack_many and unpack through the module.
        packing.pack, packing.unpack = chosen.pack, chosen.unpack
        if hasattr(packing, "pack_many"):  # absent in older checkouts
            packing.pack_many = chosen.pack_many


def measure(events: int, sample: int, rounds: int, codec: str) -> dict[str, float]:
    import orjson

    from bench.ingest import wide_events
    from service.engine import Engine, EngineConfig, packing
    from service.events import Rejection, decode_event

    select(codec)
    engine = Engine(EngineConfig(hot_accounts=1_000_000))
    now = time.time()
    for value in wide_events(events):
        key = orjson.loads(value)["account_id"].encode()
        event = decode_event(key, value, now=now, max_event_bytes=1 << 20,
                             max_future_skew_s=1e9)
        assert not isinstance(event, Rejection)
        engine.apply(event, 0)
    accounts = [account for account_id in list(engine.accounts)[:sample]
                if (account := engine.accounts.get(account_id)) is not None]
    gc.collect()
    gc.freeze()
    best = {"pack_us": float("inf"), "unpack_us": float("inf"), "free_us": float("inf"),
            "cold_us": float("inf")}
    pack, unpack = packing.pack, packing.unpack
    for _ in range(rounds):
        gc.disable()
        cpu = time.process_time()
        packed = [pack(account) for account in accounts]
        pack_s = time.process_time() - cpu
        cpu = time.process_time()
        unpacked = [unpack(account.account_id, blob)
                    for account, blob in zip(accounts, packed, strict=True)]
        unpack_s = time.process_time() - cpu
        cpu = time.process_time()
        del unpacked
        free_s = time.process_time() - cpu
        gc.enable()
        # As an event past the hot set pays it: one unpack, one pack of another account,
        # that one freed; the collector's young collections fall where they fall.
        cpu = time.process_time()
        for account, blob in zip(accounts, packed, strict=True):
            pack(unpack(account.account_id, blob))
        cold_s = time.process_time() - cpu
        for name, seconds in (("pack_us", pack_s), ("unpack_us", unpack_s),
                              ("free_us", free_s), ("cold_us", cold_s)):
            best[name] = min(best[name], seconds / len(accounts) * 1e6)
    best["packed_bytes"] = sum(map(len, packed)) / len(packed)
    best["miss_us"] = store_misses(accounts, packed, rounds)
    best["checkpoint_us"] = checkpoint_packs(accounts, packed, rounds)
    return best


def checkpoint_packs(accounts: list[Any], packed: list[bytes], rounds: int) -> float:
    """What a changelog checkpoint pays per account changed since the last one: every
    account hot and changed, used in random order, then all of them drained packed
    (`drain_packed`, or `packed_one` each in a checkout without it); CPU µs per account,
    best of `rounds`."""
    from service.engine.store import AccountStore

    ids = [account.account_id for account in accounts]
    order = random.Random(13).sample(ids, len(ids))
    best = float("inf")
    for _ in range(rounds):
        store = AccountStore(len(accounts))
        store.restore(zip(ids, packed, strict=True))
        for account_id in order:
            store.activate(account_id)
        cpu = time.process_time()
        drain_packed = getattr(store, "drain_packed", None)
        if drain_packed is not None:
            drained = drain_packed()
        else:
            drained = [(account_id, store.packed_one(account_id))
                       for account_id in store.drain_changed()]
        best = min(best, (time.process_time() - cpu) / len(drained) * 1e6)
        del store
    return best


def store_misses(accounts: list[Any], packed: list[bytes], rounds: int) -> float:
    """A query of an account past the hot set as the store pays it, collector on:
    random accesses to the accounts, a quarter of them hot, each miss an unpack and a
    pack of the least recently used account (in batches where the checkout's store
    batches them) with its freeing; CPU µs per unpack, best of `rounds`."""
    from service.engine.store import AccountStore

    rng = random.Random(11)
    ids = [account.account_id for account in accounts]
    accesses = [rng.choice(ids) for _ in range(MISS_ACCESSES)]
    best = float("inf")
    for _ in range(rounds):
        store = AccountStore(len(accounts) // 4)
        store.restore(zip(ids, packed, strict=True))
        # Queries (`get`): an event for a packed account with light traffic no longer
        # unpacks it (it is folded where it lies).
        for account_id in ids:  # every account unpacked once, the hot set full
            store.get(account_id)
        unpacks = store.stats.unpacks
        cpu = time.process_time()
        for account_id in accesses:
            store.get(account_id)
        seconds = time.process_time() - cpu
        best = min(best, seconds / (store.stats.unpacks - unpacks) * 1e6)
        del store
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=600_000)
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--compare", nargs="*", default=[], metavar="PATH")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child is not None:
        print(json.dumps(measure(arguments.events, arguments.accounts, arguments.rounds,
                                 arguments.child)))
        return
    contenders = [*[(f"this checkout, {codec}", REPO, codec) for codec in CODECS],
                  *[(Path(path).resolve().name + ", compiled", Path(path).resolve(),
                     "checkout") for path in arguments.compare]]
    print(f"wide workload's accounts after {arguments.events:,} events, {arguments.accounts:,}"
          f" of them, CPU µs per account, best of {arguments.rounds}")
    print("| codec | pack | unpack | free | pack + unpack + free | one cold event's share, "
          "collector on | a miss in the store | a checkpoint's pack | bytes packed |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, checkout, compiled in contenders:
        # This file, with the checkout's `service` first on the path (bench.ingest's
        # wide_events from this checkout too: the same accounts for every contender).
        result = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child", compiled,
             "--events", str(arguments.events), "--accounts", str(arguments.accounts),
             "--rounds", str(arguments.rounds)],
            capture_output=True, text=True, check=True, cwd=checkout,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(
                (str(checkout), os.environ.get("PYTHONPATH", ""), str(REPO)))})
        got = json.loads(result.stdout.strip().splitlines()[-1])
        total = got["pack_us"] + got["unpack_us"] + got["free_us"]
        print(f"| {name} | {got['pack_us']:.2f} | {got['unpack_us']:.2f} | "
              f"{got['free_us']:.2f} | {total:.2f} | {got['cold_us']:.2f} | "
              f"{got['miss_us']:.2f} | {got['checkpoint_us']:.2f} | "
              f"{got['packed_bytes']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
