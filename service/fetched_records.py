"""Consumed records as aiokafka's compiled batch reader makes them, without a
`ConsumerRecord` each.

aiokafka reads a fetched record batch into compiled records (`DefaultRecord`: offset,
timestamp, key, value, headers) and then, in Python, copies each into a
`ConsumerRecord` dataclass with its topic and partition. The service's consumers read only
the offset, key and value of a record (the dead-letter topic also its timestamp and
headers, with the topic and partition it knows), so the copy was pure cost: on the wide
ingest bench, ~15 % of a core (docs/benchmarks.md, session 11).

A consumer opts in by being made with `value_deserializer=as_fetched`, and then gets the
batch reader's records as they are. The seam is private to aiokafka: its fetcher builds
each partition's `PartitionRecords` by the name in its module, so `install` puts a
subclass there that differs only for the consumers that opted in. An aiokafka whose
`PartitionRecords` lacks that shape gets nothing installed (`INSTALLED` is false, and a
warning is logged): consumers that opted in then receive `ConsumerRecord`s, since
`as_fetched` is the identity, and only lose the speed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import aiokafka.consumer.fetcher as aiokafka_fetcher

log = logging.getLogger(__name__)


def as_fetched(value: bytes | None) -> bytes | None:
    """The value deserializer that asks for records as fetched (the identity)."""
    return value


def _as_is(_topic_partition: Any, record: Any) -> Any:
    return record


def install() -> bool:
    """Puts the opt-in subclass in aiokafka's fetcher (once); true if it is there."""
    base = aiokafka_fetcher.PartitionRecords
    if getattr(base, "returns_as_fetched", False):
        return True
    if not callable(getattr(base, "_consumer_record", None)):
        log.warning("aiokafka's fetcher has another shape: consumed records stay "
                    "ConsumerRecords (slower)", extra={"aiokafka_class": repr(base)})
        return False

    class PartitionRecords(base):  # type: ignore[misc, valid-type]
        """aiokafka's, except that a consumer made with `as_fetched` gets each record
        as the batch reader made it."""

        returns_as_fetched = True

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            if self._value_deserializer is as_fetched and self._key_deserializer is None:
                # An instance attribute: the per-record call finds it before the method.
                self._consumer_record = _as_is

    aiokafka_fetcher.PartitionRecords = PartitionRecords
    return True


INSTALLED = install()


@dataclass(slots=True)
class Located:
    """A record as fetched, with the topic and partition it came from: what a dead letter
    reports (`dead_letter.SourceRecord`)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Any

    @classmethod
    def of(cls, topic: str, partition: int, record: Any) -> Located:
        return cls(topic, partition, record.offset, record.timestamp, record.key,
                   record.value, record.headers)
