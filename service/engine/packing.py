"""An account packed into one `bytes` object, and back.

Most tracked accounts are idle at any moment, and as Python objects (a dict of posts,
a sketch with its dict of actors, follower tuples) one costs ~1.6 KB. Packed, an idle
account is one bytes object of ~200 bytes, and a snapshot can store and restore it
as it is, without decoding it (see `AccountStore`).

Layout: a fixed header that the store reads without unpacking, then msgpack of the
account's fields (portable across Python versions, so snapshots can hold it).
The header's `settled_from` and `first_bucket` say when expiry could next change the
account: before then a sweep skips it unopened.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import msgpack

from service.engine.account import Account, Post, shared_topics
from service.engine.sketches import ActorSketch

# partition, version, settled_from, first_bucket
_HEADER = struct.Struct("<IQdq")
NO_BUCKET = 2**62
_POST_FIELDS = 10


@dataclass(frozen=True, slots=True)
class PackedHeader:
    partition: int
    version: int
    settled_from: float  # expiry with a horizon at or before this changes nothing...
    first_bucket: int  # ...nor with a first live actor bucket at or before this


def header(packed: bytes) -> PackedHeader:
    return PackedHeader(*_HEADER.unpack_from(packed))


def partition_of(packed: bytes) -> int:
    partition: int = _HEADER.unpack_from(packed)[0]
    return partition


def needs_expiry(packed: bytes, horizon: float, first_live_bucket: int) -> bool:
    _, _, settled_from, first_bucket = _HEADER.unpack_from(packed)
    return bool(settled_from < horizon or first_bucket < first_live_bucket)


def pack(account: Account) -> bytes:
    posts: list[object] = []
    for post_id, post in account.posts.items():
        posts += (post_id, post.posted_at, post.first_seen_at, post.sponsored, post.topics,
                  post.likes, post.comments, post.shares, post.early, post.pending)
    followers: list[float | int] = []
    for moment, count in account.followers:
        followers += (moment, count)
    actors = [
        (sketch.bucket, sketch.interactions, _flatten(sketch.counts),
         _flatten(sketch.errors) if sketch.errors else None,
         None if sketch.registers is None else bytes(sketch.registers))
        for sketch in account.actors
    ]
    settled_from = min((post.anchor_time for post in account.posts.values()),
                       default=math.inf)
    if len(account.followers) > 1:
        # Expiry trims the history once its second observation leaves the horizon.
        settled_from = min(settled_from, account.followers[1][0])
    settled_from = min(settled_from, account.last_event_at)
    first_bucket = min((sketch.bucket for sketch in account.actors), default=NO_BUCKET)
    body: bytes = msgpack.packb((account.last_event_at, posts, followers, actors))
    return _HEADER.pack(account.partition, account.version, settled_from,
                        first_bucket) + body


def unpack(account_id: str, packed: bytes) -> Account:
    partition, version, _, _ = _HEADER.unpack_from(packed)
    last_event_at, posts, followers, actors = msgpack.unpackb(
        memoryview(packed)[_HEADER.size :], use_list=True)
    account = Account(account_id, partition)
    account.version = version
    account.last_event_at = last_event_at
    account_posts = account.posts
    for start in range(0, len(posts), _POST_FIELDS):
        (post_id, posted_at, first_seen_at, sponsored, topics, likes, comments, shares,
         early, pending) = posts[start : start + _POST_FIELDS]
        post = Post(first_seen_at)
        post.posted_at = posted_at
        post.sponsored = sponsored
        post.topics = shared_topics(tuple(topics))
        post.likes, post.comments, post.shares, post.early = likes, comments, shares, early
        post.pending = pending
        account_posts[post_id] = post
    account.followers = list(zip(followers[::2], followers[1::2], strict=True))
    for bucket, interactions, counts, errors, registers in actors:
        sketch = ActorSketch(bucket)
        sketch.interactions = interactions
        sketch.counts = _unflatten(counts)
        sketch.errors = None if errors is None else _unflatten(errors)
        sketch.registers = None if registers is None else bytearray(registers)
        account.actors.append(sketch)
    return account


def _flatten(mapping: dict[int, int]) -> list[int]:
    flat: list[int] = []
    for key, value in mapping.items():
        flat += (key, value)
    return flat


def _unflatten(flat: list[int]) -> dict[int, int]:
    # Key order matters: Space-Saving evicts the first of equal minimum counters.
    return dict(zip(flat[::2], flat[1::2], strict=True))
