"""HTTP routes: scores, health, readiness, metrics, and the protected admin endpoint."""

from __future__ import annotations

import hmac
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, HTTPException, Path, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from service.consumer import StreamConsumer
from service.events import ACCOUNT_ID_PATTERN, MAX_ID_CHARS
from service.problems import problem
from service.responses import ProblemBody, ScoreBody, score_json
from service.settings import Settings

_PROBLEM = {"model": ProblemBody, "content": {"application/problem+json": {}}}


def _consumer(request: Request) -> StreamConsumer:
    consumer: StreamConsumer = request.app.state.consumer
    return consumer


def _check_token(request: Request, settings: Settings) -> None:
    expected = settings.api_token
    if not expected:
        raise HTTPException(403, "this endpoint needs ENGAGEMENT_API_TOKEN to be configured")
    supplied = request.headers.get("authorization", "")
    scheme, _, token = supplied.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), expected.encode()):
        raise HTTPException(401, "a valid bearer token is required",
                            headers={"WWW-Authenticate": "Bearer"})


async def require_admin(request: Request) -> None:
    _check_token(request, request.app.state.settings)


async def require_reader(request: Request) -> None:
    _check_token(request, request.app.state.settings)


AccountIdPath = Annotated[
    str,
    Path(min_length=1, max_length=MAX_ID_CHARS, pattern=ACCOUNT_ID_PATTERN,
         description="The account's id, as in the events' account_id."),
]


async def account_score(account_id: AccountIdPath, request: Request) -> Response:
    score = _consumer(request).engine.score(account_id)
    if score is None:
        return problem(404, "Not Found",
                       f"no events for account {account_id!r} in the current window",
                       request.url.path)
    return Response(score_json(score), media_type="application/json")


async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def readyz(request: Request) -> Response:
    consumer = _consumer(request)
    checks = {
        "state_restored": consumer.restored,
        "partitions_assigned": consumer.assigned,
        "dead_letter_topic_writable": consumer.dead_letters is not None
        and consumer.dead_letters.healthy,
    }
    ready = all(checks.values())
    body = {"status": "ready" if ready else "not_ready", "checks": checks}
    return Response(orjson.dumps(body), status_code=200 if ready else 503,
                    media_type="application/json")


async def metrics(request: Request) -> Response:
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


async def admin_snapshot(request: Request) -> dict[str, object]:
    result = await _consumer(request).request_snapshot()
    return {
        "path": result.path,
        "size_bytes": result.size_bytes,
        "accounts": result.accounts,
        "offsets": {str(p): o for p, o in result.offsets.items()},
        "pause_s": round(result.pause_s, 4),
        "duration_s": round(result.duration_s, 4),
    }


def build_router(settings: Settings) -> APIRouter:
    """Routes; the read guard is attached only when reads are protected, so open reads
    pay nothing for it."""
    readers = [Depends(require_reader)] if settings.protect_reads else []
    router = APIRouter()
    router.add_api_route(
        "/accounts/{account_id}/score", account_score, methods=["GET"],
        response_model=ScoreBody, responses={404: _PROBLEM, 401: _PROBLEM, 422: _PROBLEM},
        dependencies=readers,
        summary="Tier, engagement and explainable credibility of one account",
    )
    router.add_api_route("/healthz", healthz, methods=["GET"], summary="The process is alive")
    router.add_api_route(
        "/readyz", readyz, methods=["GET"],
        summary="State restored, partitions assigned, dead letters writable",
        responses={503: {"description": "Not ready; the body says why."}},
    )
    router.add_api_route("/metrics", metrics, methods=["GET"], response_class=Response,
                         dependencies=readers, summary="Prometheus metrics")
    router.add_api_route(
        "/admin/snapshot", admin_snapshot, methods=["POST"],
        dependencies=[Depends(require_admin)], responses={401: _PROBLEM, 403: _PROBLEM},
        summary="Write a snapshot now (needs the bearer token)",
    )
    return router
