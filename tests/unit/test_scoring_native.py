"""A credibility score's numbers in compiled code (native/src/scoring.rs) against the
Python reference (`scoring.weigh_components`): the same inputs give the same quality
points, confidence weight and score, bit for bit, and so the same `Credibility`.

The inputs are drawn wide: posts with and without follower counts (some at one moment,
in either order of their interactions), sponsored, with overlapping topics (ties for the
main topic, decided by name), zero and large counts; actor summaries with and without a
day's rhythm; follower trends that are missing, zero, falling or jumping; audience
signals. The engine-level twin is tests/unit/test_replay_golden.py, whose recorded
bodies the compiled numbers must reproduce."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.engine import scoring, tiers
from service.engine.account import PostView
from service.engine.scoring import (
    COMPONENTS,
    AudienceCounts,
    Followers,
    PostSums,
    score_credibility,
    score_credibility_compiled,
    weigh_components,
)
from service.engine.sketches import ActorSummary

engagement_native = pytest.importorskip("engagement_native")
pytestmark = pytest.mark.skipif(not scoring.COMPILED_AVAILABLE,
                                reason="compiled scoring is for Python 3.11")

COUNT = st.one_of(st.integers(0, 5), st.integers(0, 200), st.integers(0, 10**7))
FOLLOWERS = st.one_of(st.none(), st.integers(0, 3), st.integers(0, 50_000),
                      st.integers(0, 10**9))
TOPICS = st.lists(st.sampled_from(["travel", "food", "ads", "Zed", "äpfel"]),
                  max_size=3).map(tuple)


@st.composite
def posts(draw: st.DrawFn) -> list[PostView]:
    views = []
    for number in range(draw(st.integers(0, 9))):
        likes, comments, shares = draw(COUNT), draw(COUNT), draw(COUNT)
        views.append(PostView(
            draw(st.sampled_from([0.0, 60.0, 3_600.0, 7_200.0, 90_000.0])),
            f"p{number}", draw(st.booleans()), draw(TOPICS), likes, comments, shares,
            draw(st.integers(0, likes + comments + shares)), draw(FOLLOWERS)))
    views.sort()  # as `Account.window` gives them
    return views


@st.composite
def actor_summaries(draw: st.DrawFn) -> ActorSummary:
    interactions = draw(COUNT)
    top = sorted(draw(st.lists(st.integers(0, max(interactions, 1)), max_size=10)),
                 reverse=True)
    rhythm = draw(st.one_of(st.just(()), st.lists(COUNT, min_size=8, max_size=8).map(tuple)))
    distinct = draw(st.one_of(st.integers(0, max(interactions, 1)).map(float),
                              st.floats(0.0, 2.0 * max(interactions, 1))))
    return ActorSummary(interactions, distinct, tuple(top), draw(st.booleans()), rhythm)


@st.composite
def audiences(draw: st.DrawFn) -> AudienceCounts:
    judged = draw(COUNT)
    return AudienceCounts(judged, draw(st.integers(0, judged)), draw(st.integers(0, judged)))


def bits(numbers: tuple[float, ...]) -> tuple[str, ...]:
    return tuple(number.hex() for number in numbers)


@settings(max_examples=600, deadline=None)
@given(views=posts(), actors=actor_summaries(),
       trend=st.builds(Followers, FOLLOWERS, FOLLOWERS), audience=audiences(),
       awaiting=st.integers(0, 5))
def test_the_compiled_numbers_are_the_references_bits(
        views: list[PostView], actors: ActorSummary, trend: Followers,
        audience: AudienceCounts, awaiting: int) -> None:
    sums = PostSums(views)
    counts, engagement = sums.counts(awaiting), sums.engagement()
    _, *reference = weigh_components(views, counts, engagement, actors, trend, audience, sums)
    compiled = engagement_native.credibility_numbers(sums, actors, trend, audience)
    assert compiled is not None
    assert bits(compiled) == bits(tuple(reference))
    fast = score_credibility_compiled(views, counts, engagement, actors, trend, audience, sums)
    slow = score_credibility(views, counts, engagement, actors, trend, audience, sums)
    assert (fast.score, fast.confidence, fast.quality) == (slow.score, slow.confidence,
                                                           slow.quality)
    assert dict(fast.components) == dict(slow.components)  # the explanation, built late


@pytest.mark.parametrize("names", [("b", "a"), ("a", "b"), ("äpfel", "Zed")])
def test_a_tie_for_the_main_topic_goes_to_the_smaller_name(names: tuple[str, str]) -> None:
    """Two topics on different posts with the same weighted engagement: the main topic
    decides which post's conversation is the niche's, and so the penalty."""
    first, second = names
    views = [PostView(0.0, "p0", False, (first,), 10, 0, 0, 0, 1_000),
             PostView(60.0, "p1", False, (second,), 4, 0, 2, 0, 1_000)]
    sums = PostSums(views)
    actors = ActorSummary(20, 12.0, (3, 2), True, (3,) * 8)
    trend = Followers(1_000, 1_000)
    _, *reference = weigh_components(views, sums.counts(0), sums.engagement(), actors, trend,
                                     AudienceCounts(), sums)
    compiled = engagement_native.credibility_numbers(sums, actors, trend, AudienceCounts())
    assert compiled is not None
    assert bits(compiled) == bits(tuple(reference))


def test_counts_past_exact_division_are_left_to_the_reference() -> None:
    """Past 2^53 Python divides the exact integers; the compiled numbers decline."""
    views = [PostView(0.0, "p0", False, ("travel",), 40, 3, 1, 0, 2**60),
             PostView(60.0, "p1", False, (), 35, 2, 2, 1, 2**60 + 2**12)]
    sums = PostSums(views)
    actors = ActorSummary(81, 60.0, (5, 4), True, (10,) * 8)
    trend = Followers(2**60, 2**60 + 3 * 2**12)
    assert engagement_native.credibility_numbers(sums, actors, trend, AudienceCounts()) is None
    counts, engagement = sums.counts(0), sums.engagement()
    assert (score_credibility_compiled(views, counts, engagement, actors, trend,
                                       AudienceCounts(), sums)
            == score_credibility(views, counts, engagement, actors, trend, AudienceCounts(),
                                 sums))


def test_the_compiled_constants_are_the_modules() -> None:
    """A threshold tuned in scoring.py or tiers.py must be tuned in scoring.rs too."""
    constants = engagement_native.scoring_constants()
    components = constants.pop("COMPONENTS")
    assert components == [(name, spec.role == "quality", spec.weight, spec.half_confidence_at)
                          for name, spec in COMPONENTS.items()]
    for name, value in constants.items():
        module = tiers if hasattr(tiers, name) else scoring
        assert getattr(module, name) == value, name

