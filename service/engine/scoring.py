"""Credibility: explainable components in two roles, quality and authenticity.

Quality components (the article's principles: engagement for the size, conversation,
loyal and diverse audience, niche, few paid posts) add points: `weight x value`, their
weights summing to 1. Authenticity components (evidence of fakes: bursts, busy actors,
farm-like actors that serve very many accounts or keep moving on to new ones, bought
followers, packaged per-post counts, off-topic posts the audience ignores and does not
talk about as on undisclosed ads, engagement too thin to judge)
multiply: each takes up to `weight` of the score away. So one strong piece of fraud
evidence costs a share of the whole score, not a fixed few points that good numbers
elsewhere make up for, and an account whose engagement is far below normal cannot
reach the middle of the scale on the "diversity" of almost nobody.

Every component reports its raw value, how much data backs it (confidence), the value
after shrinking by that confidence (quality towards neutral 0.5, authenticity towards
1: no evidence, no penalty), and its points: quality points are positive, authenticity
points are the deductions, and all of them add up to the score. docs/scoring.md derives
each formula and reports the measured separation (`python -m bench.scoring`).

A score's numbers are computed at once; its components (inputs, evidence, points) are
built when first read (`Explanation`): most callers need only the numbers, and the
explanation was most of a score's cost (docs/benchmarks.md, section 8b).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, ItemsView, Iterator, KeysView, Mapping, ValuesView
from dataclasses import dataclass, field
from functools import partial
from typing import Literal, NamedTuple

from service.engine.account import PostView
from service.engine.sketches import ActorSummary
from service.engine.tiers import (
    ENGAGEMENT_SIZE_ELASTICITY,
    REFERENCE_ENGAGEMENT_RATE,
    REFERENCE_FOLLOWERS,
    expected_engagement_rate,
)

try:
    import engagement_native
except ImportError:  # not built: the reference scores
    engagement_native = None  # type: ignore[assignment]

NEUTRAL = 0.5
TOP_ACTORS = 10

LIKE_WEIGHT = 1.0
COMMENT_WEIGHT = 2.0
SHARE_WEIGHT = 3.0

# Engagement fit, in multiples of the rate normal for the size: rises to full credit at
# FIT_BEST_RATIO, stays there to FIT_SUSPECT_RATIO, then falls to 0 at
# FIT_IMPLAUSIBLE_RATIO.
FIT_BEST_RATIO = 1.5
FIT_SUSPECT_RATIO = 2.0
FIT_IMPLAUSIBLE_RATIO = 5.0
# Below this multiple of normal, the engagement is too thin to judge its quality.
EVIDENCE_FULL_RATIO = 0.5
DEPTH_FULL_SHARE = 0.2
# Niche: the share of tagged posts on the most common topic; a niche account posts
# mostly on one (full credit), a feed of many topics or unflagged brand posts does not.
NICHE_FULL_SHARE = 0.8
NICHE_ZERO_SHARE = 0.3
LOYALTY_FULL_SHARE = 0.6
# Loyalty counts only as far as the audience is diverse: full once the 10 most active
# actors give at most half of the interactions.
LOYALTY_DIVERSE_AT = 0.5
# Bursts: real audiences put ~1 % of their interactions within seconds of a post.
BURST_TOLERATED_SHARE = 0.02
BURST_ZERO_SHARE = 0.08
# Time of day: the share of interactions in the quietest 3-hour bin of the day. People
# sleep (a few per cent at night); drip-fed bots do not (1/8 when flat).
RHYTHM_FULL_QUIET_SHARE = 0.02
RHYTHM_ZERO_QUIET_SHARE = 0.06
# Audience authenticity: the share of judged interactions from busy actors (>= 10
# accounts in the actor side's period) at which the component reaches 0, and the share
# real audiences have anyway (power users who engage with many accounts).
AUDIENCE_TOLERATED_SHARE = 0.01
AUDIENCE_ZERO_SHARE = 0.10
# Audience rotation: the same for farm-like actors (>= 40 accounts, or rotating: most of
# their accounts met once and never again). Real people who discovered a few accounts
# in the period look rotating too, so real audiences show a larger share.
ROTATION_TOLERATED_SHARE = 0.18
ROTATION_ZERO_SHARE = 0.38
# Follower growth over the window that engagement growth does not explain: tolerated
# up to FOLLOWER_ORGANIC_GROWTH, zero credit at FOLLOWER_ZERO_GROWTH.
FOLLOWER_ORGANIC_GROWTH = 0.10
FOLLOWER_ZERO_GROWTH = 0.50
# Follower jumps, read at the posts: the largest rise in followers between consecutive
# posts (or since the last post), less what the engagement across it explains, in
# shares of the audience the engagement supports. Tolerated up to FOLLOWER_JUMP_TOLERATED,
# zero credit at FOLLOWER_JUMP_ZERO.
FOLLOWER_JUMP_TOLERATED = 0.15
FOLLOWER_JUMP_ZERO = 0.50
# Per-post counts: real posts vary (coefficient of variation ~0.3-0.8); bought
# packages deliver the same number to every post.
VARIATION_FULL_CV = 0.25
# Off-topic engagement: undisclosed ads are posts off the account's niche that its
# audience does not care for. The shortfall is the share of the account's expected
# engagement (its niche posts' mean, weighted, on every judged post) missing on its
# off-topic posts; tolerated up to OFF_TOPIC_TOLERATED_SHORTFALL (a real
# off-topic post varies like any other), zero credit at OFF_TOPIC_ZERO_SHORTFALL.
OFF_TOPIC_TOLERATED_SHORTFALL = 0.08
OFF_TOPIC_ZERO_SHORTFALL = 0.30
# Off-topic conversation: people do not talk about ads. The drop of the comment and share
# share on off-topic posts against the niche posts: tolerated up to
# OFF_TOPIC_TOLERATED_DROP (sampling noise), zero credit at OFF_TOPIC_ZERO_DROP.
OFF_TOPIC_TOLERATED_DROP = 0.20
OFF_TOPIC_ZERO_DROP = 0.50

Role = Literal["quality", "authenticity"]


@dataclass(frozen=True, slots=True)
class ComponentSpec:
    role: Role
    weight: float  # quality: share of the score; authenticity: most it can take away
    half_confidence_at: float  # sample size at which confidence is 0.5
    unit: str  # what the sample size counts


COMPONENTS: dict[str, ComponentSpec] = {
    "engagement_fit": ComponentSpec("quality", 0.25, 3, "posts"),
    "conversation_depth": ComponentSpec("quality", 0.10, 30, "interactions"),
    "audience_loyalty": ComponentSpec("quality", 0.10, 50, "interactions"),
    "engagement_concentration": ComponentSpec("quality", 0.20, 50, "interactions"),
    "sponsored_share": ComponentSpec("quality", 0.15, 2, "posts"),
    "niche_focus": ComponentSpec("quality", 0.20, 2, "posts"),
    "engagement_evidence": ComponentSpec("authenticity", 1.0, 2, "posts"),
    "timing_authenticity": ComponentSpec("authenticity", 0.6, 30, "interactions"),
    "daily_rhythm": ComponentSpec("authenticity", 0.4, 200, "interactions"),
    "audience_authenticity": ComponentSpec("authenticity", 0.7, 30, "interactions"),
    "audience_rotation": ComponentSpec("authenticity", 0.7, 30, "interactions"),
    "follower_consistency": ComponentSpec("authenticity", 0.7, 2, "posts"),
    "follower_jumps": ComponentSpec("authenticity", 0.7, 2, "posts"),
    "post_variation": ComponentSpec("authenticity", 0.3, 4, "posts"),
    "off_topic_engagement": ComponentSpec("authenticity", 0.7, 2, "off_topic_posts"),
    "off_topic_conversation": ComponentSpec("authenticity", 0.7, 50,
                                            "off_topic_interactions"),
}

Input = int | float | str | bool | None


class Component(NamedTuple):
    """One component of a score, explained. A named tuple, not a frozen dataclass: a
    body builds sixteen, and a frozen dataclass took 2 us each to build (0.8 here)."""

    name: str
    weight: float
    value: float
    confidence: float
    effective_value: float
    points: float
    inputs: dict[str, Input]
    evidence: str
    role: Role = "quality"
    factor: float = 1.0  # authenticity: what it multiplies the score by


@dataclass(frozen=True, slots=True)
class Engagement:
    rate: float | None
    weighted_rate: float | None
    expected_rate: float | None  # for the followers at posting time, like the rate
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
class Followers:
    """The follower counts the score compares: at the window's start and now."""

    at_window_start: int | None
    now: int | None


@dataclass(frozen=True, slots=True)
class AudienceCounts:
    """What the actor side reported for the window (see engine/audience.py)."""

    interactions: int = 0
    busy: int = 0
    farm_like: int = 0


@dataclass(frozen=True, slots=True)
class Credibility:
    score: float
    confidence: float
    # Built when first read in a score the engine computed (`Explanation`).
    components: Mapping[str, Component] = field(default_factory=dict)
    quality: float = 0.0  # the sum of the quality points, before the deductions


def clamp(value: float, low: float = 0.0, high: float = 1.0) -> float:
    return max(low, min(high, value))


def confidence_for(samples: float, half_at: float) -> float:
    return samples / (samples + half_at) if samples > 0 else 0.0


class PostSums:
    """What a score reads from the window's posts, gathered in one pass over them.

    A cold score used to walk the posts once for the counts, once for the engagement
    and once more in each of six components; this pass does it once (docs/benchmarks.md,
    section 8b). It holds the totals (`counts`), the per-post rates behind `engagement`,
    and the per-post numbers that those components read: `timing_authenticity`
    (`early`), `post_variation` and `follower_consistency` (`interactions`),
    `follower_jumps` (`known_followers`, `known_interactions`), `niche_focus` and the
    off-topic pair (`tagged`, `posts_by_topic`, `engagement_by_topic`). Float sums keep
    the posts' order and `sum()`, so every number is the one the separate walks gave.
    A component that needs another per-post number can add it here, or walk the posts
    itself.
    """

    __slots__ = ("audience", "comments", "early", "engagement_by_topic", "expected",
                 "interactions", "known_followers", "known_interactions", "likes", "posts",
                 "posts_by_topic", "rates", "shares", "sponsored", "tagged", "weighted_rates")

    def __init__(self, posts: list[PostView]) -> None:
        likes = comments = shares = sponsored = early = 0
        interactions: list[int] = []
        # Of the posts with a follower count at posting time (the engagement's rates):
        rates: list[float] = []
        weighted_rates: list[float] = []
        audience = 0  # their follower counts (at least 1), summed
        expected: list[float] = []
        # Their followers at posting time and interactions, ordered as a sort of
        # (posted_at, followers, interactions) orders them. The posts come by
        # (posted_at, post_id), and posts at the same moment have the same follower
        # count, so the orders differ only if such posts' interactions fall.
        known_followers: list[int] = []
        known_interactions: list[int] = []
        known_at, known_last, misordered = -math.inf, 0, False
        # Of the posts with topics: (topics, weighted interactions, interactions, comments
        # and shares), and per topic the posts and weighted interactions.
        tagged: list[tuple[tuple[str, ...], float, int, int]] = []
        posts_by_topic: dict[str, int] = {}
        engagement_by_topic: dict[str, float] = {}
        last_base, last_expected = -1, 0.0  # most posts share one follower count
        for (posted_at, _, is_sponsored, topics, post_likes, post_comments, post_shares,
             post_early, followers) in posts:
            likes += post_likes
            comments += post_comments
            shares += post_shares
            sponsored += is_sponsored
            early += post_early
            total = post_likes + post_comments + post_shares
            interactions.append(total)
            weighted = (LIKE_WEIGHT * post_likes + COMMENT_WEIGHT * post_comments
                        + SHARE_WEIGHT * post_shares)
            if followers is not None:
                if posted_at == known_at and total < known_last:
                    misordered = True
                known_at, known_last = posted_at, total
                known_followers.append(followers)
                known_interactions.append(total)
                base = max(followers, 1)
                if base != last_base:
                    last_base, last_expected = base, expected_engagement_rate(base)
                audience += base
                expected.append(last_expected)
                rates.append(total / base)
                weighted_rates.append(weighted / base)
            if topics:
                tagged.append((topics, weighted, total, post_comments + post_shares))
                for topic in (topics if len(topics) == 1 else set(topics)):
                    posts_by_topic[topic] = posts_by_topic.get(topic, 0) + 1
                    engagement_by_topic[topic] = engagement_by_topic.get(topic, 0.0) + weighted
        if misordered:
            known = sorted((post.posted_at, post.followers_at_post or 0,
                            post.likes + post.comments + post.shares)
                           for post in posts if post.followers_at_post is not None)
            known_followers = [count for _, count, _ in known]
            known_interactions = [interactions for _, _, interactions in known]
        self.posts = len(posts)
        self.likes, self.comments, self.shares = likes, comments, shares
        self.sponsored, self.early = sponsored, early
        self.interactions = interactions
        self.rates, self.weighted_rates = rates, weighted_rates
        self.audience, self.expected = audience, expected
        self.known_followers, self.known_interactions = known_followers, known_interactions
        self.tagged = tagged
        self.posts_by_topic, self.engagement_by_topic = posts_by_topic, engagement_by_topic

    def counts(self, awaiting_post: int) -> Counts:
        return Counts(self.posts, self.likes, self.comments, self.shares, self.sponsored,
                      awaiting_post)

    def engagement(self) -> Engagement:
        rates = self.rates
        if not rates:
            return Engagement(None, None, None, self.posts, 0, None)
        with_followers = len(rates)
        # rate, weighted rate, expected rate, posts, posts with followers, mean followers
        return Engagement(sum(rates) / with_followers,
                          sum(self.weighted_rates) / with_followers,
                          sum(self.expected) / with_followers, self.posts, with_followers,
                          self.audience / with_followers)


def ratio_to_normal(interactions_per_post: float, followers: int) -> float:
    """Engagement per post over `followers`, in multiples of what is normal for them."""
    base = max(followers, 1)
    return interactions_per_post / base / expected_engagement_rate(base)


def engagement_fit_value(ratio: float) -> float:
    """0.5 at normal, full credit from FIT_BEST_RATIO to FIT_SUSPECT_RATIO, then down to
    0 at FIT_IMPLAUSIBLE_RATIO: bought engagement must not earn more than real."""
    if ratio <= 1.0:
        return NEUTRAL * ratio
    if ratio <= FIT_BEST_RATIO:
        return NEUTRAL + NEUTRAL * (ratio - 1.0) / (FIT_BEST_RATIO - 1.0)
    if ratio <= FIT_SUSPECT_RATIO:
        return 1.0
    return clamp(1.0 - (ratio - FIT_SUSPECT_RATIO) / (FIT_IMPLAUSIBLE_RATIO - FIT_SUSPECT_RATIO))


def score_credibility(
    posts: list[PostView], counts: Counts, engagement: Engagement, actors: ActorSummary,
    followers: Followers | None = None, audience: AudienceCounts | None = None,
    sums: PostSums | None = None,
) -> Credibility:
    """The score's numbers now, its components (`Explanation`) when first read. `sums`
    are the posts' (`PostSums(posts)`), passed when the caller has them already."""
    shaped, quality, backed, score = weigh_components(posts, counts, engagement, actors,
                                                      followers, audience, sums)
    return Credibility(round(clamp(score, 0.0, 100.0), 2), round(backed / _QUALITY_WEIGHT, 4),
                       Explanation(partial(_explain, shaped, quality, score)), round(quality, 2))


def weigh_components(
    posts: list[PostView], counts: Counts, engagement: Engagement, actors: ActorSummary,
    followers: Followers | None = None, audience: AudienceCounts | None = None,
    sums: PostSums | None = None,
) -> tuple[list[_Shaped], float, float, float]:
    """Every component measured and weighed: the components shaped by their specs, the
    quality points, the weight their confidence backs, and the score, unrounded (what
    the compiled numbers are held to, bit for bit)."""
    followers = followers or Followers(None, None)
    audience = audience or AudienceCounts()
    if sums is None:
        sums = PostSums(posts)
    measured = [
        _engagement_fit(counts, engagement, followers),
        _conversation_depth(counts),
        *_audience(actors),
        _sponsored(counts),
        _niche(sums),
        _evidence(counts, engagement, followers),
        _timing(sums, counts),
        _rhythm(actors),
        _audience_authenticity(audience),
        _audience_rotation(audience),
        _follower_consistency(sums, engagement, followers),
        _follower_jumps(sums, followers),
        _post_variation(sums),
        *_off_topic(sums),
    ]
    shaped: list[_Shaped] = []
    quality = 0.0
    backed = 0.0
    multiplier = 1.0
    for name, value, samples, explain in measured:
        spec, is_quality, weight, half_at, points_per_value = _WEIGHING[name]
        # confidence_for, inlined
        confidence = samples / (samples + half_at) if samples > 0 else 0.0
        if is_quality:
            effective = confidence * value + (1.0 - confidence) * NEUTRAL
            quality += points_per_value * effective  # 100.0 * weight * effective
            backed += weight * confidence
            factor = 1.0
        else:
            # No evidence, no penalty: an authenticity component shrinks towards 1.
            effective = confidence * value + (1.0 - confidence)
            factor = 1.0 - weight * (1.0 - effective)
            multiplier *= factor
        shaped.append((name, spec, value, samples, confidence, effective, factor, explain))
    return shaped, quality, backed, quality * multiplier


# The numbers compiled (native/src/scoring.rs) where they give this module's bits: its
# sums of floats are Python 3.11's, added left to right (3.12's `sum` compensates).
COMPILED_AVAILABLE = engagement_native is not None and sys.version_info[:2] == (3, 11)


def score_credibility_compiled(
    posts: list[PostView], counts: Counts, engagement: Engagement, actors: ActorSummary,
    followers: Followers, audience: AudienceCounts, sums: PostSums,
) -> Credibility:
    """`score_credibility`, its numbers computed in compiled code: the same bits
    (tests/unit/test_scoring_native.py), 1.3 us against 26 us for the sixteen components
    in Python (docs/benchmarks.md, "Session 14"). The components are the reference's,
    measured again when first read: a body costs what it did, the numbers that the gate,
    discovery and the cache read cost a fraction."""
    numbers = engagement_native.credibility_numbers(sums, actors, followers, audience)
    if numbers is None:  # a follower count past 2^53: Python's exact division decides
        return score_credibility(posts, counts, engagement, actors, followers, audience, sums)
    quality, backed, score = numbers
    return Credibility(
        round(clamp(score, 0.0, 100.0), 2), round(backed / _QUALITY_WEIGHT, 4),
        Explanation(partial(_reference_components, posts, counts, engagement, actors,
                            followers, audience, sums)),
        round(quality, 2))


def _reference_components(posts: list[PostView], counts: Counts, engagement: Engagement,
                          actors: ActorSummary, followers: Followers,
                          audience: AudienceCounts, sums: PostSums) -> dict[str, Component]:
    shaped, quality, _, score = weigh_components(posts, counts, engagement, actors,
                                                 followers, audience, sums)
    return _explain(shaped, quality, score)


Explained = tuple[dict[str, Input], str]  # a component's inputs and its evidence
# A component as measured: its name, value and sample size, and how to explain it.
_Measured = tuple[str, float, float, Callable[[], Explained]]
# The same, shaped by its spec: name, spec, value, samples, confidence, effective value,
# factor, explain.
_Shaped = tuple[str, ComponentSpec, float, float, float, float, float,
                Callable[[], Explained]]
_QUALITY_WEIGHT = sum(spec.weight for spec in COMPONENTS.values() if spec.role == "quality")
# What the weighing reads of each spec, looked up once per component instead of four
# attribute reads and a string comparison: spec, is quality, weight, half-confidence
# sample size, and 100 x weight (the same product `100.0 * weight * effective` begins with).
_WEIGHING: dict[str, tuple[ComponentSpec, bool, float, float, float]] = {
    name: (spec, spec.role == "quality", spec.weight, spec.half_confidence_at,
           100.0 * spec.weight)
    for name, spec in COMPONENTS.items()
}


class Explanation(Mapping[str, Component]):
    """A score's components by name, built when first read, then kept.

    Most readers of a score want only its numbers: the score-change gate compares tier
    and credibility, discovery's index keeps a few values. Rounding ~80 inputs and
    formatting an evidence string per component was most of the cost of a score, so
    each component measures its numbers and returns a function that explains them
    (`Explained`); `build` runs those, once, for the first caller that reads the
    components (a body for HTTP or the change stream). What they explain is immutable
    (views of posts, counts), so a late explanation is the one an eager one would have
    been.
    """

    __slots__ = ("_build", "_built")

    def __init__(self, build: Callable[[], dict[str, Component]]) -> None:
        self._build: Callable[[], dict[str, Component]] | None = build
        self._built: dict[str, Component] | None = None

    def _components(self) -> dict[str, Component]:
        built = self._built
        if built is None:
            assert self._build is not None
            built = self._built = self._build()
            self._build = None  # the explanations' inputs are no longer needed
        return built

    def __getitem__(self, name: str) -> Component:
        return self._components()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._components())

    def __len__(self) -> int:
        return len(self._components())

    # The dict's own views: score_json reads every component of every body it renders.
    def keys(self) -> KeysView[str]:
        return self._components().keys()

    def items(self) -> ItemsView[str, Component]:
        return self._components().items()

    def values(self) -> ValuesView[Component]:
        return self._components().values()

    def __repr__(self) -> str:
        return repr(self._components())


def _explain(shaped: list[_Shaped], quality: float, score: float) -> dict[str, Component]:
    # The deductions (quality - score) are shared in proportion to -log(factor): the
    # share of the product each factor is responsible for, whatever their order.
    logs = {entry[0]: -math.log(max(entry[6], 1e-12)) for entry in shaped if entry[6] < 1.0}
    total_log = sum(logs.values())
    components: dict[str, Component] = {}
    for name, spec, value, samples, confidence, effective, factor, explain in shaped:
        if spec.role == "quality":
            points = 100.0 * spec.weight * effective
        elif total_log > 0.0 and name in logs:
            points = -(quality - score) * logs[name] / total_log
        else:
            points = 0.0
        inputs, evidence = explain()
        components[name] = Component(
            name=name,
            weight=spec.weight,
            value=round(value, 4),
            confidence=round(confidence, 4),
            effective_value=round(effective, 4),
            points=round(points, 2),
            inputs={**inputs, f"sample_{spec.unit}": samples},
            evidence=evidence,
            role=spec.role,
            factor=round(factor, 4),
        )
    return components


def _explained(inputs: dict[str, Input], evidence: str) -> Callable[[], Explained]:
    """The explanation of a component whose inputs cost nothing to state."""
    return lambda: (inputs, evidence)


def _per_post(counts: Counts) -> float:
    return counts.interactions / counts.posts if counts.posts else 0.0


def _engagement_fit(counts: Counts, engagement: Engagement,
                    followers: Followers) -> _Measured:
    now, start = followers.now, followers.at_window_start
    if now is None or start is None or not counts.posts:
        return ("engagement_fit", NEUTRAL, 0,
                _explained({"engagement_rate": engagement.rate,
                            "expected_rate": engagement.expected_rate},
                           "no follower count yet: size unknown"))
    per_post = _per_post(counts)
    # Both sides judge the interactions per post against one follower count and what is
    # normal for that same count. Today's count judges "too little": followers bought
    # after posting lower it. The count at the window's start judges "too much": the
    # same purchase cannot make bought engagement look plausible.
    ratio_now = ratio_to_normal(per_post, now)
    ratio_start = ratio_now if start == now else ratio_to_normal(per_post, start)
    value = min(engagement_fit_value(min(ratio_now, FIT_BEST_RATIO)),
                engagement_fit_value(max(ratio_start, FIT_BEST_RATIO)))

    def explain() -> Explained:
        ratio = max(ratio_start, ratio_now) if ratio_start > FIT_SUSPECT_RATIO else ratio_now
        if ratio < 1.0:
            verdict = "below what is normal for this size"
        elif ratio <= FIT_SUSPECT_RATIO:
            verdict = "above normal for this size"
        else:
            verdict = "implausibly high for this size"
        return (
            {"interactions_per_post": round(per_post, 2), "followers": now,
             "followers_at_window_start": start,
             "expected_rate": round(expected_engagement_rate(max(now, 1)), 6),
             "ratio": round(ratio_now, 3), "ratio_at_window_start": round(ratio_start, 3)},
            f"{per_post:.0f} interactions per post are {ratio:.1f}x what is normal for "
            f"{now:,} followers: {verdict}",
        )

    return ("engagement_fit", value, engagement.posts_with_followers, explain)


def _evidence(counts: Counts, engagement: Engagement, followers: Followers) -> _Measured:
    if followers.now is None or not counts.posts:
        return ("engagement_evidence", 1.0, 0,
                _explained({"ratio": None}, "no follower count yet: nothing to weigh"))
    ratio = ratio_to_normal(_per_post(counts), followers.now)
    value = clamp(ratio / EVIDENCE_FULL_RATIO)

    def explain() -> Explained:
        return (
            {"ratio": round(ratio, 4), "full_at_ratio": EVIDENCE_FULL_RATIO},
            f"engagement is {ratio:.2g}x normal for the size"
            + ("" if value >= 1.0 else ": too little to judge its quality, all points scaled"),
        )

    return ("engagement_evidence", value, engagement.posts_with_followers, explain)


def _conversation_depth(counts: Counts) -> _Measured:
    total = counts.interactions
    deep = counts.comments + counts.shares
    share = deep / total if total else 0.0

    def explain() -> Explained:
        return (
            {"comments": counts.comments, "shares": counts.shares, "likes": counts.likes,
             "deep_share": round(share, 4)},
            f"{share:.0%} of interactions are comments or shares "
            f"(full credit at {DEPTH_FULL_SHARE:.0%})",
        )

    return ("conversation_depth", clamp(share / DEPTH_FULL_SHARE), total, explain)


def _audience(actors: ActorSummary) -> tuple[_Measured, _Measured]:
    total = actors.interactions
    top_share = sum(actors.top_counts) / total if total else 0.0
    returning = clamp(1.0 - actors.distinct_actors / total) if total else 0.0
    diversity = 1.0 - top_share
    # A "loyal" audience of a handful of accounts is a pod, not loyalty: gate by diversity.
    loyalty = clamp(returning / LOYALTY_FULL_SHARE) * clamp(diversity / LOYALTY_DIVERSE_AT)

    def explain_loyalty() -> Explained:
        exactness = "exact" if actors.exact else "estimated"
        return (
            {"returning_share": round(returning, 4),
             "distinct_actors": round(actors.distinct_actors, 1), "exact": actors.exact},
            f"{returning:.0%} of interactions come from returning actors "
            f"({actors.distinct_actors:.0f} distinct, {exactness})",
        )

    def explain_concentration() -> Explained:
        return (
            {"top_actors": TOP_ACTORS, "top_actors_share": round(top_share, 4),
             "exact": actors.exact},
            f"the {TOP_ACTORS} most active actors gave {top_share:.0%} of interactions",
        )

    return (("audience_loyalty", loyalty, total, explain_loyalty),
            ("engagement_concentration", diversity, total, explain_concentration))


def _timing(sums: PostSums, counts: Counts) -> _Measured:
    early = sums.early
    total = counts.interactions
    share = early / total if total else 0.0

    def explain() -> Explained:
        return (
            {"early_interactions": early, "early_share": round(share, 4)},
            f"{share:.0%} of interactions came within the burst window after posting",
        )

    return (
        "timing_authenticity",
        clamp(1.0 - (share - BURST_TOLERATED_SHARE) / (BURST_ZERO_SHARE - BURST_TOLERATED_SHARE)),
        total,
        explain,
    )


def _rhythm(actors: ActorSummary) -> _Measured:
    rhythm = actors.rhythm
    total = sum(rhythm)
    if not total:
        return ("daily_rhythm", 1.0, 0, _explained({"quiet_share": None}, "no interactions yet"))
    quiet = min(rhythm) / total
    value = clamp((RHYTHM_ZERO_QUIET_SHARE - quiet)
                  / (RHYTHM_ZERO_QUIET_SHARE - RHYTHM_FULL_QUIET_SHARE))

    def explain() -> Explained:
        quietest = rhythm.index(min(rhythm)) * 24 // len(rhythm)
        return (
            {"quiet_share": round(quiet, 4), "quietest_hours_utc": f"{quietest:02d}-"
             f"{quietest + 24 // len(rhythm):02d}"},
            f"{quiet:.1%} of interactions fall in the quietest 3 hours of the day "
            f"(people sleep; a flat day is {1 / len(rhythm):.1%})",
        )

    return ("daily_rhythm", value, total, explain)


def _audience_authenticity(audience: AudienceCounts) -> _Measured:
    total = audience.interactions
    share = audience.busy / total if total else 0.0
    value = clamp(1.0 - (share - AUDIENCE_TOLERATED_SHARE)
                  / (AUDIENCE_ZERO_SHARE - AUDIENCE_TOLERATED_SHARE))

    def explain() -> Explained:
        return (
            {"judged_interactions": total, "from_busy_actors": audience.busy,
             "busy_share": round(share, 4),
             "from_farm_like_actors": audience.farm_like},  # judged by audience_rotation
            f"{audience.busy} of {total} judged interactions came from actors busy across "
            f"many accounts" if total else "no audience signal yet",
        )

    return ("audience_authenticity", value, total, explain)


def _audience_rotation(audience: AudienceCounts) -> _Measured:
    total = audience.interactions
    share = audience.farm_like / total if total else 0.0
    value = clamp(1.0 - (share - ROTATION_TOLERATED_SHARE)
                  / (ROTATION_ZERO_SHARE - ROTATION_TOLERATED_SHARE))

    def explain() -> Explained:
        return (
            {"judged_interactions": total, "from_farm_like_actors": audience.farm_like,
             "farm_like_share": round(share, 4)},
            f"{audience.farm_like} of {total} judged interactions came from farm-like "
            f"actors (serving very many accounts, or moving on from account to account "
            f"without coming back)" if total else "no audience signal yet",
        )

    return ("audience_rotation", value, total, explain)


def _follower_consistency(sums: PostSums, engagement: Engagement,
                          followers: Followers) -> _Measured:
    now, start = followers.now, followers.at_window_start
    if now is None or start is None or start <= 0:
        return ("follower_consistency", 1.0, 0,
                _explained({"follower_growth": None}, "no follower history to compare"))
    growth = now / start - 1.0
    engagement_growth = _engagement_growth(sums.interactions)
    unexplained = max(0.0, growth - max(0.0, engagement_growth) - FOLLOWER_ORGANIC_GROWTH)
    value = clamp(1.0 - unexplained / (FOLLOWER_ZERO_GROWTH - FOLLOWER_ORGANIC_GROWTH))

    def explain() -> Explained:
        return (
            {"followers_at_window_start": start, "followers": now,
             "follower_growth": round(growth, 4),
             "engagement_growth": round(engagement_growth, 4),
             "unexplained_growth": round(unexplained, 4)},
            f"followers {growth:+.0%} over the window, interactions per post "
            f"{engagement_growth:+.0%}: {unexplained:.0%} of growth unexplained",
        )

    return ("follower_consistency", value, engagement.posts_with_followers, explain)


def _engagement_growth(interactions: list[int]) -> float:
    """Interactions per post on the newer half of the window's posts against the older
    half, minus 1 (0 with fewer than two posts); `interactions` per post, oldest first."""
    if len(interactions) < 2:
        return 0.0
    half = len(interactions) // 2
    older = sum(interactions[:half]) / half
    newer = sum(interactions[len(interactions) - half :]) / half
    return newer / older - 1.0 if older > 0 else 0.0


def supported_followers(interactions_per_post: float) -> float:
    """The follower count for which these interactions per post are the normal rate:
    the audience the engagement supports (`f x expected_rate(f) = per_post`, solved)."""
    reach = interactions_per_post / (REFERENCE_ENGAGEMENT_RATE * REFERENCE_FOLLOWERS)
    return float(REFERENCE_FOLLOWERS * reach ** (1.0 / (1.0 - ENGAGEMENT_SIZE_ELASTICITY)))




def _follower_jumps(sums: PostSums, followers: Followers) -> _Measured:
    """Sudden follower jumps that engagement does not follow, read from the posts.

    Each post carries the followers it had; a jump between two posts (or between the last
    post and now) with the same interactions per post after it is bought. Unlike
    `follower_consistency` (the window's trend against the engagement's trend), this is
    local: each step against the engagement across that step. A step is measured in
    followers gained over the audience the engagement supports, not over the follower
    count, so buying more followers only ever makes a step larger.
    """
    counts = sums.known_followers  # at each post with a follower count, by time
    engagement = sums.known_interactions  # of the same posts
    if not counts or followers.now is None:
        return ("follower_jumps", 1.0, 0,
                _explained({"largest_jump": None}, "no posts with a follower count to compare"))
    per_post = sum(engagement) / len(engagement)
    supported = max(supported_followers(per_post), 1.0)
    worst, worst_gain, worst_response = 0.0, 0, 0.0
    # Steps between posts, each explained by the engagement after it against before it;
    # the step since the last post by that post against the ones before.
    total, before, last = sum(engagement), 0, len(counts) - 1
    for index, count in enumerate(counts):
        before += engagement[index]
        if index < last:
            gain = counts[index + 1] - count
            after = (total - before) / (last - index)
        else:
            gain = followers.now - count
            before, after = before - engagement[last], engagement[last]
        mean_before = before / (index + 1 if index < last else last) if before else 0.0
        response = after / mean_before - 1.0 if mean_before > 0 else 0.0
        unexplained = gain / supported - max(0.0, response)
        if unexplained > worst:
            worst, worst_gain, worst_response = unexplained, gain, response
    value = clamp(1.0 - (worst - FOLLOWER_JUMP_TOLERATED)
                  / (FOLLOWER_JUMP_ZERO - FOLLOWER_JUMP_TOLERATED))

    def explain() -> Explained:
        return (
            {"largest_jump_followers": worst_gain, "supported_followers": round(supported),
             "engagement_response": round(worst_response, 4),
             "unexplained_jump": round(worst, 4)},
            f"the largest follower jump between posts, {worst_gain:+,}, is "
            f"{worst_gain / supported:.0%} of the {supported:,.0f} followers the engagement "
            f"supports; interactions per post moved {worst_response:+.0%} across it"
            if worst > 0 else "no follower jump beyond what the engagement explains",
        )

    return ("follower_jumps", value, len(counts), explain)


def _post_variation(sums: PostSums) -> _Measured:
    counts = sums.interactions
    if len(counts) < 3 or not any(counts):
        return ("post_variation", 1.0, 0,
                _explained({"coefficient_of_variation": None}, "too few posts to compare"))
    mean = sum(counts) / len(counts)
    spread = math.sqrt(sum((count - mean) ** 2 for count in counts) / (len(counts) - 1))
    variation = spread / mean

    def explain() -> Explained:
        return (
            {"coefficient_of_variation": round(variation, 4), "full_at": VARIATION_FULL_CV},
            f"interactions per post vary by {variation:.0%} (real posts vary; bought "
            f"packages deliver the same count to every post)",
        )

    return ("post_variation", clamp(variation / VARIATION_FULL_CV), len(counts), explain)


def _top_topic(by_topic: dict[str, int] | dict[str, float]) -> tuple[str, float]:
    """The topic with the largest value; ties broken by name, so that replays in any
    order agree."""
    if len(by_topic) == 1:
        return next(iter(by_topic.items()))
    return min(by_topic.items(), key=lambda item: (-item[1], item[0]))


def _off_topic(sums: PostSums) -> tuple[_Measured, _Measured]:
    """How the audience treats the posts off the account's niche: as much engagement
    (`off_topic_engagement`) and as much conversation (`off_topic_conversation`) as on
    the niche posts, or less, as on undisclosed ads."""
    if not sums.engagement_by_topic:
        return (("off_topic_engagement", 1.0, 0,
                 _explained({"main_topic": None}, "no post carries topics")),
                ("off_topic_conversation", 1.0, 0,
                 _explained({"main_topic": None}, "no post carries topics")))
    # The niche is the topic the audience engages with most (not the one posted most: a
    # feed of undisclosed ads may post more ads than niche posts).
    main, _ = _top_topic(sums.engagement_by_topic)
    # Flagged paid posts count too: flagging an ad must not lift this penalty (more
    # sponsored posts never raise credibility; sponsored_share judges the flag).
    niche_weighted: list[float] = []
    off_weighted: list[float] = []
    niche_total = niche_deep = off_total = off_deep = 0
    for topics, weighted, total, deep in sums.tagged:
        if main in topics:
            niche_weighted.append(weighted)
            niche_total += total
            niche_deep += deep
        else:
            off_weighted.append(weighted)
            off_total += total
            off_deep += deep
    return (_off_topic_engagement(main, niche_weighted, off_weighted),
            _off_topic_conversation(main, _deep_share(niche_deep, niche_total),
                                    _deep_share(off_deep, off_total), off_total))


def _off_topic_engagement(main: str, niche: list[float], off: list[float]) -> _Measured:
    """`niche` and `off`: the weighted interactions of the niche and off-topic posts."""
    niche_mean = sum(niche) / len(niche)
    if not off or niche_mean <= 0.0:
        return ("off_topic_engagement", 1.0, 0,
                _explained({"main_topic": main, "off_topic_posts": 0, "shortfall": 0.0},
                           f"no post off '{main}' to compare"))
    off_mean = sum(off) / len(off)
    off_posts, niche_posts = len(off), len(niche)
    shortfall = max(0.0, niche_mean - off_mean) * off_posts / (niche_mean * (niche_posts
                                                                              + off_posts))
    value = clamp(1.0 - (shortfall - OFF_TOPIC_TOLERATED_SHORTFALL)
                  / (OFF_TOPIC_ZERO_SHORTFALL - OFF_TOPIC_TOLERATED_SHORTFALL))

    def explain() -> Explained:
        return (
            {"main_topic": main, "off_topic_posts": off_posts, "niche_posts": niche_posts,
             "off_topic_to_niche": round(off_mean / niche_mean, 4),
             "shortfall": round(shortfall, 4)},
            f"{off_posts} posts off '{main}' drew {off_mean / niche_mean:.0%} of the "
            f"niche posts' engagement (weighted): {shortfall:.0%} of the expected engagement "
            f"missing, as on undisclosed ads",
        )

    return ("off_topic_engagement", value, off_posts, explain)


def _deep_share(deep: int, total: int) -> float:
    """The share of comments and shares among the interactions."""
    return deep / total if total else 0.0


def _off_topic_conversation(main: str, niche_deep: float, off_deep: float,
                            off_total: int) -> _Measured:
    if not off_total or niche_deep <= 0.0:
        return ("off_topic_conversation", 1.0, 0,
                _explained({"main_topic": main, "off_topic_interactions": off_total,
                            "drop": 0.0},
                           f"no interactions off '{main}' to compare with conversation on it"))
    drop = max(0.0, 1.0 - off_deep / niche_deep)
    value = clamp(1.0 - (drop - OFF_TOPIC_TOLERATED_DROP)
                  / (OFF_TOPIC_ZERO_DROP - OFF_TOPIC_TOLERATED_DROP))

    def explain() -> Explained:
        return (
            {"main_topic": main, "off_topic_deep_share": round(off_deep, 4),
             "niche_deep_share": round(niche_deep, 4), "drop": round(drop, 4)},
            f"{off_deep:.0%} of the interactions on posts off '{main}' are comments or "
            f"shares, against {niche_deep:.0%} on it: people do not talk about ads",
        )

    return ("off_topic_conversation", value, off_total, explain)


def _sponsored(counts: Counts) -> _Measured:
    share = counts.sponsored_posts / counts.posts if counts.posts else 0.0

    def explain() -> Explained:
        return (
            {"sponsored_posts": counts.sponsored_posts, "posts": counts.posts,
             "sponsored_share": round(share, 4)},
            f"{counts.sponsored_posts} of {counts.posts} posts are paid cooperations",
        )

    return ("sponsored_share", 1.0 - share, counts.posts, explain)


def _niche(sums: PostSums) -> _Measured:
    topics = sums.posts_by_topic  # tagged posts per topic
    if not topics:
        return ("niche_focus", NEUTRAL, 0,
                _explained({"top_topic": None, "topics": 0}, "no post carries topics"))
    top_topic, top_count = _top_topic(topics)
    tagged = len(sums.tagged)
    share = top_count / tagged

    def explain() -> Explained:
        return (
            {"top_topic": top_topic, "top_topic_share": round(share, 4),
             "topics": len(topics)},
            f"{share:.0%} of tagged posts are about '{top_topic}' ({len(topics)} topics in "
            f"all)",
        )

    return ("niche_focus",
            clamp((share - NICHE_ZERO_SHARE) / (NICHE_FULL_SHARE - NICHE_ZERO_SHARE)),
            tagged, explain)
