"""The labelled evaluation (bench/scoring.py) on a small population: it runs, its AUC is
the Mann-Whitney statistic, and credibility separates the kinds it must. The full run and
its figures are in docs/scoring.md."""

from __future__ import annotations

import pytest

from bench.scoring import FRAUD_KINDS, Population, auc, build, run, without


def test_auc_is_the_share_of_pairs_the_authentic_side_wins_ties_counting_half() -> None:
    assert auc([3, 4], [1, 2]) == 1.0
    assert auc([1, 2], [3, 4]) == 0.0
    assert auc([1, 3], [2, 2]) == pytest.approx(0.5)
    assert auc([2, 2], [2, 2]) == pytest.approx(0.5)
    assert auc([1, 2, 3], [2]) == pytest.approx(0.5)


def test_a_small_labelled_population_is_separated_and_every_score_adds_up() -> None:
    world = build(Population(authentic=40, per_kind=4, docs_breadth=10), seed=3)
    assert set(world.labels.values()) == {"authentic", *FRAUD_KINDS}
    scores = run(world)
    authentic = [scores[a].score for a, kind in world.labels.items() if kind == "authentic"]
    fraud = [scores[a].score for a, kind in world.labels.items() if kind != "authentic"]
    assert auc(authentic, fraud) > 0.9
    for kind in ("burst_farm", "drip_bought_likes", "issue_adversary"):
        assert auc(authentic, [scores[a].score for a, k in world.labels.items()
                               if k == kind]) > 0.95, kind
    # Bots as narrow as fans (caught by audience_rotation) and undisclosed ads (by the
    # off-topic components): 4 accounts each here, so a looser bound.
    for kind in ("narrow_docs_reader", "unflagged_sponsoring"):
        assert auc(authentic, [scores[a].score for a, k in world.labels.items()
                               if k == kind]) > 0.9, kind
    for credibility in scores.values():
        # Removing nothing is the score itself (before rounding).
        assert without(credibility, "") == pytest.approx(credibility.score, abs=0.1)
        points = sum(c.points for c in credibility.components.values())
        assert points == pytest.approx(credibility.score, abs=0.1)
