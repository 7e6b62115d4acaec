"""Tiers by follower count, and what engagement is normal for an account's size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

TierSchemeName = Literal["article", "industry"]
UNKNOWN_TIER = "unknown"


@dataclass(frozen=True, slots=True)
class TierScheme:
    name: str
    upper_bounds: tuple[tuple[int, str], ...]  # (inclusive upper bound, tier), ascending
    top_tier: str

    def tier_for(self, followers: int | None) -> str:
        if followers is None:
            return UNKNOWN_TIER
        for upper, tier in self.upper_bounds:
            if followers <= upper:
                return tier
        return self.top_tier


# The article's scheme: micro-influencers have "10,000 or considerably fewer" followers.
ARTICLE_TIERS = TierScheme(
    name="article",
    upper_bounds=((999, "nano"), (10_000, "micro"), (100_000, "mid"), (1_000_000, "macro")),
    top_tier="mega",
)

# The scheme common in influencer-marketing tooling; below 1,000 is not yet a tier there.
INDUSTRY_TIERS = TierScheme(
    name="industry",
    upper_bounds=(
        (999, "emerging"),
        (9_999, "nano"),
        (99_999, "micro"),
        (499_999, "mid"),
        (999_999, "macro"),
    ),
    top_tier="mega",
)

TIER_SCHEMES: dict[str, TierScheme] = {"article": ARTICLE_TIERS, "industry": INDUSTRY_TIERS}

# Engagement falls with size (the article cites Statista); a power law fits published
# per-tier medians: ~5 % at 1k followers, ~2.7 % at 10k, ~1.5 % at 100k, ~0.8 % at 1M.
REFERENCE_FOLLOWERS = 1_000
REFERENCE_ENGAGEMENT_RATE = 0.05
ENGAGEMENT_SIZE_ELASTICITY = 0.27
SMALLEST_SIZE_FOR_NORM = 100


def expected_engagement_rate(followers: int) -> float:
    """The engagement rate that is normal for an account of this size."""
    size = max(followers, SMALLEST_SIZE_FOR_NORM) / REFERENCE_FOLLOWERS
    return float(REFERENCE_ENGAGEMENT_RATE * size**-ENGAGEMENT_SIZE_ELASTICITY)
