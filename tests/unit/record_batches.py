"""Kafka record batches (message format v2) as a broker serves them, built with aiokafka's
own builder: for the reader of fetched bytes (native/src/records.rs) and the fold over it."""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.util import calc_crc32c

# offset, timestamp (ms), key, value, headers
Entry = tuple[int, int, bytes | None, bytes | None, Sequence[tuple[str, bytes | None]]]
ATTRIBUTES_AT = 21
LOG_APPEND_TIME = 0x08
CONTROL = 0x20


def record_batch(entries: Sequence[Entry], compression: int = 0, transactional: bool = False,
                 attributes: int = 0) -> bytes:
    """One batch of `entries` (their offsets ascending, from the first one's), with
    `attributes` bits set besides what the builder sets (the CRC made again)."""
    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=compression, is_transactional=int(transactional),
        producer_id=7 if transactional else -1, producer_epoch=0 if transactional else -1,
        base_sequence=0 if transactional else -1, batch_size=1 << 24)
    base_offset = entries[0][0]
    for offset, timestamp, key, value, headers in entries:
        builder.append(offset - base_offset, timestamp=timestamp, key=key, value=value,
                       headers=list(headers))
    batch = bytearray(builder.build())
    batch[0:8] = base_offset.to_bytes(8, "big")  # the broker's (not under the CRC)
    if attributes:
        batch[ATTRIBUTES_AT + 1] |= attributes
        batch[17:21] = calc_crc32c(bytes(batch[ATTRIBUTES_AT:])).to_bytes(4, "big")
    return bytes(batch)
