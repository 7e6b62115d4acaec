"""The article's principles, shown by the pure engine on simulated accounts."""

import random

import pytest

from service.engine import AccountScore, Engine
from service.engine.scoring import COMPONENTS, engagement_fit_value
from service.simulation import (
    AUTHENTIC_MICRO,
    LIKES_ONLY,
    MEGA_LOW,
    PAID_FEED,
    POD_PUMPED,
    SCATTERED,
    Profile,
    account_events,
)
from tests.events import T0, decoded, followers, interaction, post

DAY = 86_400.0


def scored(profile: Profile, seed: int = 1) -> AccountScore:
    engine = Engine()
    events = account_events("acc", profile, T0.timestamp(), DAY, random.Random(seed))
    for event in events:
        engine.apply(decoded(event))
    score = engine.score("acc")
    assert score is not None
    return score


def test_weights_sum_to_one_so_points_add_up_to_the_score() -> None:
    assert sum(spec.weight for spec in COMPONENTS.values()) == pytest.approx(1.0)
    score = scored(AUTHENTIC_MICRO)
    points = sum(c.points for c in score.credibility.components.values())
    assert points == pytest.approx(score.credibility.score, abs=0.05)


@pytest.mark.parametrize("rival", [POD_PUMPED, PAID_FEED, SCATTERED, LIKES_ONLY, MEGA_LOW],
                         ids=lambda profile: profile.kind)
def test_authentic_loyal_niche_micro_account_outranks(rival: Profile) -> None:
    authentic = scored(AUTHENTIC_MICRO)
    other = scored(rival)
    assert authentic.credibility.score > other.credibility.score + 3


def test_each_pattern_is_blamed_on_the_component_that_sees_it() -> None:
    authentic = scored(AUTHENTIC_MICRO).credibility.components
    assert scored(POD_PUMPED).credibility.components["engagement_concentration"].value < 0.2
    assert scored(POD_PUMPED).credibility.components["timing_authenticity"].value < 0.5
    assert scored(PAID_FEED).credibility.components["sponsored_share"].value < 0.5
    assert scored(SCATTERED).credibility.components["niche_focus"].value < 0.6
    assert scored(LIKES_ONLY).credibility.components["conversation_depth"].value == 0
    assert scored(MEGA_LOW).credibility.components["engagement_fit"].value < 0.3
    assert all(authentic[name].value > 0.6 for name in authentic)


def test_a_new_account_with_two_events_gets_no_extreme_score() -> None:
    engine = Engine()
    for event in (followers("new", 50, 0), post("new", "p", 10),
                  interaction("like", "new", "p", "u", 12)):
        engine.apply(decoded(event))
    score = engine.score("new")
    assert score is not None
    assert 40 <= score.credibility.score <= 60
    assert score.credibility.confidence < 0.3


def test_every_component_explains_itself() -> None:
    for component in scored(AUTHENTIC_MICRO).credibility.components.values():
        assert 0 <= component.value <= 1
        assert 0 <= component.confidence <= 1
        assert component.evidence
        assert component.inputs


@pytest.mark.parametrize(("ratio", "expected"),
                         [(0, 0), (1, 0.5), (2, 0.75), (3, 1), (6.5, 0.5), (10, 0), (40, 0)])
def test_engagement_fit_rewards_above_normal_and_distrusts_implausible(
    ratio: float, expected: float
) -> None:
    assert engagement_fit_value(ratio) == pytest.approx(expected)
