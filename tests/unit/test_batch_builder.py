"""The compiled record batch builder (native/src/batch_builder.rs) against aiokafka's
`DefaultRecordBatchBuilder`: the same records, the same time and producer state give the
same bytes, and a batch refuses the same record when full."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from hypothesis import given, settings
from hypothesis import strategies as st

from service.kafka_clients import BATCH_BYTES, KafkaClients, _AppendingBatch

engagement_native = pytest.importorskip("engagement_native")

payloads = st.one_of(st.none(), st.binary(max_size=300))
headers = st.lists(st.tuples(st.text(max_size=12), payloads), max_size=3)
records = st.lists(
    st.one_of(st.tuples(payloads, payloads),
              st.tuples(payloads, payloads, headers.map(tuple))),
    min_size=1, max_size=40)


def aiokafka_batch(listed: list[Any], batch_size: int, timestamp: int,
                   state: tuple[int, int, int]) -> tuple[bytes, int]:
    builder = DefaultRecordBatchBuilder(2, 0, is_transactional=1, producer_id=-1,
                                        producer_epoch=-1, base_sequence=0,
                                        batch_size=batch_size)
    taken = 0
    for key, value, *rest in listed:
        header_list = list(rest[0]) if rest and rest[0] else []
        if builder.append(taken, timestamp, key, value, header_list) is None:
            break
        taken += 1
    builder.set_producer_state(*state)
    return bytes(builder.build()), taken


@settings(max_examples=150, deadline=None)
@given(listed=records, batch_size=st.integers(100, 8_000),
       timestamp=st.integers(0, 2**41), producer_id=st.integers(0, 2**40),
       epoch=st.integers(0, 2**15 - 1), sequence=st.integers(0, 2**31 - 1))
def test_the_compiled_builder_writes_aiokafkas_bytes(
    listed: list[Any], batch_size: int, timestamp: int, producer_id: int, epoch: int,
    sequence: int,
) -> None:
    expected, taken = aiokafka_batch(listed, batch_size, timestamp,
                                     (producer_id, epoch, sequence))
    builder = engagement_native.RecordBatchBuilder(batch_size, transactional=True)
    assert builder.extend(listed, 0, timestamp) == taken
    assert builder.record_count() == taken
    builder._set_producer_state(producer_id, epoch, sequence)
    built = builder._build()
    assert built == expected
    assert builder._build() is built
    assert builder.closed()
    # And aiokafka reads it back, CRC checked.
    batch = DefaultRecordBatch(bytearray(built))
    assert batch.validate_crc()
    read = [(record.key, record.value, list(record.headers)) for record in batch]
    assert read == [(key, value, list(rest[0]) if rest and rest[0] else [])
                    for key, value, *rest in listed[:taken]]


def test_a_full_batch_goes_on_from_where_it_stopped_and_refuses_nothing_twice() -> None:
    listed = [(b"k%d" % n, b"v" * 400, ()) for n in range(30)]
    sizes = []
    index = 0
    while index < len(listed):
        builder = engagement_native.RecordBatchBuilder(4_000, transactional=True)
        start, index = index, builder.extend(listed, index)
        assert builder.closed() == (index < len(listed))
        assert builder.extend(listed, index) == index  # closed, or nothing left
        sizes.append(index - start)
    assert sum(sizes) == 30
    assert max(sizes) < 30
    one = engagement_native.RecordBatchBuilder(10, transactional=True)
    assert one.extend(listed) == 1  # the first record always goes in


@pytest.mark.parametrize("bad", [[("key", b"v")], [(b"k",)], [(b"k", b"v", ((b"n", b"v"),))],
                                 [(b"k", b"v", (("n", "v"),))], ["record"]])
def test_a_record_of_the_wrong_shape_is_a_type_error(bad: list[Any]) -> None:
    with pytest.raises(TypeError):
        engagement_native.RecordBatchBuilder(BATCH_BYTES, transactional=True).extend(bad)


def test_the_fallback_appends_what_the_compiled_builder_does() -> None:
    listed = [(b"k", b"v"), (None, b"w", (("h", b"x"), ("n", None))), (b"z", None, ())]
    fallback = _AppendingBatch(BATCH_BYTES, 0, is_transactional=True)
    assert fallback.extend(listed) == 3
    assert fallback.record_count() == 3
    assert type(KafkaClients.record_batch()) is engagement_native.RecordBatchBuilder
