"""Wiring: settings, metrics, the supervised consumer, the forwarder and the HTTP app,
with a clean lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator

from fastapi import FastAPI

from service import __version__, problems
from service.api import build_router
from service.cluster_reader import ClusterReader
from service.consumer import StreamProcessor
from service.discovery_api import MAX_BATCH_BODY_BYTES, LocalReader, build_discovery_router
from service.discovery_state import DiscoveryIndexes, follow_engines
from service.metrics import Metrics
from service.middleware import BodyLimit, RequestMetrics, ScoreFastPath
from service.partition_state import PartitionState, Status
from service.routing import Forwarder
from service.runtime_tuning import CollectorPacer
from service.settings import Settings
from service.supervisor import ConsumerSupervisor
from service.web import build_page_router

log = logging.getLogger(__name__)
CLOSE_AFTER_CANCEL_S = 5.0


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()
    processor = StreamProcessor(settings, metrics)

    def fatal(reason: str) -> None:
        """A setting no restart can fix: end the process with an error (see __main__)."""
        app.state.fatal = reason
        os.kill(os.getpid(), signal.SIGTERM)

    supervisor = ConsumerSupervisor(processor, settings, metrics, fatal)
    discovery = DiscoveryIndexes()
    processor.on_checkpoint = discovery.note
    processor.on_scored = discovery.scored

    def partitions() -> dict[int, PartitionState | None]:
        """Owned partitions; None for one that cannot answer yet (restoring, or folding
        again what its previous owner answered from: `PartitionState.catch_up`)."""
        return {partition: state if state.status is Status.ACTIVE
                and state.behind_previous_owner() is None else None
                for partition, state in processor.states.items()}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.forwarder = Forwarder(settings.own_url, settings.forward_timeout_s)
        task = supervisor.start()
        task.add_done_callback(_report_exit)
        follower = asyncio.create_task(follow_engines(discovery, partitions), name="discovery")
        # How long the loop is held (a metric), and the collector paced so that it never
        # holds it for long (service/runtime_tuning.py).
        monitor = asyncio.create_task(metrics.loop_monitor().run(), name="loop-monitor")
        pacer = asyncio.create_task(CollectorPacer().run(), name="collector-pacer")
        yield
        for background in (follower, monitor, pacer):
            background.cancel()
        supervisor.stop()
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
        finally:
            await app.state.forwarder.close()

    app = FastAPI(
        title="Engagement scoring",
        version=__version__,
        summary="Credible micro-influencers from a live stream of interactions.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.processor = processor
    app.state.supervisor = supervisor
    app.state.fatal = None
    app.include_router(build_router(settings))
    local = LocalReader(discovery.views)
    cluster = ClusterReader(local, processor, lambda: app.state.forwarder, settings.own_url)
    app.include_router(build_discovery_router(cluster, local))
    app.include_router(build_page_router())
    problems.install(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_body_bytes,
                       per_path={"/accounts/scores": max(settings.max_request_body_bytes,
                                                         MAX_BATCH_BODY_BYTES)})
    app.add_middleware(ScoreFastPath, local_score=processor.score, own_url=settings.own_url,
                       enabled=not settings.protect_reads)
    app.add_middleware(RequestMetrics, metrics=metrics)
    return app


def _report_exit(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        log.error("consumer stopped with an error", exc_info=error)
