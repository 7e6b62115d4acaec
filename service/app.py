"""Wiring: settings, metrics, the consumer task and the HTTP app, with a clean lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from service import __version__, problems
from service.api import build_router
from service.consumer import StreamConsumer
from service.discovery_api import LocalReader, build_discovery_router
from service.discovery_state import DiscoveryIndexes, follow_engine
from service.metrics import Metrics
from service.middleware import BodyLimit, RequestMetrics, ScoreFastPath
from service.settings import Settings
from service.web import build_page_router

log = logging.getLogger(__name__)
CLOSE_AFTER_CANCEL_S = 5.0


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()
    consumer = StreamConsumer(settings, metrics)
    discovery = DiscoveryIndexes()
    consumer.on_changed = discovery.note

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(consumer.run(), name="consumer")
        task.add_done_callback(_report_exit)
        follower = asyncio.create_task(follow_engine(discovery, lambda: consumer.engine),
                                       name="discovery")
        yield
        follower.cancel()
        consumer.stop()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=settings.shutdown_timeout_s)
        except TimeoutError:
            log.error("consumer did not stop in time; exiting without a final snapshot",
                      extra={"timeout_s": settings.shutdown_timeout_s})
            task.cancel()
            # Let the cancelled task close its Kafka clients, bounded: the broker may be
            # the reason it did not stop.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout=CLOSE_AFTER_CANCEL_S)
        except asyncio.CancelledError:
            if not task.cancelled():
                raise  # this shutdown itself is being cancelled
            log.error("consumer task was cancelled during shutdown")
        except Exception:
            log.exception("consumer failed during shutdown")

    app = FastAPI(
        title="Engagement scoring",
        version=__version__,
        summary="Credible micro-influencers from a live stream of interactions.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.consumer = consumer
    app.include_router(build_router(settings))
    app.include_router(build_discovery_router(
        LocalReader(lambda: discovery.views(consumer.engine))))
    app.include_router(build_page_router())
    problems.install(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_body_bytes)
    app.add_middleware(ScoreFastPath, engine_of=lambda: consumer.engine,
                       enabled=not settings.protect_reads)
    app.add_middleware(RequestMetrics, metrics=metrics)
    return app


def _report_exit(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        log.error("consumer stopped with an error", exc_info=error)
