"""Discovery and batch scores on the real service, fed through the real broker."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from tests.events import followers, interaction, post
from tests.integration.conftest import ServiceProcess, produce, wait_for

pytestmark = pytest.mark.integration

# account -> (followers, topic, likes per post, comments per post)
ACCOUNTS: dict[str, tuple[int, str, int, int]] = {
    **{f"vegan-micro-{n}": (2_000 + 1_000 * n, "veganism", 40 + 25 * n, 4 + 3 * n)
       for n in range(6)},
    **{f"chess-micro-{n}": (4_000 + 500 * n, "chess", 60, 2) for n in range(3)},
    "vegan-nano-0": (600, "veganism", 30, 6),
    "vegan-mega-0": (2_000_000, "veganism", 200, 5),
}


def account_events() -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for account, (count, topic, likes, comments) in ACCOUNTS.items():
        events.append(followers(account, count, 0))
        for number in range(3):
            post_id = f"{account}-p{number}"
            posted = 100 + number * 3_600
            events.append(post(account, post_id, posted, topics=(topic,)))
            events += [interaction("like", account, post_id, f"{account}-fan{n}",
                                   posted + 60 + n) for n in range(likes)]
            events += [interaction("comment", account, post_id, f"{account}-fan{n}",
                                   posted + 600 + n) for n in range(comments)]
    return events


@pytest.fixture
async def fed(started: ServiceProcess, producer: AIOKafkaProducer) -> ServiceProcess:
    await produce(producer, started.topic, account_events())

    def all_indexed() -> bool:
        body = httpx.get(f"{started.url}/accounts", params={"limit": 200}).json()
        # Every account's last comment counted and indexed.
        counted = {item["account_id"]: item["counts"]["comments"] for item in body["items"]}
        return counted == {account: 3 * comments
                           for account, (_, _, _, comments) in ACCOUNTS.items()}

    await wait_for(all_indexed, timeout_s=60)
    return started


def page_through(url: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(50):
        response = httpx.get(url, params={**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["partial"] is False
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("pagination did not end")


async def test_filters_order_and_pages_agree_with_the_scores(fed: ServiceProcess) -> None:
    url = f"{fed.url}/accounts"
    items = page_through(url, {"tier": "micro", "topic": "veganism",
                               "sort": "-credibility", "limit": 2})
    ids = [item["account_id"] for item in items]
    assert sorted(ids) == sorted(account for account in ACCOUNTS
                                 if account.startswith("vegan-micro"))
    assert len(set(ids)) == len(ids)
    credibilities = [item["credibility"] for item in items]
    assert credibilities == sorted(credibilities, reverse=True)
    for item in items:
        assert item["tier"] == "micro"
        single = httpx.get(f"{fed.url}/accounts/{item['account_id']}/score").json()
        # The same body, but for how long ago its partition last progressed.
        assert item.pop("freshness")["partition"] == single.pop("freshness")["partition"]
        assert single == item

    by_followers = page_through(url, {"sort": "followers", "limit": 4,
                                      "min_followers": 1_000, "max_followers": 5_000})
    # Equal follower counts are ordered by account id.
    assert [item["account_id"] for item in by_followers] == [
        "vegan-micro-0", "vegan-micro-1", "chess-micro-0", "vegan-micro-2", "chess-micro-1",
        "chess-micro-2", "vegan-micro-3"]

    strict = page_through(url, {"min_credibility": credibilities[1], "tier": "micro",
                                "topic": "veganism"})
    assert {item["account_id"] for item in strict} == {
        item["account_id"] for item in items if item["credibility"] >= credibilities[1]}
    assert len(strict) >= 2

    rated = page_through(url, {"sort": "-engagement_rate", "tier": ["nano", "mega"]})
    assert [item["account_id"] for item in rated] == ["vegan-nano-0", "vegan-mega-0"]


async def test_bad_parameters_get_a_problem_naming_them(fed: ServiceProcess) -> None:
    response = httpx.get(f"{fed.url}/accounts", params={"sort": "likes"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "sort" in response.json()["detail"]
    response = httpx.get(f"{fed.url}/accounts", params={"limit": 500})
    assert response.status_code == 422
    assert "limit" in response.json()["detail"]


async def test_batch_answers_known_ids_and_names_the_missing(fed: ServiceProcess) -> None:
    ids = ["chess-micro-1", "nobody", "vegan-nano-0"]
    response = httpx.post(f"{fed.url}/accounts/scores", json={"account_ids": ids})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body["scores"]) == {"chess-micro-1", "vegan-nano-0"}
    assert body["missing"] == ["nobody"]
    for account_id, score in body["scores"].items():
        single = httpx.get(f"{fed.url}/accounts/{account_id}/score").json()
        assert score.pop("freshness")["partition"] == single.pop("freshness")["partition"]
        assert score == single
    response = httpx.post(f"{fed.url}/accounts/scores", json={"account_ids": ["bad id"]})
    assert response.status_code == 422
    assert "account_ids[0]" in response.json()["detail"]


async def test_the_index_follows_new_events(fed: ServiceProcess,
                                            producer: AIOKafkaProducer) -> None:
    # chess-micro-0 grows past 10,000 followers: it is no longer micro.
    await produce(producer, fed.topic, [followers("chess-micro-0", 50_000, 20_000)])

    def moved() -> bool:
        body = httpx.get(f"{fed.url}/accounts", params={"tier": "mid"}).json()
        return [item["account_id"] for item in body["items"]] == ["chess-micro-0"]

    await wait_for(moved, timeout_s=30)
    micro = page_through(f"{fed.url}/accounts", {"tier": "micro", "topic": "chess"})
    assert {item["account_id"] for item in micro} == {"chess-micro-1", "chess-micro-2"}
