"""An account packed into one `bytes` object, and back.

Most tracked accounts are idle at any moment, and as Python objects (a dict of posts,
a sketch with its dict of actors, follower tuples) one costs ~1.6 KB. Packed, an idle
account is one bytes object of ~200 bytes, and a snapshot can store and restore it
as it is, without decoding it (see `AccountStore`).

Layout: a fixed header that the store reads without unpacking, then msgpack of the
account's fields (portable across Python versions, so snapshots can hold it): posts,
follower history, actor sketches (each with its time-of-day counters), and the audience
signals when there are any. Accounts packed before the last two existed unpack as they
were (no counters, no signals).
The header says when expiry could next change the account and when it would drop all
of it, so a sweep opens only the accounts it changes in part.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping
from enum import Enum

import msgpack

from service.engine.account import Account, Post, shared_topics
from service.engine.sketches import ActorSketch

try:
    import engagement_native
except ImportError:  # not built: the reference serves, slower (docs/benchmarks.md)
    engagement_native = None  # type: ignore[assignment]

# partition, version, settled_from, last_event_at, first_bucket, last_bucket.
# Expiry changes nothing while the horizon is at or before `settled_from` and the first
# live actor bucket at or before `first_bucket`; it drops the whole account once the
# horizon is past `last_event_at` (every post and observation is older) and the first
# live actor bucket past `last_bucket`.
_HEADER = struct.Struct("<IQddqq")
_NO_BUCKETS = (2**62, -(2**62))  # (first, last) of an account without actor sketches
_POST_FIELDS = 10


class Expiry(Enum):
    NOTHING = "nothing"
    EVERYTHING = "everything"
    PART = "part"  # only unpacking tells what is left


def expiry(packed: bytes, limits: Mapping[int, tuple[float, int]]) -> Expiry:
    """What expiry does to the account, from its header alone; `limits` maps a
    partition to its (horizon, first live actor bucket), and a partition without one
    has no stream time yet."""
    partition, _, settled_from, last_event_at, first_bucket, last_bucket = (
        _HEADER.unpack_from(packed))
    limit = limits.get(partition)
    if limit is None:
        return Expiry.NOTHING
    horizon, first_live_bucket = limit
    if settled_from >= horizon and first_bucket >= first_live_bucket:
        return Expiry.NOTHING
    if last_event_at < horizon and last_bucket < first_live_bucket:
        return Expiry.EVERYTHING
    return Expiry.PART


def pack_reference(account: Account) -> bytes:
    """The specification of the packed form, in Python (see `use_compiled`)."""
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
         None if sketch.registers is None else bytes(sketch.registers), sketch.rhythm)
        for sketch in account.actors
    ]
    settled_from = min((post.anchor_time for post in account.posts.values()),
                       default=math.inf)
    if len(account.followers) > 1:
        # Expiry trims the history once its second observation leaves the horizon.
        settled_from = min(settled_from, account.followers[1][0])
    settled_from = min(settled_from, account.last_event_at)
    # Sketches and audience buckets are kept in bucket order.
    first_bucket, last_bucket = ((account.actors[0].bucket, account.actors[-1].bucket)
                                 if account.actors else _NO_BUCKETS)
    audience = account.audience
    if audience:
        first_bucket = min(first_bucket, audience[0])
        last_bucket = max(last_bucket, audience[-4])
        body: bytes = msgpack.packb((posts, followers, actors, audience))
    else:
        # Without signals the layout stays the three fields older snapshots hold.
        body = msgpack.packb((posts, followers, actors))
    return _HEADER.pack(account.partition, account.version, settled_from,
                        account.last_event_at, first_bucket, last_bucket) + body


def pack_many_reference(accounts: list[Account]) -> list[bytes]:
    """Each account packed, in order (the compiled codec overlaps their memory reads)."""
    return [pack_reference(account) for account in accounts]


def unpack_reference(account_id: str, packed: bytes) -> Account:
    partition, version, _, last_event_at, _, _ = _HEADER.unpack_from(packed)
    posts, followers, actors, *audience = msgpack.unpackb(
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
    for bucket, interactions, counts, errors, registers, *rhythm in actors:
        sketch = ActorSketch(bucket)
        if rhythm:  # absent in accounts packed before the time-of-day profile
            sketch.rhythm = rhythm[0]
        sketch.interactions = interactions
        sketch.counts = _unflatten(counts)
        sketch.errors = None if errors is None else _unflatten(errors)
        sketch.registers = None if registers is None else bytearray(registers)
        account.actors.append(sketch)
    if audience:
        account.audience = audience[0]
    return account


def _flatten(mapping: dict[int, int]) -> list[int]:
    flat: list[int] = []
    for key, value in mapping.items():
        flat += (key, value)
    return flat


def _unflatten(flat: list[int]) -> dict[int, int]:
    # Key order matters: Space-Saving evicts the first of equal minimum counters.
    return dict(zip(flat[::2], flat[1::2], strict=True))


# The implementation in use, chosen here and nowhere else. The compiled codec
# (native/src/lib.rs, installed by `make install`) writes the same bytes and builds equal
# accounts, ~3x faster to pack and unpack on the wide workload's accounts, and leaves what
# it unpacks out of the cyclic collector (docs/benchmarks.md, "The cliff past the hot set,
# session 6"); tests/unit/test_packing_native.py holds the two to that.
pack: Callable[[Account], bytes] = pack_reference
pack_many: Callable[[list[Account]], list[bytes]] = pack_many_reference
unpack: Callable[[str, bytes], Account] = unpack_reference
COMPILED_AVAILABLE = engagement_native is not None


def use_compiled(compiled: bool) -> None:
    """Selects the compiled codec (if it is installed) or the reference for every caller:
    the store calls `packing.pack`, `packing.pack_many` and `packing.unpack` through
    this module."""
    global pack, pack_many, unpack
    if compiled and engagement_native is not None:
        codec = engagement_native.Codec(Account, Post, ActorSketch, shared_topics)
        pack, pack_many, unpack = codec.pack, codec.pack_many, codec.unpack
    else:
        pack, pack_many, unpack = pack_reference, pack_many_reference, unpack_reference


def compiled_in_use() -> bool:
    return pack is not pack_reference


use_compiled(True)
