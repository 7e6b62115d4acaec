"""Credibility: a weighted, explainable combination of components, each 0..1.

Every component reports its raw value, how much data backs it (confidence), the value
after shrinking towards neutral by that confidence, and the points it adds to the 0-100
score. docs/scoring.md derives each formula from the article's claims.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from service.engine.account import PostView
from service.engine.sketches import ActorSummary
from service.engine.tiers import expected_engagement_rate

NEUTRAL = 0.5
TOP_ACTORS = 10

LIKE_WEIGHT = 1.0
COMMENT_WEIGHT = 2.0
SHARE_WEIGHT = 3.0

# Shape of the engagement-fit curve, in multiples of the rate normal for the size.
FIT_BEST_RATIO = 3.0
FIT_IMPLAUSIBLE_RATIO = 10.0
DEPTH_FULL_SHARE = 0.2
LOYALTY_FULL_SHARE = 0.5
BURST_ZERO_SHARE = 0.5


@dataclass(frozen=True, slots=True)
class ComponentSpec:
    weight: float
    half_confidence_at: float  # sample size at which confidence is 0.5
    unit: str  # what the sample size counts


COMPONENTS: dict[str, ComponentSpec] = {
    "engagement_fit": ComponentSpec(0.25, 3, "posts"),
    "conversation_depth": ComponentSpec(0.15, 30, "interactions"),
    "audience_loyalty": ComponentSpec(0.10, 50, "interactions"),
    "engagement_concentration": ComponentSpec(0.20, 50, "interactions"),
    "timing_authenticity": ComponentSpec(0.10, 30, "interactions"),
    "sponsored_share": ComponentSpec(0.10, 3, "posts"),
    "niche_focus": ComponentSpec(0.10, 3, "posts"),
}
_TOTAL_WEIGHT = sum(spec.weight for spec in COMPONENTS.values())

Input = int | float | str | bool | None


@dataclass(frozen=True, slots=True)
class Component:
    name: str
    weight: float
    value: float
    confidence: float
    effective_value: float
    points: float
    inputs: dict[str, Input]
    evidence: str


@dataclass(frozen=True, slots=True)
class Engagement:
    rate: float | None
    weighted_rate: float | None
    expected_rate: float | None
    posts: int
    posts_with_followers: int
    mean_followers_at_post: float | None
    denominator: str = "followers at posting time, per post, averaged over the window's posts"


@dataclass(frozen=True, slots=True)
class Counts:
    posts: int
    likes: int
    comments: int
    shares: int
    sponsored_posts: int
    awaiting_post: int

    @property
    def interactions(self) -> int:
        return self.likes + self.comments + self.shares


@dataclass(frozen=True, slots=True)
class Credibility:
    score: float
    confidence: float
    components: dict[str, Component] = field(default_factory=dict)


def clamp(value: float, low: float = 0.0, high: float = 1.0) -> float:
    return max(low, min(high, value))


def confidence_for(samples: float, half_at: float) -> float:
    return samples / (samples + half_at) if samples > 0 else 0.0


def count_window(posts: list[PostView], awaiting_post: int) -> Counts:
    return Counts(
        posts=len(posts),
        likes=sum(post.likes for post in posts),
        comments=sum(post.comments for post in posts),
        shares=sum(post.shares for post in posts),
        sponsored_posts=sum(1 for post in posts if post.sponsored),
        awaiting_post=awaiting_post,
    )


def measure_engagement(posts: list[PostView], followers: int | None) -> Engagement:
    rates: list[float] = []
    weighted: list[float] = []
    audience: list[int] = []
    for post in posts:
        base = post.followers_at_post
        if base is None:
            continue
        base = max(base, 1)
        audience.append(base)
        rates.append((post.likes + post.comments + post.shares) / base)
        weighted.append(
            (LIKE_WEIGHT * post.likes + COMMENT_WEIGHT * post.comments
             + SHARE_WEIGHT * post.shares) / base
        )
    if not rates:
        return Engagement(None, None, _expected(followers), len(posts), 0, None)
    return Engagement(
        rate=sum(rates) / len(rates),
        weighted_rate=sum(weighted) / len(weighted),
        expected_rate=_expected(followers),
        posts=len(posts),
        posts_with_followers=len(rates),
        mean_followers_at_post=sum(audience) / len(audience),
    )


def _expected(followers: int | None) -> float | None:
    return None if followers is None else expected_engagement_rate(followers)


def engagement_fit_value(ratio: float) -> float:
    """Below normal rises to 0.5 at normal, 1.0 at 3x normal, then falls to 0 at 10x."""
    if ratio <= 1.0:
        return NEUTRAL * ratio
    if ratio <= FIT_BEST_RATIO:
        return NEUTRAL + NEUTRAL * (ratio - 1.0) / (FIT_BEST_RATIO - 1.0)
    return clamp(1.0 - (ratio - FIT_BEST_RATIO) / (FIT_IMPLAUSIBLE_RATIO - FIT_BEST_RATIO))


def score_credibility(
    posts: list[PostView], counts: Counts, engagement: Engagement, actors: ActorSummary
) -> Credibility:
    raw = [
        _engagement_fit(engagement),
        _conversation_depth(counts),
        *_audience(actors),
        _timing(posts, counts),
        _sponsored(counts),
        _niche(posts),
    ]
    components: dict[str, Component] = {}
    total = 0.0
    backed = 0.0
    for name, value, samples, inputs, evidence in raw:
        spec = COMPONENTS[name]
        confidence = confidence_for(samples, spec.half_confidence_at)
        effective = confidence * value + (1.0 - confidence) * NEUTRAL
        points = 100.0 * spec.weight * effective / _TOTAL_WEIGHT
        total += points
        backed += spec.weight * confidence
        components[name] = Component(
            name=name,
            weight=spec.weight,
            value=round(value, 4),
            confidence=round(confidence, 4),
            effective_value=round(effective, 4),
            points=round(points, 2),
            inputs={**inputs, f"sample_{spec.unit}": samples},
            evidence=evidence,
        )
    return Credibility(
        score=round(clamp(total, 0.0, 100.0), 2),
        confidence=round(backed / _TOTAL_WEIGHT, 4),
        components=components,
    )


_Raw = tuple[str, float, float, dict[str, Input], str]


def _engagement_fit(engagement: Engagement) -> _Raw:
    rate, expected = engagement.rate, engagement.expected_rate
    if rate is None or expected is None:
        inputs: dict[str, Input] = {"engagement_rate": rate, "expected_rate": expected}
        return ("engagement_fit", NEUTRAL, 0, inputs, "no follower count yet: size unknown")
    ratio = rate / expected
    value = engagement_fit_value(ratio)
    if ratio < 1.0:
        verdict = "below what is normal for this size"
    elif ratio <= FIT_BEST_RATIO:
        verdict = "above normal for this size"
    else:
        verdict = "implausibly high for this size"
    return (
        "engagement_fit",
        value,
        engagement.posts_with_followers,
        {"engagement_rate": round(rate, 6), "expected_rate": round(expected, 6),
         "ratio": round(ratio, 3)},
        f"engagement {rate:.2%} is {ratio:.1f}x the {expected:.2%} normal for its size: {verdict}",
    )


def _conversation_depth(counts: Counts) -> _Raw:
    total = counts.interactions
    deep = counts.comments + counts.shares
    share = deep / total if total else 0.0
    return (
        "conversation_depth",
        clamp(share / DEPTH_FULL_SHARE),
        total,
        {"comments": counts.comments, "shares": counts.shares, "likes": counts.likes,
         "deep_share": round(share, 4)},
        f"{share:.0%} of interactions are comments or shares "
        f"(full credit at {DEPTH_FULL_SHARE:.0%})",
    )


def _audience(actors: ActorSummary) -> tuple[_Raw, _Raw]:
    total = actors.interactions
    top_share = sum(actors.top_counts) / total if total else 0.0
    returning = clamp(1.0 - actors.distinct_actors / total) if total else 0.0
    diversity = 1.0 - top_share
    # A "loyal" audience of a handful of accounts is a pod, not loyalty: gate by diversity.
    loyalty = clamp(returning / LOYALTY_FULL_SHARE) * diversity
    exactness = "exact" if actors.exact else "estimated"
    loyalty_raw: _Raw = (
        "audience_loyalty",
        loyalty,
        total,
        {"returning_share": round(returning, 4),
         "distinct_actors": round(actors.distinct_actors, 1), "exact": actors.exact},
        f"{returning:.0%} of interactions come from returning actors "
        f"({actors.distinct_actors:.0f} distinct, {exactness})",
    )
    concentration_raw: _Raw = (
        "engagement_concentration",
        diversity,
        total,
        {"top_actors": TOP_ACTORS, "top_actors_share": round(top_share, 4),
         "exact": actors.exact},
        f"the {TOP_ACTORS} most active actors gave {top_share:.0%} of interactions",
    )
    return loyalty_raw, concentration_raw


def _timing(posts: list[PostView], counts: Counts) -> _Raw:
    early = sum(post.early for post in posts)
    total = counts.interactions
    share = early / total if total else 0.0
    return (
        "timing_authenticity",
        clamp(1.0 - share / BURST_ZERO_SHARE),
        total,
        {"early_interactions": early, "early_share": round(share, 4)},
        f"{share:.0%} of interactions came within the burst window after posting",
    )


def _sponsored(counts: Counts) -> _Raw:
    share = counts.sponsored_posts / counts.posts if counts.posts else 0.0
    return (
        "sponsored_share",
        1.0 - share,
        counts.posts,
        {"sponsored_posts": counts.sponsored_posts, "posts": counts.posts,
         "sponsored_share": round(share, 4)},
        f"{counts.sponsored_posts} of {counts.posts} posts are paid cooperations",
    )


def _niche(posts: list[PostView]) -> _Raw:
    tagged = [post for post in posts if post.topics]
    topics = Counter(topic for post in tagged for topic in set(post.topics))
    if not topics:
        return ("niche_focus", NEUTRAL, 0, {"top_topic": None, "topics": 0},
                "no post carries topics")
    # Ties broken by name so that a replay in another order names the same topic.
    top_topic, top_count = min(topics.items(), key=lambda item: (-item[1], item[0]))
    share = top_count / len(tagged)
    return (
        "niche_focus",
        share,
        len(tagged),
        {"top_topic": top_topic, "top_topic_share": round(share, 4), "topics": len(topics)},
        f"{share:.0%} of tagged posts are about '{top_topic}' ({len(topics)} topics in all)",
    )
