"""Local snapshots: one partition's state with the input and changelog offsets it reflects.

The fast path when a partition comes back to the same instance (like Kafka Streams' local
store and checkpoint file): the snapshot is loaded, then the changelog is read from the
offset it names, then events are consumed from the position the state reflects.

File layout (all integers big-endian), one folder per partition (`partition-<n>/`):
    magic b"ENGSNAP1" | format version u16 | payload length u64 | CRC-32 of payload u32 |
    payload = lz4 frame(msgpack({"header": the partition's offsets, clock and dedupe ids
                                 (PartitionState.snapshot_header),
                                 "accounts": [account_id, packed account, ...],
                                 "actors": the actor activity (ActorActivity.snapshot),
                                 "written_at": epoch seconds}))
Version 4 holds the actor activity, with the repartition offset it reflects
(`actors_next` in the header); version 3 (per partition, without it) still loads, and its
actor activity is then replayed from the repartition topic. Files of other versions are
refused with a log line, and the partition is restored from the changelog instead.
Files are written to a temporary name, fsynced and renamed, so a reader sees a whole
snapshot or none; a damaged file is detected by length and checksum and skipped.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import re
import struct
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lz4.frame
import msgpack

FORMAT_VERSION = 4
READABLE_VERSIONS = (3, FORMAT_VERSION)
MAGIC = b"ENGSNAP1"
_HEADER = struct.Struct(">8sHQI")
_NAME = re.compile(r"^snapshot-(\d{12})\.bin$")

log = logging.getLogger(__name__)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Bulk copies of the state create millions of small containers; each would make the
    cyclic garbage collector rescan the whole long-lived heap (measured: 7x slower)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class SnapshotError(Exception):
    """A snapshot file that cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    path: Path
    header: dict[str, Any]  # PartitionState.snapshot_header
    accounts: list[Any]  # id, packed, id, packed, ...
    written_at: float
    actors: bytes | None = None  # ActorActivity.snapshot(); None in a version 3 file

    def account_pairs(self) -> Iterable[tuple[str, bytes]]:
        return zip(self.accounts[::2], self.accounts[1::2], strict=True)


def encode(header: dict[str, Any], accounts: Iterable[tuple[str, bytes]],
           actors: bytes) -> bytes:
    """`header` must name the repartition offset `actors` reflects (`actors_next`)."""
    if "actors_next" not in header:
        raise ValueError("the header does not say which offset the actor activity reflects")
    body = {
        "written_at": time.time(),
        "header": header,
        "accounts": [part for pair in accounts for part in pair],
        "actors": actors,
    }
    payload: bytes = lz4.frame.compress(msgpack.packb(body, use_bin_type=True))
    return _HEADER.pack(MAGIC, FORMAT_VERSION, len(payload), zlib.crc32(payload)) + payload


def decode(path: Path, data: bytes) -> Snapshot:
    if len(data) < _HEADER.size:
        raise SnapshotError(f"{path.name}: truncated header ({len(data)} bytes)")
    magic, version, length, checksum = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise SnapshotError(f"{path.name}: not a snapshot file (bad magic)")
    if version not in READABLE_VERSIONS:
        raise SnapshotError(
            f"{path.name}: format version {version}; this build reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}")
    payload = data[_HEADER.size :]
    if len(payload) != length:
        raise SnapshotError(f"{path.name}: truncated ({len(payload)} of {length} bytes)")
    if zlib.crc32(payload) != checksum:
        raise SnapshotError(f"{path.name}: checksum mismatch (corrupted)")
    try:
        body = msgpack.unpackb(
            lz4.frame.decompress(payload), use_list=True, strict_map_key=False, raw=False
        )
    except (ValueError, RuntimeError, msgpack.UnpackException) as broken:
        raise SnapshotError(f"{path.name}: undecodable payload ({broken})") from broken
    actors = body["actors"] if version >= 4 else None
    if actors is not None and not isinstance(actors, bytes):
        raise SnapshotError(f"{path.name}: the actor activity is not bytes")
    return Snapshot(path, body["header"], body["accounts"], float(body["written_at"]), actors)


def partition_store(directory: Path, partition: int, keep: int) -> SnapshotStore:
    return SnapshotStore(directory / f"partition-{partition}", keep)


class SnapshotStore:
    def __init__(self, directory: Path, keep: int) -> None:
        self.directory = directory
        self.keep = keep

    def files(self) -> list[Path]:
        """Snapshot files, newest first."""
        if not self.directory.is_dir():
            return []
        named = [(int(m.group(1)), p) for p in self.directory.iterdir()
                 if (m := _NAME.match(p.name))]
        return [path for _, path in sorted(named, reverse=True)]

    def write(self, data: bytes) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        existing = self.files()
        sequence = int(_NAME.match(existing[0].name).group(1)) + 1 if existing else 1  # type: ignore[union-attr]
        final = self.directory / f"snapshot-{sequence:012d}.bin"
        # The writer's pid in the name: a writer orphaned by a crash may still be busy
        # while the restarted service writes the same sequence.
        temporary = final.with_suffix(f".{os.getpid()}.tmp")
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, final)
        directory_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory_fd)
        finally:
            os.close(directory_fd)
        for stale in self.files()[self.keep :]:
            stale.unlink(missing_ok=True)
        return final

    def load_newest(self) -> Snapshot | None:
        """The newest snapshot that reads back whole; damaged ones are logged and skipped."""
        self._remove_abandoned_temporaries()
        for path in self.files():
            try:
                with collector_paused():
                    return decode(path, path.read_bytes())
            except (SnapshotError, OSError, KeyError, TypeError, ValueError) as broken:
                log.error("skipping unusable snapshot", extra={"path": str(path),
                                                               "reason": str(broken)})
        return None

    def _remove_abandoned_temporaries(self) -> None:
        if not self.directory.is_dir():
            return
        for leftover in self.directory.glob("snapshot-*.tmp"):
            writer = leftover.suffixes[-2].lstrip(".") if len(leftover.suffixes) > 1 else ""
            if writer.isdigit() and _alive(int(writer)):
                continue
            leftover.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
