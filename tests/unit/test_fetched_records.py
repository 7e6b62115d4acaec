"""Records without a ConsumerRecord each (service/fetched_records.py): a consumer that opts
in gets the same offsets, keys, values, timestamps and headers as the `ConsumerRecord`s
everyone else still gets from the same fetched bytes, either as aiokafka's compiled
records (`as_fetched`) or read in place (`in_place`, native/src/records.rs), which leaves
to aiokafka what it does not read itself; and an aiokafka without the seam gets nothing
installed."""

from __future__ import annotations

import random
from typing import Any

import aiokafka.consumer.fetcher as aiokafka_fetcher
import pytest
from aiokafka import TopicPartition
from aiokafka.consumer.fetcher import READ_COMMITTED
from aiokafka.record.legacy_records import LegacyRecordBatchBuilder
from aiokafka.record.util import calc_crc32c
from aiokafka.structs import ConsumerRecord
from hypothesis import given, settings
from hypothesis import strategies as st

from service import fetched_records
from service.dead_letter import DeadLetter, SourceRecord
from service.events import Rejection, RejectReason
from service.fetched_records import as_fetched, in_place, records_of
from tests.unit.record_batches import CONTROL, LOG_APPEND_TIME, Entry, record_batch

FetchedRecords = fetched_records.FetchedRecords

pytestmark = pytest.mark.skipif(FetchedRecords is None, reason="engagement_native not built")

TP = TopicPartition("events", 2)
COMMIT_KEY = bytes([0, 0, 0, 1])  # a control record: version 0, type 1 (commit)
COMMIT_VALUE = bytes(6)
CODECS = (0, 1, 2, 3, 4)  # none, gzip, snappy, lz4, zstd (aiokafka's codes)
ENTRIES: list[Entry] = [
    (40, 1_700_000_000_000, b"account-1", b'{"type":"like"}', []),
    (41, 1_700_000_000_500, None, b"not json", [("trace", b"abc"), ("empty", None)]),
    (42, 1_700_000_001_000, b"account-2", None, []),
]


def consumed(data: bytes, value_deserializer: Any, fetch_offset: int = 40,
             aborted: list[tuple[int, int]] | None = None) -> tuple[list[Any], int]:
    """What `getmany` lists for the partition, and the consumer's position after it."""
    records = aiokafka_fetcher.PartitionRecords(
        TP, aiokafka_fetcher.MemoryRecords(data), aborted or [], fetch_offset, None,
        value_deserializer, True, READ_COMMITTED)
    listed = list(records)
    return listed, records.next_fetch_offset


def fields(records: Any) -> list[tuple[Any, ...]]:
    return [(r.offset, r.timestamp, r.timestamp_type, r.key, r.value, list(r.headers))
            for r in records]


def test_the_seam_is_installed_once() -> None:
    assert fetched_records.INSTALLED
    assert aiokafka_fetcher.PartitionRecords.returns_as_fetched
    installed = aiokafka_fetcher.PartitionRecords
    assert fetched_records.install()
    assert aiokafka_fetcher.PartitionRecords is installed


@pytest.mark.parametrize("codec", CODECS)
def test_a_compressed_batch_is_read_in_place(codec: int) -> None:
    data = record_batch(ENTRIES, compression=codec)
    listed, next_offset = consumed(data, in_place)
    assert [type(item) for item in listed] == [FetchedRecords]
    assert fields(records_of(listed)) == fields(consumed(data, None)[0])
    assert next_offset == 43


def test_each_opt_in_gets_the_same_records_without_the_copy() -> None:
    data = record_batch(ENTRIES)
    full, full_next = consumed(data, None)
    lean, lean_next = consumed(data, as_fetched)
    listed, next_offset = consumed(data, in_place)
    assert all(type(record) is ConsumerRecord for record in full)
    assert not any(type(record) is ConsumerRecord for record in lean)
    assert [type(item) for item in listed] == [FetchedRecords]
    assert fields(lean) == fields(records_of(listed)) == fields(full)
    assert [r.offset for r in full] == [40, 41, 42]
    assert full_next == lean_next == next_offset == 43
    assert records_of(lean) is lean


def test_another_deserializer_still_gets_consumer_records() -> None:
    records, _ = consumed(record_batch(ENTRIES),
                          lambda value: b"seen:" + value if value else value)
    assert all(type(record) is ConsumerRecord for record in records)
    assert records[0].value == b'seen:{"type":"like"}'


batch_entries = st.lists(
    st.tuples(st.integers(0, 2**40), st.none() | st.binary(max_size=40),
              st.none() | st.binary(max_size=300),
              st.lists(st.tuples(st.text(max_size=8), st.none() | st.binary(max_size=8)),
                       max_size=3)),
    min_size=1, max_size=20)


@settings(max_examples=150, deadline=None)
@given(batches=st.lists(st.tuples(batch_entries, st.sampled_from((0, 0, LOG_APPEND_TIME,
                                                                  CONTROL)),
                                  st.integers(1, 3), st.sampled_from(CODECS)),
                        min_size=1, max_size=4),
       seed=st.integers(0, 2**32), cut=st.booleans())
def test_read_in_place_as_aiokafka_reads(batches: list[Any], seed: int, cut: bool) -> None:
    """Batches of random records (null keys, values and header values, headers, gaps in
    the offsets as compaction leaves them, log-append time, control batches, each codec),
    a fetch position inside the first batch, and maybe the last batch cut by the fetch's
    size."""
    rng = random.Random(seed)
    data = b""
    offset = 1_000
    for records, attributes, gap, codec in batches:
        entries: list[Entry] = []
        if attributes == CONTROL:  # a transaction's commit marker
            entries.append((offset, records[0][0], COMMIT_KEY, COMMIT_VALUE, []))
            offset += 1
        else:
            for timestamp, key, value, headers in records:
                entries.append((offset, timestamp, key, value, headers))
                offset += gap
        data += record_batch(entries, transactional=attributes == CONTROL,
                             attributes=attributes,
                             compression=0 if attributes == CONTROL else codec)
    if cut:
        data = data[:rng.randrange(1, len(data))]
    fetch_offset = 1_000 + rng.randrange(0, 4)
    reference, reference_next = consumed(data, None, fetch_offset)
    fetched = FetchedRecords.read(data, fetch_offset)
    assert fetched is not None
    assert fields(fetched) == fields(reference)
    assert fetched.next_offset == reference_next
    listed, next_offset = consumed(data, in_place, fetch_offset)
    assert fields(records_of(listed)) == fields(reference)
    assert next_offset == reference_next


def test_what_the_reader_leaves_to_aiokafka() -> None:
    """An older format, a CRC that does not match, a batch that does not decompress,
    and aborted transactions to skip: aiokafka reads them (raising its own error for the
    CRC and the broken batch)."""
    legacy = LegacyRecordBatchBuilder(magic=1, compression_type=0, batch_size=1 << 20)
    for offset, timestamp, key, value, _ in ENTRIES:
        legacy.append(offset, timestamp=timestamp, key=key, value=value)
    older = bytes(legacy.build())
    corrupt = bytearray(record_batch(ENTRIES))
    corrupt[-3] ^= 0xFF
    assert FetchedRecords.read(older, 40) is None
    listed, next_offset = consumed(older, in_place)
    assert fields(listed) == fields(consumed(older, None)[0])  # the same records
    assert type(listed[0]) is not FetchedRecords
    assert next_offset == 43
    assert FetchedRecords.read(bytes(corrupt), 40) is None
    with pytest.raises(Exception, match="CRC"):
        consumed(bytes(corrupt), in_place)
    broken = bytearray(record_batch(ENTRIES, compression=3))  # lz4
    broken[-6] ^= 0xFF  # inside the frame, the CRC made again
    broken[17:21] = calc_crc32c(bytes(broken[21:])).to_bytes(4, "big")
    assert FetchedRecords.read(bytes(broken), 40) is None
    with pytest.raises(Exception):  # noqa: B017, PT011 - aiokafka's own, whatever it is
        consumed(bytes(broken), in_place)
    aborted = record_batch(ENTRIES, transactional=True)
    listed, _ = consumed(aborted, in_place, aborted=[(7, 40)])
    assert listed == []  # skipped as aiokafka skips it
    listed, _ = consumed(aborted, in_place)
    assert [type(item) for item in listed] == [FetchedRecords]


def test_what_aiokafka_calls_corrupt_is_left_to_it() -> None:
    """A negative header count, and a record's attributes byte set (unused by Kafka,
    read differently by aiokafka): with a valid CRC, the reader hands the batch over."""
    clean = record_batch([(40, 1_700_000_000_000, b"k", b"v", [])])
    # The record after the 61-byte batch header: its length, attributes, ..., and last
    # its header count (zigzag-encoded: 0 is 0, -1 is 1).
    assert clean[-1] == 0
    for at, value in ((len(clean) - 1, 1), (62, 0x01)):  # -1 headers; attributes 1
        forged = bytearray(clean)
        forged[at] = value
        forged[17:21] = calc_crc32c(bytes(forged[21:])).to_bytes(4, "big")
        assert FetchedRecords.read(bytes(forged), 40) is None


def test_a_dead_letter_of_a_record_as_fetched_says_where_it_came_from() -> None:
    for record in (consumed(record_batch(ENTRIES), as_fetched)[0][1],
                   records_of(consumed(record_batch(ENTRIES), in_place)[0])[1]):
        letter = DeadLetter(SourceRecord.of(TP.topic, TP.partition, record),
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
