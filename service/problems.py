"""Errors as RFC 9457 problem details (application/problem+json), for every failure."""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

PROBLEM_TYPE_BASE = "https://engagement-scoring.invalid/problems/"
log = logging.getLogger(__name__)


def problem(status: int, title: str, detail: str, instance: str | None = None,
            headers: dict[str, str] | None = None) -> Response:
    slug = title.lower().replace(" ", "-")
    body = {"type": PROBLEM_TYPE_BASE + slug, "title": title, "status": status,
            "detail": detail, "instance": instance}
    return Response(orjson.dumps(body), status_code=status,
                    media_type="application/problem+json", headers=headers)


_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 413: "Content Too Large", 422: "Invalid Request",
           503: "Service Unavailable"}


def install(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_problem(request: Request, error: HTTPException) -> Response:
        title = _TITLES.get(error.status_code, "Error")
        return problem(error.status_code, title, str(error.detail), request.url.path,
                       headers=getattr(error, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_problem(request: Request, error: RequestValidationError) -> Response:
        reasons = "; ".join(
            f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}"
            for item in error.errors()[:5]
        )
        return problem(422, "Invalid Request", reasons, request.url.path)

    @app.exception_handler(Exception)
    async def unexpected_problem(request: Request, error: Exception) -> Response:
        log.exception("unhandled error", extra={"path": request.url.path})
        return problem(500, "Internal Error", "the service failed to answer; see its logs",
                       request.url.path)
