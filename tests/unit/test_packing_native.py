"""The compiled packed-account codec (native/) against the Python reference
(`packing.pack_reference`, `packing.unpack_reference`): the same bytes, the same accounts."""

from __future__ import annotations

import gc
import math
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.engine import packing
from service.engine.account import Account, Post, shared_topics
from service.engine.sketches import HEAVY_HITTER_CAPACITY, ActorSketch

engagement_native = pytest.importorskip("engagement_native")
CODEC = engagement_native.Codec(Account, Post, ActorSketch, shared_topics)


def test_the_compiled_codec_is_installed_and_selected() -> None:
    # `make install` builds it; without it the suite would test the reference twice.
    assert packing.COMPILED_AVAILABLE
    assert packing.compiled_in_use()
    assert CODEC.builds_bare == (True, True, True)  # the classes have the slots it knows


def state(value: Any) -> Any:
    """Everything an object holds, slot by slot, with types: two accounts with equal
    states behave the same (floats compared by their bits, so -0.0 and NaN count)."""
    if isinstance(value, float):
        return ("float", value.hex() if not math.isnan(value) else "nan")
    if isinstance(value, bool | int | str | bytes | bytearray) or value is None:
        return (type(value).__name__, value)
    if isinstance(value, list | tuple):
        return (type(value).__name__, [state(item) for item in value])
    if isinstance(value, dict):
        return ("dict", [(state(key), state(item)) for key, item in value.items()])
    slots = [name for klass in type(value).__mro__ for name in getattr(klass, "__slots__", ())]
    return (type(value).__name__,
            [(name, state(getattr(value, name, "<unset>"))) for name in sorted(slots)])


times = st.floats(min_value=1.6e9, max_value=1.9e9, allow_nan=False)
ids = st.text(min_size=1, max_size=40)
# Values at the edges of msgpack's integer encodings.
counters = st.one_of(st.integers(0, 300), st.sampled_from(
    [127, 128, 255, 256, 65_535, 65_536, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1]))
actor_hashes = st.one_of(st.integers(0, 40), st.integers(0, 2**64 - 1))


@st.composite
def accounts(draw: st.DrawFn) -> Account:
    account = Account(draw(ids), draw(st.integers(0, 2**32 - 1)))
    burst = 30.0
    for _ in range(draw(st.integers(0, 6))):
        account.record_followers(draw(times), draw(st.integers(0, 2**40)))
    post_ids = draw(st.lists(ids, max_size=6, unique=True))
    for post_id in post_ids:
        kind = draw(st.sampled_from(["post", "like", "comment", "share", "both"]))
        if kind in ("post", "both"):
            account.record_post(post_id, draw(times), draw(st.booleans()),
                                tuple(draw(st.lists(ids, max_size=3))), burst, 256)
        if kind != "post":
            for _ in range(draw(st.integers(1, 5))):
                account.record_interaction(
                    draw(st.sampled_from(["like", "comment", "share"])), post_id,
                    draw(times), draw(actor_hashes), draw(st.integers(-3, 3)), burst, 256)
    # A sketch past its exact capacity: Space-Saving errors and HyperLogLog registers.
    if draw(st.booleans()):
        for actor in range(HEAVY_HITTER_CAPACITY + draw(st.integers(1, 40))):
            account.record_interaction("like", "busy", 1.7e9, actor * 7_919, 5, burst, 256)
    for post in account.posts.values():
        post.likes = draw(counters)
    for _ in range(draw(st.integers(0, 3))):
        account.record_audience(draw(st.integers(-5, 5)), draw(st.integers(0, 2**40)),
                                draw(st.integers(0, 9)), draw(st.integers(-(2**40), 9)))
    account.touch(draw(st.one_of(times, st.just(-math.inf))), draw(counters))
    return account


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(accounts())
def test_compiled_and_reference_pack_the_same_bytes_and_unpack_the_same_account(
        account: Account) -> None:
    packed = packing.pack_reference(account)
    assert CODEC.pack(account) == packed
    mine = CODEC.unpack(account.account_id, packed)
    theirs = packing.unpack_reference(account.account_id, packed)
    assert state(mine) == state(theirs)
    assert state(mine) == state(account) or account.actors  # sketches drop derived state
    assert CODEC.pack(mine) == packed
    # Shared topic tuples stay shared through either path.
    for post_id, post in mine.posts.items():
        assert post.topics is theirs.posts[post_id].topics or not post.topics


def old_format(packed: bytes) -> bytes:
    """The same account as packed before time-of-day counters and audience signals."""
    size = packing._HEADER.size
    posts, history, actors, *_ = msgpack.unpackb(packed[size:])
    return packed[:size] + msgpack.packb((posts, history, [sketch[:5] for sketch in actors]))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(accounts())
def test_accounts_packed_in_the_old_layout_unpack_the_same(account: Account) -> None:
    packed = old_format(packing.pack_reference(account))
    mine = CODEC.unpack(account.account_id, packed)
    theirs = packing.unpack_reference(account.account_id, packed)
    assert state(mine) == state(theirs)


def damaged(packed: bytes) -> Iterator[bytes]:
    yield packed[: packing._HEADER.size - 1]
    yield packed[:-1]
    yield packed + b"\x00"
    yield packed[: packing._HEADER.size] + msgpack.packb(([1, 2, 3], [], []))
    yield packed[: packing._HEADER.size] + msgpack.packb(([], [1.0], []))
    yield packed[: packing._HEADER.size] + msgpack.packb(([], []))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(accounts())
def test_both_refuse_damaged_bytes(account: Account) -> None:
    # Both raise, each with its own exception type.
    for bad in damaged(packing.pack_reference(account)):
        with pytest.raises(Exception):  # noqa: B017, PT011
            packing.unpack_reference(account.account_id, bad)
        with pytest.raises(Exception):  # noqa: B017, PT011
            CODEC.unpack(account.account_id, bad)


def test_both_refuse_a_count_past_64_bits() -> None:
    account = Account("acc", 1)
    account.record_post("p", 1.7e9, False, (), 30.0, 256)
    account.posts["p"].likes = 2**64
    with pytest.raises(OverflowError):
        packing.pack_reference(account)
    with pytest.raises(OverflowError):
        CODEC.pack(account)


def test_a_class_with_other_slots_is_built_through_its_init() -> None:
    class Tagged(Post):
        __slots__ = ("tag",)

        def __init__(self, first_seen_at: float) -> None:
            super().__init__(first_seen_at)
            self.tag = "set by __init__"

    codec = engagement_native.Codec(Account, Tagged, ActorSketch, shared_topics)
    assert codec.builds_bare == (True, False, True)
    account = Account("acc", 1)
    account.record_post("p", 1.7e9, False, ("a",), 30.0, 256)
    again = codec.unpack("acc", packing.pack_reference(account))
    post = again.posts["p"]
    assert isinstance(post, Tagged)
    assert post.tag == "set by __init__"
    assert post.posted_at == 1.7e9


def containers(account: Account) -> Iterator[object]:
    """The account and every container it holds."""
    yield account
    yield account.posts
    for post in account.posts.values():
        yield post
        if post.pending is not None:
            yield post.pending
    yield account.followers
    yield from account.followers
    yield account.actors
    for sketch in account.actors:
        yield from (sketch, sketch.counts, sketch.rhythm)
        if sketch.errors is not None:
            yield sketch.errors
    if account.audience is not None:
        yield account.audience


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(accounts())
def test_an_unpacked_account_is_left_out_of_the_cyclic_collector(account: Account) -> None:
    packed = packing.pack_reference(account)
    unpacked = CODEC.unpack(account.account_id, packed)
    assert not any(gc.is_tracked(held) for held in containers(unpacked))
    tracked = engagement_native.Codec(Account, Post, ActorSketch, shared_topics, untrack=False)
    kept = tracked.unpack(account.account_id, packed)
    assert gc.is_tracked(kept)
    assert gc.is_tracked(kept.actors)
    assert state(kept) == state(unpacked)


def test_an_untracked_account_tracks_what_the_engine_adds_later() -> None:
    account = Account("acc", 1)
    account.record_post("p", 1.7e9, False, ("a",), 30.0, 256)
    again = CODEC.unpack("acc", packing.pack_reference(account))
    assert not gc.is_tracked(again.posts)
    again.record_interaction("like", "q", 1.7e9, 7, 3, 30.0, 256)  # a new post and sketch
    assert gc.is_tracked(again.posts["q"])
    assert gc.is_tracked(again.posts)  # CPython tracks a dict again when it takes one
    assert gc.is_tracked(again.actors[-1])
    assert CODEC.pack(again) == packing.pack_reference(again)


def test_instances_of_other_classes_are_packed_through_their_attributes() -> None:
    class Tagged(Post):
        __slots__ = ("tag",)

    account = Account("acc", 1)
    account.record_post("p", 1.7e9, True, ("a", "b"), 30.0, 256)
    tagged = Tagged(1.6e9)
    tagged.likes = 3
    account.posts["t"] = tagged
    assert CODEC.pack(account) == packing.pack_reference(account)


def test_both_refuse_an_unset_field() -> None:
    account = Account("acc", 1)
    account.posts["p"] = Post.__new__(Post)
    with pytest.raises(AttributeError):
        packing.pack_reference(account)
    with pytest.raises(AttributeError):
        CODEC.pack(account)


def test_posts_with_the_same_topics_share_one_tuple() -> None:
    account = Account("acc", 1)
    for post_id in ("p", "q", "r"):
        account.record_post(post_id, 1.7e9, False, ("gaming", "travel"), 30.0, 256)
    again = CODEC.unpack("acc", packing.pack_reference(account))
    first, *others = (post.topics for post in again.posts.values())
    assert first == ("gaming", "travel")
    assert all(topics is first for topics in others)


def test_a_post_seen_when_posted_shares_one_time_and_changes_apart() -> None:
    account = Account("acc", 1)
    account.record_post("p", 1.7e9, False, (), 30.0, 256)
    post = CODEC.unpack("acc", packing.pack_reference(account)).posts["p"]
    assert post.posted_at == post.first_seen_at == 1.7e9
    post.posted_at = 1.8e9
    assert post.first_seen_at == 1.7e9


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(accounts(), max_size=20))
def test_packing_many_at_once_gives_each_ones_bytes(batch: list[Account]) -> None:
    expected = [packing.pack_reference(account) for account in batch]
    assert CODEC.pack_many(batch) == expected
    no_prefetch = engagement_native.Codec(Account, Post, ActorSketch, shared_topics,
                                          prefetch=False)
    assert no_prefetch.pack_many(batch) == expected
    assert packing.pack_many_reference(batch) == expected


def test_packing_many_reaches_other_classes_and_refuses_an_unset_field() -> None:
    class Tagged(Post):
        __slots__ = ("tag",)

    plain = Account("plain", 1)
    plain.record_post("p", 1.7e9, True, ("a",), 30.0, 256)
    tagged = Account("tagged", 2)
    tagged.posts["t"] = Tagged(1.6e9)
    tagged.followers = [(1.6e9, 5), (1.7e9, 6)]
    assert CODEC.pack_many([plain, tagged, plain]) == [
        packing.pack_reference(account) for account in (plain, tagged, plain)]
    broken = Account("broken", 3)
    broken.posts["p"] = Post.__new__(Post)
    with pytest.raises(AttributeError):
        CODEC.pack_many([plain, broken])
