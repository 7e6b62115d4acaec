"""The engine's state as plain values (lists, dicts, numbers, strings, bytes) and back.

The snapshot store encodes these values; the engine stays free of files and formats.
Accounts are exported one by one so the caller can yield between chunks.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from service.engine.account import Account, Post
from service.engine.engine import Engine, EngineConfig, PartitionClock
from service.engine.sketches import ActorSketch

Plain = Any


def export_partitions(engine: Engine) -> dict[int, Plain]:
    return {
        partition: {
            "stream_time": clock.stream_time,
            "seen_ids": {hour: sorted(ids) for hour, ids in clock.seen_ids.items()},
        }
        for partition, clock in engine.partitions.items()
    }


def export_accounts(engine: Engine) -> Iterator[Plain]:
    for account in engine.accounts.values():
        yield _export_account(account)


def _export_account(account: Account) -> Plain:
    posts = [
        [post_id, post.posted_at, post.first_seen_at, post.sponsored, list(post.topics),
         post.likes, post.comments, post.shares, post.early, post.pending]
        for post_id, post in account.posts.items()
    ]
    actors = [
        [sketch.bucket, sketch.interactions, _flatten(sketch.counts),
         _flatten(sketch.errors or {}),
         None if sketch.registers is None else bytes(sketch.registers)]
        for sketch in account.actors
    ]
    return [account.account_id, account.partition, account.last_event_at, posts,
            [list(entry) for entry in account.followers], actors]


def _flatten(mapping: dict[int, int]) -> list[int]:
    flat: list[int] = []
    for key, value in mapping.items():
        flat.append(key)
        flat.append(value)
    return flat


def _unflatten(flat: list[int]) -> dict[int, int]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def import_state(
    config: EngineConfig, partitions: dict[int, Plain], accounts: Iterable[Plain]
) -> Engine:
    engine = Engine(config)
    for partition, plain in partitions.items():
        clock = PartitionClock()
        clock.stream_time = float(plain["stream_time"])
        clock.seen_ids = {int(hour): set(ids) for hour, ids in plain["seen_ids"].items()}
        engine.partitions[int(partition)] = clock
    engine.recount_event_ids()
    for plain_account in accounts:
        account = _import_account(plain_account)
        engine.accounts[account.account_id] = account
    return engine


def _import_account(plain: Plain) -> Account:
    account_id, partition, last_event_at, posts, followers, actors = plain
    account = Account(account_id, partition)
    account.last_event_at = last_event_at
    for (post_id, posted_at, first_seen_at, sponsored, topics, likes, comments, shares,
         early, pending) in posts:
        post = Post(first_seen_at)
        post.posted_at = posted_at
        post.sponsored = sponsored
        post.topics = tuple(topics)
        post.likes, post.comments, post.shares, post.early = likes, comments, shares, early
        post.pending = pending
        account.posts[post_id] = post
    account.followers = [(float(moment), int(count)) for moment, count in followers]
    for bucket, interactions, counts, errors, registers in actors:
        sketch = ActorSketch(bucket)
        sketch.interactions = interactions
        sketch.counts = _unflatten(counts)
        sketch.errors = _unflatten(errors) or None
        sketch.registers = None if registers is None else bytearray(registers)
        account.actors.append(sketch)
    return account
