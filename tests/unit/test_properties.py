"""Invariants of the credibility score, property-tested with hypothesis."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.engine import Engine, EngineConfig
from tests.events import decoded, followers, interaction, post

KINDS = ("like", "like", "like", "comment", "share")
# Exact sketches (at most 32 actors) and everything within the lateness of 6 hours.
CONFIG = EngineConfig(allowed_lateness_s=6 * 3_600)


@st.composite
def streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    posts = draw(st.integers(1, 6))
    actors = draw(st.integers(1, 30))
    stream: list[dict[str, Any]] = [followers("acc", draw(st.integers(0, 50_000)), 0)]
    for index in range(posts):
        stream.append(post("acc", f"p{index}", 10 + index * 600,
                           sponsored=draw(st.booleans()),
                           topics=tuple(draw(st.lists(st.sampled_from("abcdef"), max_size=3)))))
    count = draw(st.integers(0, 150))
    for _ in range(count):
        target = draw(st.integers(0, posts - 1))
        stream.append(interaction(
            draw(st.sampled_from(KINDS)), "acc", f"p{target}",
            f"u{draw(st.integers(0, actors - 1))}",
            10 + target * 600 + draw(st.floats(0, 7_200, allow_nan=False))))
    return stream


def credibility(stream: list[dict[str, Any]]) -> float:
    engine = Engine(CONFIG)
    for event in stream:
        engine.apply(decoded(event))
    score = engine.score("acc")
    assert score is not None
    return score.credibility.score


@settings(max_examples=300, deadline=None)
@given(streams())
def test_score_is_within_0_and_100(stream: list[dict[str, Any]]) -> None:
    assert 0 <= credibility(stream) <= 100


@settings(max_examples=300, deadline=None)
@given(streams(), st.data())
def test_more_sponsored_posts_never_raise_credibility(
    stream: list[dict[str, Any]], data: st.DataObject
) -> None:
    organic = [event for event in stream if event["type"] == "post" and not event["sponsored"]]
    if not organic:
        return
    flipped = data.draw(st.sets(st.sampled_from([event["post_id"] for event in organic]),
                                min_size=1))
    more_paid = [
        {**event, "sponsored": True} if event.get("post_id") in flipped
        and event["type"] == "post" else event
        for event in stream
    ]
    assert credibility(more_paid) <= credibility(stream)


@settings(max_examples=300, deadline=None)
@given(streams(), st.integers(1, 10))
def test_engagement_from_fewer_distinct_actors_never_raises_credibility(
    stream: list[dict[str, Any]], folded: int
) -> None:
    """The least active actors' interactions are handed to the most active actor: the same
    engagement, from fewer distinct actors (a pod forming)."""
    activity = Counter(event["actor_id"] for event in stream if "actor_id" in event)
    if len(activity) < 2:
        return
    ranked = sorted(activity, key=lambda actor: (activity[actor], actor))
    heaviest = ranked[-1]
    gone = set(ranked[: min(folded, len(ranked) - 1)])
    fewer = [{**event, "actor_id": heaviest} if event.get("actor_id") in gone else event
             for event in stream]
    assert credibility(fewer) <= credibility(stream)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams(), st.randoms(use_true_random=False), st.booleans())
def test_replay_in_another_order_within_the_lateness_gives_the_same_answer(
    stream: list[dict[str, Any]], shuffler: random.Random, resend: bool
) -> None:
    reordered = list(stream)
    shuffler.shuffle(reordered)
    if resend and reordered:
        reordered.insert(shuffler.randrange(len(reordered)), reordered[0])  # a re-sent event
    first, second = Engine(CONFIG), Engine(CONFIG)
    for event in stream:
        first.apply(decoded(event))
    for event in reordered:
        second.apply(decoded(event))
    assert first.score("acc") == second.score("acc")
