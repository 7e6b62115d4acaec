"""Consumed records without a `ConsumerRecord` each: as aiokafka's compiled batch reader
makes them, or read in place from the fetched bytes.

aiokafka reads a fetched record batch into compiled records (`DefaultRecord`: offset,
timestamp, key, value, headers) and then, in Python, copies each into a
`ConsumerRecord` dataclass with its topic and partition. The service's consumers read only
the offset, key and value of a record (the dead-letter topic also its timestamp and
headers, with the topic and partition it knows), so the copy was pure cost: ~15 % of a
core on the wide ingest bench (docs/benchmarks.md, session 11). Two opt-ins, chosen by
the value deserializer a consumer is made with (both are the identity):

* `as_fetched`: each record as aiokafka's batch reader made it.
* `in_place`: a partition's records of one fetch as one `FetchedRecords`
  (native/src/records.rs): the record batches read where they lie, each record an entry
  of offsets, a Python object made only for one asked for; the compiled fold reads keys
  and values from the bytes. `getmany` then lists that one object for the partition:
  `records_of` gives the partition's records either way. Compressed batches are
  decompressed there too. What the compiled reader leaves to aiokafka (formats before
  v2, a CRC that does not match, a batch that does not decompress, a fetch with aborted
  transactions to skip, anything malformed) comes as with `as_fetched`.

The seam is private to aiokafka: its fetcher builds each partition's `MemoryRecords` and
`PartitionRecords` by the names in its module, so `install` puts there a stand-in that
keeps the fetched bytes and a subclass that differs only for the consumers that opted in.
An aiokafka of another shape gets nothing installed (`INSTALLED` is false, and a warning
is logged): consumers that opted in then receive `ConsumerRecord`s and only lose the
speed. The tests (tests/unit/test_fetched_records.py) fail if the seam moves.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import aiokafka.consumer.fetcher as aiokafka_fetcher

try:
    from engagement_native import FetchedRecords as FetchedRecords
except ImportError:  # not built: the compiled fold is off too
    FetchedRecords = None  # type: ignore[assignment, misc]

log = logging.getLogger(__name__)


def as_fetched(value: bytes | None) -> bytes | None:
    """The value deserializer that asks for records as the batch reader made them."""
    return value


def in_place(value: bytes | None) -> bytes | None:
    """The value deserializer that asks for a fetch's records read in place."""
    return value


def records_of(listed: list[Any]) -> Sequence[Any]:
    """A partition's records as `getmany` lists them: the one `FetchedRecords` of an
    `in_place` consumer's fetch, or the list of records."""
    if len(listed) == 1 and FetchedRecords is not None and type(listed[0]) is FetchedRecords:
        fetched: Sequence[Any] = listed[0]
        return fetched
    return listed


def _as_is(_topic_partition: Any, record: Any) -> Any:
    return record


class _RecordSet:
    """aiokafka's `MemoryRecords` of a fetch, with the bytes it reads kept for `in_place`."""

    __slots__ = ("_reader", "data")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._reader = _MemoryRecords(data)

    def has_next(self) -> bool:
        return bool(self._reader.has_next())

    def next_batch(self) -> Any:
        return self._reader.next_batch()

    def size_in_bytes(self) -> int:
        return int(self._reader.size_in_bytes())


_MemoryRecords: Any = aiokafka_fetcher.MemoryRecords


def install() -> bool:
    """Puts the opt-in classes in aiokafka's fetcher (once); true if they are there."""
    base = aiokafka_fetcher.PartitionRecords
    if getattr(base, "returns_as_fetched", False):
        return True
    if (not callable(getattr(base, "_consumer_record", None))
            or aiokafka_fetcher.MemoryRecords is not _MemoryRecords):
        log.warning("aiokafka's fetcher has another shape: consumed records stay "
                    "ConsumerRecords (slower)", extra={"aiokafka_class": repr(base)})
        return False

    class PartitionRecords(base):  # type: ignore[misc, valid-type]
        """aiokafka's, except for a consumer made with `as_fetched` or `in_place`."""

        returns_as_fetched = True

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            wanted = self._value_deserializer
            if self._key_deserializer is not None or wanted not in (as_fetched, in_place):
                return
            if (wanted is in_place and FetchedRecords is not None
                    and not self._aborted_transactions
                    and isinstance(self._records, _RecordSet)
                    and type(self._records.data) is bytes):
                fetched = FetchedRecords.read(self._records.data, self.next_fetch_offset)
                if fetched is not None:
                    self._records_iterator = self._whole(fetched)
                    return
            # An instance attribute: the per-record call finds it before the method.
            self._consumer_record = _as_is

        def _whole(self, fetched: Any) -> Iterator[Any]:
            # As aiokafka's own iterator: the position moves as the records are taken.
            self.next_fetch_offset = fetched.next_offset
            if len(fetched):
                yield fetched

    aiokafka_fetcher.PartitionRecords = PartitionRecords
    aiokafka_fetcher.MemoryRecords = _RecordSet
    return True


INSTALLED = install()
