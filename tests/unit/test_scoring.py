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


def test_quality_weights_sum_to_one_and_all_points_add_up_to_the_score() -> None:
    quality = [spec.weight for spec in COMPONENTS.values() if spec.role == "quality"]
    assert sum(quality) == pytest.approx(1.0)
    for profile in (AUTHENTIC_MICRO, POD_PUMPED, MEGA_LOW):
        credibility = scored(profile).credibility
        points = sum(c.points for c in credibility.components.values())
        assert points == pytest.approx(credibility.score, abs=0.1)
        deductions = [c.points for c in credibility.components.values()
                      if c.role == "authenticity"]
        assert all(points <= 0 for points in deductions)
        assert credibility.quality + sum(deductions) == pytest.approx(credibility.score,
                                                                       abs=0.1)


@pytest.mark.parametrize("rival", [POD_PUMPED, PAID_FEED, SCATTERED, LIKES_ONLY, MEGA_LOW],
                         ids=lambda profile: profile.kind)
def test_authentic_loyal_niche_micro_account_outranks(rival: Profile) -> None:
    authentic = scored(AUTHENTIC_MICRO)
    other = scored(rival)
    assert authentic.credibility.score > other.credibility.score + 3


def test_each_pattern_is_blamed_on_the_component_that_sees_it() -> None:
    authentic = scored(AUTHENTIC_MICRO).credibility.components
    pod = scored(POD_PUMPED).credibility.components
    assert pod["engagement_concentration"].value < 0.2
    assert pod["timing_authenticity"].value < 0.5
    assert pod["timing_authenticity"].points < -10
    assert scored(PAID_FEED).credibility.components["sponsored_share"].value < 0.5
    assert scored(SCATTERED).credibility.components["niche_focus"].value < 0.6
    assert scored(LIKES_ONLY).credibility.components["conversation_depth"].value == 0
    mega = scored(MEGA_LOW).credibility.components
    assert mega["engagement_fit"].value < 0.3
    assert mega["engagement_evidence"].factor < 0.5
    assert all(authentic[name].value > 0.6 for name in authentic)


def test_dead_engagement_cannot_reach_the_middle_of_the_scale() -> None:
    """A mega account with almost no engagement (0.004 % of its followers) and a
    'diverse' audience of almost nobody (the issue's example scored about 50)."""
    engine = Engine()
    engine.apply(decoded(followers("mega", 3_000_000, 0)))
    for index in range(6):
        engine.apply(decoded(post("mega", f"p{index}", 10 + index * DAY)))
        for n in range(120):
            kind = "comment" if n % 4 == 0 else "like"
            engine.apply(decoded(interaction(kind, "mega", f"p{index}", f"u{index}-{n}",
                                             3_600 + index * DAY + n * 97)))
    score = engine.score("mega")
    assert score is not None
    assert score.engagement.rate is not None
    assert score.engagement.rate < 0.0001
    assert score.credibility.score < 25


def test_bought_engagement_far_above_normal_earns_less_fit_than_real_engagement() -> None:
    assert engagement_fit_value(5.6) < engagement_fit_value(1.4)
    assert engagement_fit_value(2.8) < engagement_fit_value(1.6)


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
                         [(0, 0), (1, 0.5), (1.25, 0.75), (1.5, 1), (2, 1), (3.5, 0.5),
                          (5, 0), (40, 0)])
def test_engagement_fit_rewards_above_normal_and_distrusts_implausible(
    ratio: float, expected: float
) -> None:
    assert engagement_fit_value(ratio) == pytest.approx(expected)


def test_a_cached_score_follows_the_follower_count_at_the_window_start() -> None:
    """The fit and the follower check read the count at the window's start, so a score
    cached before the window start passes a follower observation is stale after it,
    even within one actor bucket."""
    bucket_s = Engine().config.actor_bucket_s
    # A follower observation in the middle of an actor bucket, a day or more after T0.
    jump = (T0.timestamp() // bucket_s + 1.5) * bucket_s - T0.timestamp()
    events = [followers("acc", 1_000, 0), followers("acc", 3_000, jump),
              post("acc", "p", jump + DAY)]
    events += [interaction("like", "acc", "p", f"u{n}", jump + DAY + 60 + n)
               for n in range(60)]
    cached, fresh = Engine(), Engine()
    for event in [*events, followers("other", 10, jump + 30 * DAY - 3_600)]:
        cached.apply(decoded(event))
        fresh.apply(decoded(event))
    before = cached.score("acc")
    assert before is not None
    assert before.credibility.components["follower_consistency"].value < 1
    later = followers("other", 10, jump + 30 * DAY + 3_600)  # the window start passes it
    cached.apply(decoded(later))
    fresh.apply(decoded(later))
    after = cached.score("acc")
    assert after is not None
    assert after.credibility.components["follower_consistency"].value == 1
    assert after == fresh.score("acc")



def test_components_read_after_later_events_explain_the_score_as_it_was_computed() -> None:
    """The engine computes a score's numbers and explains its components only when they
    are first read: by then the account has moved on, and the explanation must not."""
    events = account_events("acc", AUTHENTIC_MICRO, T0.timestamp(), DAY, random.Random(1))
    half = len(events) // 2
    moving, stopped = Engine(), Engine()
    for event in events[:half]:
        moving.apply(decoded(event))
        stopped.apply(decoded(event))
    early = moving.score("acc")
    assert early is not None
    for event in events[half:]:
        moving.apply(decoded(event))
    later = moving.score("acc")
    assert later is not None
    assert later.credibility.score != early.credibility.score
    reference = stopped.score("acc")
    assert reference is not None
    assert dict(early.credibility.components) == dict(reference.credibility.components)
    assert dict(later.credibility.components) != dict(early.credibility.components)


def test_a_scores_components_are_explained_once_and_kept() -> None:
    credibility = scored(POD_PUMPED).credibility
    first = credibility.components["audience_loyalty"]
    assert credibility.components["audience_loyalty"] is first
    assert list(credibility.components) == list(COMPONENTS)
    assert len(credibility.components) == len(COMPONENTS)


def feed(ad_engagement: float, ad_comments: float, seed: int = 3) -> AccountScore:
    """Six niche posts and four brand posts a day apart, 2,000 followers: niche posts get
    80 interactions, a fifth of them comments; brand posts `ad_engagement` times as many,
    `ad_comments` times the comment share."""
    rng = random.Random(seed)
    engine = Engine()
    events = [followers("acc", 2_000, 0)]
    for number in range(10):
        is_ad = number % 5 in (1, 3)
        topics = ["crypto" if number % 2 else "energy-drinks"] if is_ad else ["veganism"]
        posted_at = number * DAY
        events.append(post("acc", f"p{number}", posted_at, topics=topics))
        count = round(80 * (ad_engagement if is_ad else 1.0))
        comment_share = 0.2 * (ad_comments if is_ad else 1.0)
        for n in range(count):
            kind = "comment" if rng.random() < comment_share else "like"
            events.append(interaction(kind, "acc", f"p{number}", f"fan{rng.randrange(400)}",
                                      posted_at + 600 + n * 60))
    for event in events:
        engine.apply(decoded(event))
    score = engine.score("acc")
    assert score is not None
    return score


def test_off_topic_posts_the_audience_ignores_and_does_not_talk_about_cost_credibility() -> None:
    """Undisclosed ads: brand posts with a third of the engagement and half the comments
    are blamed on off_topic_engagement and off_topic_conversation; off-topic posts that
    the audience treats like the niche posts cost nothing."""
    honest = feed(ad_engagement=1.0, ad_comments=1.0).credibility
    ads = feed(ad_engagement=0.35, ad_comments=0.5).credibility
    for name in ("off_topic_engagement", "off_topic_conversation"):
        assert honest.components[name].factor > 0.95, name
        assert ads.components[name].value < 0.5, name
        assert ads.components[name].points < -3, name
        assert ads.components[name].inputs["main_topic"] == "veganism"
    assert ads.score < honest.score - 15


def jumped(response: float, jump_after_post: int, seed: int = 5) -> AccountScore:
    """Six posts a day apart, 2,000 followers, ~100 interactions per post; 3,000 followers
    bought after post `jump_after_post` (6: after the last post), the posts after it
    drawing `response` times the interactions."""
    rng = random.Random(seed)
    engine = Engine()
    events = [followers("acc", 2_000, 0)]
    for number in range(6):
        posted_at = DAY + number * DAY
        if number == jump_after_post:
            events.append(followers("acc", 5_000, posted_at - 3_600))
        events.append(post("acc", f"p{number}", posted_at))
        count = round(100 * (1.0 + 0.3 * (number % 3 - 1))
                      * (response if number >= jump_after_post else 1.0))
        events += [interaction("comment" if n % 5 == 0 else "like", "acc", f"p{number}",
                               f"fan{rng.randrange(300)}", posted_at + 600 + n * 60)
                   for n in range(count)]
    if jump_after_post >= 6:
        events.append(followers("acc", 5_000, 6 * DAY + 3_600))
    for event in events:
        engine.apply(decoded(event))
    score = engine.score("acc")
    assert score is not None
    return score


@pytest.mark.parametrize("jump_after_post", [3, 6], ids=["between posts", "after the last"])
def test_a_follower_jump_the_engagement_does_not_follow_costs_credibility(
    jump_after_post: int,
) -> None:
    """follower_jumps reads the followers each post had (and today's count after the last
    post): 150 % more followers with the same interactions per post cost most of its
    weight; the same jump between posts with engagement that follows it costs nothing."""
    bought = jumped(response=1.0, jump_after_post=jump_after_post).credibility
    earned = jumped(response=2.5, jump_after_post=jump_after_post).credibility
    component = bought.components["follower_jumps"]
    assert component.value == 0.0
    assert component.inputs["largest_jump_followers"] == 3_000
    assert component.points < -5
    if jump_after_post < 6:  # after the last post no post shows a response
        assert earned.components["follower_jumps"].value == 1.0
        assert bought.score < earned.score - 10


def test_posts_at_one_moment_are_read_in_the_same_order_whatever_their_ids() -> None:
    """follower_jumps reads the posts by time, then by interactions (not by post id):
    two posts at one moment, their interactions swapped between the ids, get the same
    component (follower_consistency's halves do follow the ids). Read in id order, the
    step since the last post would compare 5 likes against 1 in one account and 1
    against 5 in the other."""
    engine = Engine()
    for account, likes in (("first", {"p1": 5, "p2": 1}), ("second", {"p1": 1, "p2": 5})):
        events = [followers(account, 1_000, 0.0)]
        for post_id, count in likes.items():
            events.append(post(account, post_id, 10.0))
            events += [interaction("like", account, post_id, f"u{n}", 20.0 + n)
                       for n in range(count)]
        events.append(followers(account, 5_000, 100.0))
        for event in events:
            engine.apply(decoded(event))
    first, second = engine.score("first"), engine.score("second")
    assert first is not None
    assert second is not None
    jumps = first.credibility.components["follower_jumps"]
    other = second.credibility.components["follower_jumps"]
    # Its points differ: the deductions are shared out over the whole score.
    assert (jumps.value, jumps.inputs, jumps.evidence) == (other.value, other.inputs,
                                                           other.evidence)
    assert jumps.inputs["largest_jump_followers"] == 4_000
    assert jumps.inputs["engagement_response"] == 4.0  # 5 likes after 1, in time order
