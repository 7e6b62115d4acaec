"""Packed accounts: packing loses nothing, and a tiny hot set answers like a huge one."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from service.engine import Engine, EngineConfig, packing
from service.simulation import AUTHENTIC_MICRO, MEGA_LOW, POD_PUMPED, account_events
from tests.events import T0, decoded, followers, interaction, post

DAY = 86_400.0
PROFILES = {"authentic": AUTHENTIC_MICRO, "pod": POD_PUMPED, "mega": MEGA_LOW}


def interleaved_stream(seed: int) -> list[dict[str, Any]]:
    """Three kinds of account over 40 days, in event-time order; the mega account's
    audience outgrows the exact sketch, so Space-Saving and HyperLogLog state is packed."""
    rng = random.Random(seed)
    events = [event for name, profile in PROFILES.items()
              for event in account_events(name, profile, T0.timestamp(), 6 * DAY, rng)]
    events.sort(key=lambda event: event["occurred_at"])
    return events


def test_pack_then_unpack_gives_back_the_same_account() -> None:
    engine = Engine(EngineConfig(window_s=10 * DAY))
    for event in interleaved_stream(5):
        engine.apply(decoded(event))
    for account_id in PROFILES:
        account = engine.accounts.get(account_id)
        assert account is not None
        packed = packing.pack(account)
        again = packing.unpack(account_id, packed)
        assert packing.pack(again) == packed
        assert again.posts.keys() == account.posts.keys()
        assert again.followers == account.followers
        for mine, theirs in zip(again.actors, account.actors, strict=True):
            assert (mine.bucket, mine.interactions, mine.counts, mine.registers) == (
                theirs.bucket, theirs.interactions, theirs.counts, theirs.registers)
            # Order matters: Space-Saving evicts the first of equal minimum counters.
            assert list(mine.counts) == list(theirs.counts)
    assert not engine.accounts.get("mega").actors[-1].exact  # type: ignore[union-attr]


def test_a_hot_set_of_one_answers_exactly_like_an_unbounded_one() -> None:
    tiny = Engine(EngineConfig(window_s=10 * DAY, hot_accounts=1))
    roomy = Engine(EngineConfig(window_s=10 * DAY))
    for index, event in enumerate(interleaved_stream(6)):
        tiny.apply(decoded(event))
        roomy.apply(decoded(event))
        if index % 500 == 0:
            tiny.expire()
            roomy.expire()
            for account_id in PROFILES:
                assert tiny.score(account_id) == roomy.score(account_id)
    assert tiny.accounts.hot == 1
    assert tiny.accounts.stats.unpacks > 1_000
    assert tiny.stats == roomy.stats


def test_expiry_of_packed_accounts_drops_what_it_drops_for_objects() -> None:
    tiny = Engine(EngineConfig(window_s=DAY, allowed_lateness_s=0, hot_accounts=1))
    roomy = Engine(EngineConfig(window_s=DAY, allowed_lateness_s=0))
    stream = [followers(f"quiet-{n}", 100 + n, n) for n in range(20)]
    stream += [post(f"quiet-{n}", "p", 60 + n) for n in range(20)]
    stream += [interaction("like", f"quiet-{n}", "p", "u", 120 + n) for n in range(20)]
    stream += [post("busy", f"p{day}", day * DAY) for day in range(1, 4)]
    for event in stream:
        tiny.apply(decoded(event))
        roomy.apply(decoded(event))
    assert tiny.expire() == roomy.expire() == 20
    assert set(tiny.accounts) == set(roomy.accounts) == {"busy"}
    assert tiny.score("busy") == roomy.score("busy")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["post", "like", "followers"]),
                          st.integers(0, 3), st.floats(0, 20 * DAY)), min_size=1),
       st.floats(-DAY, 25 * DAY), st.integers(-1, 30))
def test_a_header_that_says_nothing_expires_is_right(
    actions: list[tuple[str, int, float]], horizon: float, first_live_bucket: int
) -> None:
    engine = Engine(EngineConfig(window_s=30 * DAY, allowed_lateness_s=30 * DAY))
    for kind, number, moment in actions:
        if kind == "post":
            engine.apply(decoded(post("acc", f"p{number}", moment)))
        elif kind == "like":
            engine.apply(decoded(interaction("like", "acc", f"p{number}", f"u{number}",
                                             moment)))
        else:
            engine.apply(decoded(followers("acc", 100 * number, moment)))
    account = engine.accounts.get("acc")
    assert account is not None
    packed = packing.pack(account)
    if not packing.needs_expiry(packed, horizon, first_live_bucket):
        assert account.expire(horizon, first_live_bucket)
        assert packing.pack(account) == packed
