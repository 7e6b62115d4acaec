"""HTTP routes: scores (answered here or by the owner of the account's partition),
health, readiness, the cluster's view, metrics, and the protected admin endpoint.

The routes read the state through `StreamProcessor`'s narrow surface (`locate`,
`readiness`, `local_partitions`, the cluster map); they never reach into an engine that
is not the owner's.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Path, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from service.consumer import Elsewhere, Owned, StreamProcessor, Unavailable
from service.events import ACCOUNT_ID_PATTERN, MAX_ID_CHARS
from service.metrics import Metrics
from service.problems import problem
from service.responses import ProblemBody, ScoreBody, score_json
from service.routing import FORWARDED_HEADER, SERVED_BY_HEADER, Forwarder, ForwardingError
from service.settings import Settings
from service.supervisor import ConsumerSupervisor

_PROBLEM = {"model": ProblemBody, "content": {"application/problem+json": {}}}
RETRY_AFTER_S = "2"
SCORE_ROUTE = "/accounts/{account_id}/score"


def _processor(request: Request) -> StreamProcessor:
    processor: StreamProcessor = request.app.state.processor
    return processor


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


def unavailable(detail: str, instance: str) -> Response:
    return problem(503, "Partition Unavailable", detail, instance,
                   headers={"Retry-After": RETRY_AFTER_S})


async def account_score(account_id: AccountIdPath, request: Request) -> Response:
    processor = _processor(request)
    settings: Settings = request.app.state.settings
    path = request.url.path
    for attempt in range(2):  # one retry, after the membership has changed
        _, where = processor.locate(account_id)
        if isinstance(where, Owned):
            score = where.state.engine.score(account_id)
            if score is None:
                return problem(404, "Not Found",
                               f"no events for account {account_id!r} in the current window",
                               path, headers={SERVED_BY_HEADER: settings.own_url})
            return Response(score_json(score, where.state.freshness()),
                            media_type="application/json",
                            headers={SERVED_BY_HEADER: settings.own_url})
        if isinstance(where, Unavailable):
            return unavailable(where.reason, path)
        if request.headers.get(FORWARDED_HEADER):
            # Forwarded to us by an instance that thinks we own it: a second hop could
            # loop while the membership settles.
            return unavailable(f"this instance does not own the account's partition; "
                               f"the membership is changing (owner: {where.owner_url})", path)
        outcome = await _forward(request, where, path)
        if outcome is not None:
            return outcome
        if attempt == 0 and not await processor.membership_changed(
                where.generation, settings.forward_timeout_s):
            break
    return unavailable(f"the owner of account {account_id!r} did not answer", path)


async def _forward(request: Request, where: Elsewhere, path: str) -> Response | None:
    """The owner's answer, same status and bytes; None when the owner could not be
    reached (the caller retries once the membership changes)."""
    forwarder: Forwarder = request.app.state.forwarder
    metrics: Metrics = request.app.state.metrics
    metrics.forwarded.labels(SCORE_ROUTE).inc()
    target = path + (f"?{request.url.query}" if request.url.query else "")
    try:
        answer = await forwarder.get(where.owner_url, target, _passed_auth(request))
    except ForwardingError:
        metrics.forwarding_errors.labels(SCORE_ROUTE).inc()
        return None
    return Response(answer.body, status_code=answer.status, headers=answer.headers)


def _passed_auth(request: Request) -> dict[str, str]:
    authorization = request.headers.get("authorization")
    return {"authorization": authorization} if authorization else {}


async def healthz(request: Request) -> Response:
    supervisor: ConsumerSupervisor = request.app.state.supervisor
    health = supervisor.health()
    body = {"status": "ok" if health.healthy else "unhealthy", "consumer": health.consumer,
            "reason": health.reason, "failing_since": health.failing_since}
    return Response(orjson.dumps(body), status_code=200 if health.healthy else 503,
                    media_type="application/json")


async def readyz(request: Request) -> Response:
    processor = _processor(request)
    checks = processor.readiness()
    ready = all(checks.values())
    body = {"status": "ready" if ready else "not_ready", "checks": checks,
            "broker_unreachable_since": processor.broker_unreachable_since,
            "partitions": processor.local_partitions()}
    return Response(orjson.dumps(body), status_code=200 if ready else 503,
                    media_type="application/json")


def _local_view(processor: StreamProcessor, own_url: str) -> dict[str, Any]:
    return {"url": own_url, "generation": processor.cluster.generation,
            "ready": processor.ready, "partitions": processor.local_partitions()}


async def cluster_local(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    return Response(orjson.dumps(_local_view(_processor(request), settings.own_url)),
                    media_type="application/json")


async def cluster(request: Request) -> Response:
    """Every member, each partition's owner and, as that owner reports it, its state and
    lag; members that do not answer in time are listed as such."""
    processor = _processor(request)
    settings: Settings = request.app.state.settings
    forwarder: Forwarder = request.app.state.forwarder
    cluster_map = processor.cluster
    others = [url for url in cluster_map.members if url != settings.own_url]

    async def view_of(url: str) -> dict[str, Any] | None:
        try:
            answer = await forwarder.get(url, "/cluster/local", _passed_auth(request))
        except ForwardingError:
            return None
        if answer.status != 200:
            return None
        view: dict[str, Any] = orjson.loads(answer.body)
        return view

    views = dict(zip(others, await asyncio.gather(*(view_of(u) for u in others)),
                     strict=True))
    views[settings.own_url] = _local_view(processor, settings.own_url)
    reported = {(url, p["partition"]): p for url, view in views.items() if view
                for p in view["partitions"]}
    partitions = []
    for partition in range(processor.partition_count or 0):
        owner = cluster_map.owner_of(partition)
        detail = reported.get((owner, partition), {}) if owner else {}
        partitions.append({
            "partition": partition, "owner": owner,
            "state": detail.get("state", "unknown" if owner else "unassigned"),
            "lag_messages": detail.get("lag_messages"),
            "seconds_since_progress": detail.get("seconds_since_progress"),
            "accounts": detail.get("accounts"),
            "standbys": [
                {"url": url, "lag_messages": reported.get((url, partition), {}).get(
                    "lag_messages")}
                for url in cluster_map.standbys.get(partition, ())],
        })
    body = {
        "self": settings.own_url,
        "generation": cluster_map.generation,
        "members": [{"url": url, "reachable": views.get(url) is not None,
                     "ready": (views.get(url) or {}).get("ready")}
                    for url in sorted(set(cluster_map.members) | {settings.own_url})],
        "partitions": partitions,
    }
    return Response(orjson.dumps(body), media_type="application/json")


async def metrics(request: Request) -> Response:
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


async def admin_snapshot(request: Request) -> dict[str, object]:
    result = await _processor(request).request_snapshot()
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
        response_model=ScoreBody,
        responses={404: _PROBLEM, 401: _PROBLEM, 422: _PROBLEM, 503: _PROBLEM},
        dependencies=readers,
        summary="Tier, engagement and explainable credibility of one account",
    )
    router.add_api_route(
        "/healthz", healthz, methods=["GET"],
        summary="The process is alive and its consumer runs (or is restarting in time)",
        responses={503: {"description": "Unhealthy: restart the process."}},
    )
    router.add_api_route(
        "/readyz", readyz, methods=["GET"],
        summary="Broker reachable, this instance's partitions restored, dead letters "
                "writable",
        responses={503: {"description": "Not ready; the body says why."}},
    )
    router.add_api_route(
        "/cluster", cluster, methods=["GET"], dependencies=readers,
        summary="Members, each partition's owner, state and lag",
    )
    router.add_api_route(
        "/cluster/local", cluster_local, methods=["GET"], dependencies=readers,
        summary="This instance's partitions (what /cluster gathers from each member)",
    )
    router.add_api_route("/metrics", metrics, methods=["GET"], response_class=Response,
                         dependencies=readers, summary="Prometheus metrics")
    router.add_api_route(
        "/admin/snapshot", admin_snapshot, methods=["POST"],
        dependencies=[Depends(require_admin)], responses={401: _PROBLEM, 403: _PROBLEM},
        summary="Write a snapshot now (needs the bearer token)",
    )
    return router
