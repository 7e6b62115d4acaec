"""Keeps the consumer running: restarts it with back-off when it fails, and says when it
cannot, so that /healthz turns unhealthy and Kubernetes restarts the pod.

A consumer that waits for the broker is running (it retries on its own and becomes
ready when the broker arrives). A consumer that ended with an error is started again
after a capped, jittered back-off. A bad setting found at the first start (an
unparseable address, a missing topic, a topic with fewer partitions than the state)
ends the process with a clear error instead: no restart can fix it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from service.consumer import StreamProcessor
from service.kafka_clients import Backoff, FatalConfigError
from service.metrics import Metrics
from service.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Health:
    healthy: bool
    consumer: str  # running | restarting | failed | stopped
    reason: str | None
    failing_since: float | None  # wall clock


class ConsumerSupervisor:
    def __init__(self, processor: StreamProcessor, settings: Settings, metrics: Metrics,
                 on_fatal: Callable[[str], None]) -> None:
        self.processor = processor
        self.settings = settings
        self.metrics = metrics
        self._on_fatal = on_fatal
        self._stopping = False
        self._running = False
        self._failing_since: float | None = None
        self._last_error: str | None = None
        self._fatal: str | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self._supervise(), name="consumer-supervisor")
        return self._task

    def stop(self) -> None:
        self._stopping = True
        self.processor.stop()

    def health(self) -> Health:
        if self._fatal is not None:
            return Health(False, "failed", self._fatal, self._failing_since)
        if self._task is not None and self._task.done() and not self._stopping:
            return Health(False, "failed", "the consumer supervisor ended", self._failing_since)
        if self._running:
            return Health(True, "running", None, None)

        if self._stopping:
            return Health(True, "stopped", None, None)
        failing_for = 0.0 if self._failing_since is None else time.time() - self._failing_since
        healthy = failing_for < self.settings.consumer_unhealthy_after_s
        return Health(healthy, "restarting", self._last_error, self._failing_since)

    async def _supervise(self) -> None:
        backoff = Backoff(self.settings.connect_retry_initial_s,
                          self.settings.connect_retry_max_s)
        while not self._stopping:
            self._running = True
            self.metrics.consumer_running.set(1)
            started = time.monotonic()
            started_at = time.time()
            try:
                await self.processor.run()
                if self._stopping:
                    return
                raise RuntimeError("the consumer returned without being stopped")
            except asyncio.CancelledError:
                raise
            except FatalConfigError as error:
                if self.processor.last_joined_at is None:
                    # Found before this process ever consumed: a bad setting at start-up.
                    self._fatal = str(error)
                    log.critical("cannot start: %s", error, extra={"reason": str(error)})
                    self._on_fatal(str(error))
                    return
                self._failed(error, started_at)
            except Exception as error:  # any other end is a failure: restart it
                self._failed(error, started_at)
            finally:
                self._running = False
                self.metrics.consumer_running.set(0)
            if time.monotonic() - started > 60:
                backoff.reset()  # it ran for a while: this is a new failure, not a loop
            delay = backoff.next_delay()
            log.error("consumer failed; restarting", extra={
                "reason": self._last_error, "retry_in_s": round(delay, 2),
                "failing_for_s": round(time.time() - (self._failing_since or time.time()), 1)})
            self.metrics.consumer_restarts.inc()
            await asyncio.sleep(delay)

    def _failed(self, error: BaseException, run_started_at: float) -> None:
        self._last_error = f"{type(error).__name__}: {error}"
        joined = self.processor.last_joined_at
        if self._failing_since is None or (joined is not None and joined >= run_started_at):
            # The first failure, or the first since a run that did consume: the failing
            # period starts now.
            self._failing_since = time.time()
        log.error("consumer stopped with an error", exc_info=error)
