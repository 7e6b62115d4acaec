"""The dead-letter topic: rejected messages go there once, with the reason in headers.

The original key, value and headers are kept byte for byte; `dlq.*` headers say what was
wrong and where the message came from. If the topic cannot be written the publisher
retries with backoff until it can: the consumer never moves past a message it could not
dead-letter, so nothing is lost (the stream waits, and /readyz says so).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

from service.events import Rejection
from service.metrics import Metrics

log = logging.getLogger(__name__)
MAX_DETAIL_BYTES = 1024


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """The rejected record, with the topic and partition it came from (a consumed record
    knows neither: service/fetched_records.py)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Any

    @classmethod
    def of(cls, topic: str, partition: int, record: Any) -> SourceRecord:
        return cls(topic, partition, record.offset, record.timestamp, record.key,
                   record.value, record.headers)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    record: SourceRecord
    rejection: Rejection

    def headers(self) -> list[tuple[str, bytes | None]]:
        record = self.record
        # Kafka allows a header without a value: kept as it came.
        original = [(name, None if value is None else bytes(value))
                    for name, value in (record.headers or ())]
        return [
            *original,
            ("dlq.reason", self.rejection.reason.value.encode()),
            ("dlq.detail", self.rejection.detail.encode()[:MAX_DETAIL_BYTES]),
            ("dlq.source.topic", record.topic.encode()),
            ("dlq.source.partition", str(record.partition).encode()),
            ("dlq.source.offset", str(record.offset).encode()),
            ("dlq.source.timestamp_ms", str(record.timestamp).encode()),
            ("dlq.rejected_at", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()).encode()),
        ]


class Producer(Protocol):
    async def send(self, topic: str, value: bytes | None = ..., key: bytes | None = ...,
                   headers: list[tuple[str, bytes | None]] | None = ...
                   ) -> asyncio.Future[Any]: ...


class DeadLetterPublisher:
    def __init__(self, producer: Producer, topic: str, metrics: Metrics,
                 retry_initial_s: float, retry_max_s: float, send_timeout_s: float) -> None:
        self._producer = producer
        self._topic = topic
        self._metrics = metrics
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._send_timeout_s = send_timeout_s
        self.healthy = True

    async def publish(self, letters: list[DeadLetter]) -> None:
        """Returns once every letter is acknowledged by the broker; retries until then."""
        pending = letters
        delay = self._retry_initial_s
        while pending:
            failed: list[DeadLetter] = []
            last_error: BaseException | None = None
            sent: list[tuple[DeadLetter, asyncio.Future[Any]]] = []
            for letter in pending:
                try:
                    # Bounds the wait for the topic's metadata; a send that times out
                    # here was never queued, so retrying it cannot write it twice.
                    acknowledgement = await asyncio.wait_for(self._producer.send(
                        self._topic, value=letter.record.value, key=letter.record.key,
                        headers=letter.headers(),
                    ), timeout=self._send_timeout_s)
                except Exception as error:  # any send failure is retried
                    failed.append(letter)
                    last_error = error
                else:
                    sent.append((letter, acknowledgement))
            results = await asyncio.gather(*(ack for _, ack in sent), return_exceptions=True)
            for (letter, _), result in zip(sent, results, strict=True):
                if isinstance(result, BaseException):
                    failed.append(letter)
                    last_error = result
                else:
                    self._metrics.dead_letters.labels(letter.rejection.reason.value).inc()
            if not failed:
                self.healthy = True
                return
            self.healthy = False
            self._metrics.dead_letter_failures.inc(len(failed))
            log.error(
                "cannot write the dead-letter topic; retrying",
                extra={"topic": self._topic, "messages": len(failed), "retry_in_s": delay,
                       "error": repr(last_error)},
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._retry_max_s)
            pending = failed
