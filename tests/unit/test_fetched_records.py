"""Records as fetched (service/fetched_records.py): a consumer that opts in gets aiokafka's
compiled records with the same offsets, keys, values, timestamps and headers as the
`ConsumerRecord`s everyone else still gets, over the same fetched batch; and an aiokafka
without the seam gets nothing installed."""

from __future__ import annotations

from typing import Any

import aiokafka.consumer.fetcher as aiokafka_fetcher
import pytest
from aiokafka import TopicPartition
from aiokafka.consumer.fetcher import READ_COMMITTED
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import ConsumerRecord

from service import fetched_records
from service.dead_letter import DeadLetter
from service.events import Rejection, RejectReason
from service.fetched_records import Located, as_fetched

TP = TopicPartition("events", 2)
RECORDS: list[tuple[int, bytes | None, bytes | None, list[tuple[str, bytes | None]]]] = [
    (1_700_000_000_000, b"account-1", b'{"type":"like"}', []),
    (1_700_000_000_500, None, b"not json", [("trace", b"abc"), ("empty", None)]),
    (1_700_000_001_000, b"account-2", None, []),
]


def fetched(base_offset: int = 40) -> MemoryRecords:
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0,
                                        producer_id=-1, producer_epoch=-1,
                                        base_sequence=-1, batch_size=1 << 20)
    for delta, (timestamp, key, value, headers) in enumerate(RECORDS):
        builder.append(delta, timestamp=timestamp, key=key, value=value, headers=headers)
    batch = bytearray(builder.build())
    batch[0:8] = base_offset.to_bytes(8, "big")  # what the broker assigns (not in the CRC)
    return MemoryRecords(bytes(batch))


def consumed(value_deserializer: Any) -> list[Any]:
    records = aiokafka_fetcher.PartitionRecords(
        TP, fetched(), [], 40, None, value_deserializer, True, READ_COMMITTED)
    return list(records)


def test_the_seam_is_installed_once() -> None:
    assert fetched_records.INSTALLED
    assert aiokafka_fetcher.PartitionRecords.returns_as_fetched
    installed = aiokafka_fetcher.PartitionRecords
    assert fetched_records.install()
    assert aiokafka_fetcher.PartitionRecords is installed


def test_a_consumer_that_opts_in_gets_the_same_records_without_the_copy() -> None:
    lean = consumed(as_fetched)
    full = consumed(None)
    assert all(type(record) is ConsumerRecord for record in full)
    assert not any(type(record) is ConsumerRecord for record in lean)
    assert [(r.offset, r.timestamp, r.key, r.value, list(r.headers)) for r in lean] == [
        (r.offset, r.timestamp, r.key, r.value, list(r.headers)) for r in full]
    assert [r.offset for r in lean] == [40, 41, 42]


def test_another_deserializer_still_gets_consumer_records() -> None:
    records = consumed(lambda value: b"seen:" + value if value else value)
    assert all(type(record) is ConsumerRecord for record in records)
    assert records[0].value == b'seen:{"type":"like"}'


def test_a_dead_letter_of_a_record_as_fetched_says_where_it_came_from() -> None:
    record = consumed(as_fetched)[1]
    letter = DeadLetter(Located.of(TP.topic, TP.partition, record),
                        Rejection(RejectReason.NOT_JSON, "expected a JSON object"))
    headers = dict(letter.headers())
    assert headers["trace"] == b"abc"
    assert headers["empty"] is None  # a header without a value stays one
    assert headers["dlq.source.topic"] == b"events"
    assert headers["dlq.source.partition"] == b"2"
    assert headers["dlq.source.offset"] == b"41"
    assert headers["dlq.source.timestamp_ms"] == b"1700000000500"


def test_an_aiokafka_of_another_shape_gets_nothing_installed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    class Elsewhere:
        pass

    monkeypatch.setattr(aiokafka_fetcher, "PartitionRecords", Elsewhere)
    assert not fetched_records.install()
    assert aiokafka_fetcher.PartitionRecords is Elsewhere
