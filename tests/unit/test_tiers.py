import pytest

from service.engine.tiers import (
    ARTICLE_TIERS,
    INDUSTRY_TIERS,
    UNKNOWN_TIER,
    expected_engagement_rate,
)


@pytest.mark.parametrize(
    ("followers", "tier"),
    [(0, "nano"), (999, "nano"), (1_000, "micro"), (10_000, "micro"), (10_001, "mid"),
     (100_000, "mid"), (100_001, "macro"), (1_000_000, "macro"), (1_000_001, "mega")],
)
def test_article_scheme_puts_10000_or_fewer_followers_in_micro(followers: int, tier: str) -> None:
    assert ARTICLE_TIERS.tier_for(followers) == tier


@pytest.mark.parametrize(
    ("followers", "tier"),
    [(999, "emerging"), (1_000, "nano"), (9_999, "nano"), (10_000, "micro"),
     (99_999, "micro"), (100_000, "mid"), (500_000, "macro"), (1_000_000, "mega")],
)
def test_industry_scheme_starts_nano_at_1000(followers: int, tier: str) -> None:
    assert INDUSTRY_TIERS.tier_for(followers) == tier


def test_account_without_follower_count_has_unknown_tier() -> None:
    assert ARTICLE_TIERS.tier_for(None) == UNKNOWN_TIER


def test_normal_engagement_falls_as_accounts_grow() -> None:
    sizes = [100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000]
    rates = [expected_engagement_rate(size) for size in sizes]
    assert rates == sorted(rates, reverse=True)
    assert expected_engagement_rate(1_000) == pytest.approx(0.05)
