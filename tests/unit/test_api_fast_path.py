"""The score fast path answers exactly as the FastAPI route, and leaves the rest to it."""

from __future__ import annotations

import random

import httpx
import pytest
from fastapi import FastAPI

from service.app import create_app
from service.engine import Engine
from service.partition_state import PartitionState, Status
from service.settings import Settings
from service.simulation import AUTHENTIC_MICRO, account_events
from tests.events import T0, decoded


def filled_engine() -> Engine:
    engine = Engine()
    for event in account_events("acc-1", AUTHENTIC_MICRO, T0.timestamp(), 86_400,
                                random.Random(2)):
        engine.apply(decoded(event))
    return engine


def app_with(engine: Engine, **settings: object) -> FastAPI:
    """The app, owning the one partition of a one-partition topic."""
    app = create_app(Settings(**settings))  # type: ignore[arg-type]
    state = PartitionState(0, engine.config)
    state.engine = engine
    state.status = Status.ACTIVE
    app.state.processor.partition_count = 1
    app.state.processor.states[0] = state
    return app


async def get(app: FastAPI, path: str, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path, headers=headers)


async def test_fast_path_answers_byte_for_byte_as_the_route() -> None:
    engine = filled_engine()
    fast = await get(app_with(engine), "/accounts/acc-1/score")
    # With protected reads the fast path stands aside and the FastAPI route answers.
    routed = await get(app_with(engine, protect_reads=True, api_token="t"),
                       "/accounts/acc-1/score", token="t")
    assert fast.status_code == routed.status_code == 200
    # Equal but for how long ago the partition last made progress.
    fast_body, routed_body = fast.json(), routed.json()
    for body in (fast_body, routed_body):
        body["freshness"].pop("seconds_since_progress")
    assert fast_body == routed_body
    assert fast.headers["x-engagement-served-by"] == routed.headers["x-engagement-served-by"]
    assert fast.headers["content-type"] == routed.headers["content-type"]


@pytest.mark.parametrize(("path", "status"), [
    ("/accounts/unknown/score", 404),
    ("/accounts/bad%20id/score", 422),
    ("/accounts/" + "x" * 129 + "/score", 422),
])
async def test_everything_but_a_known_valid_account_falls_through(path: str, status: int) -> None:
    response = await get(app_with(filled_engine()), path)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"


async def test_protected_reads_are_not_bypassed() -> None:
    response = await get(app_with(filled_engine(), protect_reads=True, api_token="t"),
                         "/accounts/acc-1/score")
    assert response.status_code == 401


async def test_fast_path_requests_are_measured_by_route_template() -> None:
    app = app_with(filled_engine())
    await get(app, "/accounts/acc-1/score")
    metrics = (await get(app, "/metrics")).text
    assert 'route="/accounts/{account_id}/score"' in metrics
    assert "acc-1" not in metrics
