"""Invariants of the credibility score that the fraud signals must keep, with hypothesis:
bought followers never raise it, farm-like audiences never raise it, and every score is
the sum of its components' points."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from service.engine import Engine
from service.engine.audience import AudienceSignal
from tests.events import T0, decoded, followers
from tests.unit.test_properties import CONFIG, streams

Stream = list[dict[str, Any]]


@st.composite
def with_follower_history(draw: st.DrawFn) -> Stream:
    """A stream with a few organic follower counts after the first one."""
    stream = draw(streams())
    base = stream[0]["followers"]
    for moment in sorted(draw(st.lists(st.floats(1, 8_000), max_size=4))):
        base = max(0, base + draw(st.integers(-base // 10 - 1, base // 10 + 1)))
        stream.append(followers("acc", base, moment))
    return stream


def engine_for(stream: Stream, signals: list[AudienceSignal] = ()) -> Engine:  # type: ignore[assignment]
    engine = Engine(CONFIG)
    for event in stream:
        engine.apply(decoded(event))
    for signal in signals:
        engine.apply_audience(signal)
    return engine


def credibility(stream: Stream, signals: list[AudienceSignal] = ()) -> float:  # type: ignore[assignment]
    score = engine_for(stream, signals).score("acc")
    assert score is not None
    return score.credibility.score


def bought_followers(stream: Stream, moment: float, extra: int) -> Stream:
    """`extra` followers bought at `moment`: a count observed then, and every later
    count raised by as many."""
    counts = sorted((event["occurred_at"], event["followers"]) for event in stream
                    if event["type"] == "followers")
    at_purchase = [count for occurred_at, count in counts
                   if occurred_at <= followers("x", 0, moment)["occurred_at"]]
    purchase = followers("acc", (at_purchase[-1] if at_purchase else counts[0][1]) + extra,
                         moment)
    raised = [{**event, "followers": event["followers"] + extra}
              if event["type"] == "followers" and event["occurred_at"] > purchase["occurred_at"]
              else event for event in stream]
    return [*raised, purchase]


@settings(max_examples=300, deadline=None)
@given(with_follower_history(), st.floats(1, 9_000), st.integers(1, 200_000))
def test_bought_followers_never_raise_credibility(
    stream: Stream, moment: float, extra: int
) -> None:
    assert credibility(bought_followers(stream, moment, extra)) <= credibility(stream)


@settings(max_examples=200, deadline=None)
@given(with_follower_history(), st.integers(1, 500), st.data())
def test_more_interactions_from_farm_like_actors_never_raise_credibility(
    stream: Stream, judged: int, data: st.DataObject
) -> None:
    busy = data.draw(st.integers(0, judged))
    farm_like = data.draw(st.integers(0, busy))
    more_busy = data.draw(st.integers(busy, judged))
    more_farm = data.draw(st.integers(farm_like, more_busy))
    moment = T0.timestamp()
    fewer = [AudienceSignal("acc", moment, judged, busy, farm_like)]
    more = [AudienceSignal("acc", moment, judged, more_busy, more_farm)]
    assert credibility(stream, more) <= credibility(stream, fewer)


@settings(max_examples=300, deadline=None)
@given(with_follower_history(), st.integers(0, 300), st.data())
def test_the_components_points_add_up_to_the_score(
    stream: Stream, judged: int, data: st.DataObject
) -> None:
    farm_like = data.draw(st.integers(0, judged))
    signals = [AudienceSignal("acc", T0.timestamp(), judged, farm_like, farm_like)]
    score = engine_for(stream, signals).score("acc")
    assert score is not None
    components = score.credibility.components.values()
    # Each of the 12 points is rounded to 0.01.
    assert abs(sum(c.points for c in components) - score.credibility.score) <= 0.07
    assert all(c.points >= 0 for c in components if c.role == "quality")
    assert all(c.points <= 0 for c in components if c.role == "authenticity")
