"""The walking skeleton end to end: events on the real broker, scores over HTTP."""

from __future__ import annotations

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from tests.events import followers, interaction, post
from tests.integration.conftest import ServiceProcess, get_json, produce, wait_for

pytestmark = pytest.mark.integration


def skeleton_events() -> list[dict[str, object]]:
    events: list[dict[str, object]] = [
        followers("acc-42", 5_000, 0), post("acc-42", "p1", 10), post("acc-42", "p2", 20)]
    events += [interaction("like", "acc-42", "p1", f"u{i}", 30 + i) for i in range(120)]
    events += [interaction("comment", "acc-42", "p2", f"u{i}", 200 + i) for i in range(20)]
    events += [interaction("share", "acc-42", "p2", f"u{i}", 300 + i) for i in range(10)]
    events.append(events[-1])  # a re-sent share must count once
    events += [followers("big-1", 2_500_000, 0), post("big-1", "b1", 5)]
    events += [interaction("like", "big-1", "b1", f"v{i}", 40 + i) for i in range(30)]
    return events


async def test_scores_show_counts_rate_and_tier(
    started: ServiceProcess, producer: AIOKafkaProducer
) -> None:
    await produce(producer, started.topic, skeleton_events())
    url = f"{started.url}/accounts/acc-42/score"

    def counted() -> object:
        status, body = get_json(url)
        return body if status == 200 and body["counts"]["shares"] == 10 else None

    body = await wait_for(counted)
    assert body["counts"] == {"posts": 2, "likes": 120, "comments": 20, "shares": 10,
                              "sponsored_posts": 0, "awaiting_post": 0}
    assert body["engagement_rate"] == pytest.approx(150 / (2 * 5_000))
    assert body["tier"] == "micro"
    assert body["followers"] == 5_000
    assert 0 <= body["credibility"] <= 100
    assert body["window_days"] == 30
    assert body["as_of"].startswith("2026-11-01T00:05")
    assert set(body["components"]) >= {"engagement_fit", "audience_loyalty",
                                       "engagement_concentration", "sponsored_share"}
    status, big = get_json(f"{started.url}/accounts/big-1/score")
    assert status == 200
    assert big["tier"] == "mega"
    assert big["credibility"] < body["credibility"]


async def test_unknown_account_is_a_json_404(started: ServiceProcess) -> None:
    response = httpx.get(f"{started.url}/accounts/nobody/score")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404
    assert "nobody" in response.json()["detail"]


@pytest.mark.parametrize("account_id", ["x" * 129, "bad%20id", "semi;colon"])
async def test_invalid_account_ids_are_refused_with_a_reason(
    started: ServiceProcess, account_id: str
) -> None:
    response = httpx.get(f"{started.url}/accounts/{account_id}/score")
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "account_id" in response.json()["detail"]


async def test_health_readiness_metrics_and_docs(
    started: ServiceProcess, producer: AIOKafkaProducer
) -> None:
    await produce(producer, started.topic, [followers("m-1", 10, 0)])
    health = httpx.get(f"{started.url}/healthz").json()
    assert (health["status"], health["consumer"]) == ("ok", "running")
    ready = httpx.get(f"{started.url}/readyz").json()
    assert ready["status"] == "ready"

    def consumed() -> str | None:
        text = httpx.get(f"{started.url}/metrics").text
        return text if 'engagement_events_total{outcome="counted",type="followers"}' in text \
            else None

    metrics = await wait_for(consumed)
    for name in ("engagement_accounts_tracked", "engagement_consumer_lag_messages",
                 "engagement_batch_processing_seconds_bucket", "engagement_build_info",
                 "engagement_http_request_duration_seconds_bucket"):
        assert name in metrics
    assert 'route="/accounts/{account_id}/score"' in metrics or "route=" in metrics
    assert httpx.get(f"{started.url}/openapi.json").json()["paths"]


async def test_admin_snapshot_needs_the_configured_token(service: ServiceProcess) -> None:
    service.extra_env["ENGAGEMENT_API_TOKEN"] = "s3cret"
    service.start()
    service.wait_ready()
    refused = httpx.post(f"{service.url}/admin/snapshot")
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    wrong = httpx.post(f"{service.url}/admin/snapshot",
                       headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    done = httpx.post(f"{service.url}/admin/snapshot",
                      headers={"Authorization": "Bearer s3cret"}, timeout=30)
    assert done.status_code == 200
    assert done.json()["path"].endswith("snapshots")
    assert done.json()["accounts"] >= 0
    assert sorted(done.json()["offsets"]) == ["0", "1", "2"]  # one snapshot per partition


async def test_oversized_request_bodies_are_refused(started: ServiceProcess) -> None:
    response = httpx.post(f"{started.url}/admin/snapshot", content=b"x" * 10_000)
    assert response.status_code == 413
    assert response.json()["title"] == "Content Too Large"
