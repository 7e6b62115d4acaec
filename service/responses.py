"""The JSON shapes of the HTTP API: pydantic models for the OpenAPI document, and the
fast path that turns an engine score into bytes with orjson."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel, Field

from service.engine import AccountScore
from service.partition_state import Freshness

Input = int | float | str | bool | None


class ComponentBody(BaseModel):
    weight: float = Field(description="quality: share of the credibility score this component "
                                      "carries; authenticity: the most of the score it can take "
                                      "away.")
    value: float = Field(description="What the data says, 0..1.")
    confidence: float = Field(description="How much data backs the value, 0..1.")
    effective_value: float = Field(description="value shrunk by the confidence: towards 0.5 "
                                               "(quality) or 1 (authenticity).")
    points: float = Field(description="Points this component adds to the 0-100 credibility "
                                      "(negative: what an authenticity component took away); "
                                      "all points add up to the credibility.")
    inputs: dict[str, Input]
    evidence: str
    role: str = Field("quality", description="'quality' components add points; "
                                             "'authenticity' components multiply the score.")
    factor: float = Field(1.0, description="What an authenticity component multiplies the "
                                           "score by (1 for quality components).")


class CountsBody(BaseModel):
    posts: int
    likes: int
    comments: int
    shares: int
    sponsored_posts: int
    awaiting_post: int = Field(description="Interactions whose post event has not arrived yet.")


class EngagementBody(BaseModel):
    rate: float | None
    weighted_rate: float | None = Field(description="Likes x1, comments x2, shares x3.")
    expected_rate: float | None = Field(description="What is normal for the account's size.")
    denominator: str
    posts: int
    posts_with_followers: int
    mean_followers_at_post: float | None


class FreshnessBody(BaseModel):
    partition: int = Field(description="The Kafka partition that holds the account.")
    lag_messages: int | None = Field(
        description="Events on the partition not yet consumed, as of the last lag reading "
                    "(every 5 s); null before the first.")
    seconds_since_progress: float | None = Field(
        description="Seconds since the partition last consumed events or was confirmed "
                    "caught up; grows while the broker is unreachable.")


class ScoreBody(BaseModel):
    account_id: str
    tier: str
    tier_scheme: str
    followers: int | None
    engagement_rate: float | None = Field(description="A fraction: 0.0604 is 6.04 %.")
    credibility: float = Field(ge=0, le=100)
    confidence: float = Field(ge=0, le=1)
    components: dict[str, ComponentBody]
    counts: CountsBody
    engagement: EngagementBody
    window_days: float
    window_start: str | None
    as_of: str | None
    freshness: FreshnessBody | None = Field(
        default=None, description="How current the answer is (absent in the change stream).")


class ProblemBody(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None


@functools.lru_cache(maxsize=256)  # window bounds repeat across queries between events
def _timestamp(epoch: float) -> str | None:
    if epoch in (float("inf"), float("-inf")):
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def score_json(score: AccountScore, freshness: Freshness | None = None) -> bytes:
    counts = score.counts
    engagement = score.engagement
    credibility = score.credibility
    body: dict[str, Any] = {
        "account_id": score.account_id,
        "tier": score.tier,
        "tier_scheme": score.tier_scheme,
        "followers": score.followers,
        "engagement_rate": None if engagement.rate is None else round(engagement.rate, 6),
        "credibility": credibility.score,
        "confidence": credibility.confidence,
        "components": {
            name: {
                "weight": component.weight,
                "value": component.value,
                "confidence": component.confidence,
                "effective_value": component.effective_value,
                "points": component.points,
                "inputs": component.inputs,
                "evidence": component.evidence,
                "role": component.role,
                "factor": component.factor,
            }
            for name, component in credibility.components.items()
        },
        "counts": {
            "posts": counts.posts,
            "likes": counts.likes,
            "comments": counts.comments,
            "shares": counts.shares,
            "sponsored_posts": counts.sponsored_posts,
            "awaiting_post": counts.awaiting_post,
        },
        "engagement": {
            "rate": engagement.rate,
            "weighted_rate": engagement.weighted_rate,
            "expected_rate": engagement.expected_rate,
            "denominator": engagement.denominator,
            "posts": engagement.posts,
            "posts_with_followers": engagement.posts_with_followers,
            "mean_followers_at_post": engagement.mean_followers_at_post,
        },
        "window_days": score.window_days,
        "window_start": _timestamp(score.window_start),
        "as_of": _timestamp(score.as_of),
    }
    if freshness is not None:
        body["freshness"] = {"partition": freshness.partition,
                             "lag_messages": freshness.lag_messages,
                             "seconds_since_progress": freshness.seconds_since_progress}
    return orjson.dumps(body)
