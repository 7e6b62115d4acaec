"""The dedupe memory of one partition: which event ids it has counted, by hour.

An event id is remembered from the moment its event counts until the hour of its
`occurred_at` leaves the partition's horizon (the window and its grace), so a re-send
anywhere inside the window counts once, whatever the order events arrive in. Ids are
kept per hour so that expiry lets a whole hour go at once, and so that a snapshot or a
changelog can carry an hour as one `bytes` value.

Layout. An id is remembered as the 64-bit xxh3 hash of its UTF-8 bytes. One hour's
hashes are sorted `array('Q')` shards of at most `SHARD_IDS`, picked by the hash's top
bits through a directory (extendible hashing: a shard that overflows splits in two by
its next bit, and the directory doubles when a shard spans a single entry). A lookup
is a bisect over at most 256 values, an insert a memmove of at most 2 KiB, and
a split two slices: no step touches more than one shard, so no step pauses the event
loop for long, whatever the hour holds. About 8.5 bytes per id in memory (a Python set
of strings: ~80) and 8 on disk; `python -m bench.dedupe` measures both.

False duplicates. Two different ids of the same partition-hour with the same hash make
the second one look like a re-send. With n ids in an hour the expected number of such
pairs is n(n - 1) / 2 / 2**64: 2.7e-8 for a million ids in one partition-hour.
`expected_false_duplicates` sums it over every hour this memory has held (retired hours
included); the metrics layer exports it.

Two implementations of the same structure: `EventIdsReference` below, the
specification, and `engagement_native.EventIdsCore` (native/src/dedupe.rs, built by
`make install`), which gives the same answers and the same bytes and lets the compiled
fold add ids without coming back to Python. `EventIds` holds one of them as `core`
(`use_compiled` selects which; tests/unit/test_dedupe_native.py holds the two together).

Everything here is pure: no I/O, no clock. `drain_added` and `merge` carry the ids
added since the last drain, hour by hour, as little-endian bytes (a changelog's records);
`export` and `restore` carry whole hours, sorted (a snapshot's).
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_left
from collections.abc import Iterator

from xxhash import xxh3_64_intdigest

try:
    import engagement_native
except ImportError:  # not built: the reference serves, slower (bench/dedupe.py)
    engagement_native = None  # type: ignore[assignment]

HASH_NAME = "xxh3_64"  # stored with exported hours: another hash could not read them
SHARD_IDS = 256
_PAIRS_PER_COLLISION = float(2**64)
_BIG_ENDIAN = sys.byteorder == "big"
_ARRAY_HEADER_BYTES = 80  # sys.getsizeof(array("Q")) on CPython 3.11
_HOUR_BYTES = 200  # an hour's own objects and its dict entry


def event_id_hash(event_id: str) -> int:
    """The 64-bit hash an id is remembered by; stable across processes and machines."""
    return xxh3_64_intdigest(event_id.encode())


def _to_bytes(values: array[int]) -> bytes:
    if _BIG_ENDIAN:
        values = array("Q", values)
        values.byteswap()
    return values.tobytes()


def _from_bytes(data: bytes) -> array[int]:
    values = array("Q")
    values.frombytes(data)
    if _BIG_ENDIAN:
        values.byteswap()
    return values


class _Hour:
    """One hour's hashes: shards in key order, each shard spanning an aligned block of
    directory entries (2**(depth - local depth) of them)."""

    __slots__ = ("count", "directory", "shards", "shift")

    def __init__(self, directory: list[array[int]], shift: int, count: int) -> None:
        self.directory = directory
        self.shift = shift  # 64 - depth: a hash's slot is `hashed >> shift`
        self.count = count
        self.shards = len(directory)  # distinct arrays: a shard may span several entries

    @classmethod
    def empty(cls) -> _Hour:
        return cls([array("Q")], 64, 0)

    @classmethod
    def from_sorted(cls, values: array[int], shard_ids: int) -> _Hour:
        """Shards cut from sorted, distinct hashes, about half full (room to grow)."""
        depth = 0
        while len(values) >> depth > shard_ids // 2:
            depth += 1
        shift = 64 - depth
        directory = []
        start = 0
        for slot in range(1, 1 << depth):
            cut = bisect_left(values, slot << shift, start)
            directory.append(values[start:cut])
            start = cut
        directory.append(values[start:])
        return cls(directory, shift, len(values))

    def distinct_shards(self) -> Iterator[array[int]]:
        previous = None
        for shard in self.directory:
            if shard is not previous:
                yield shard
                previous = shard

    def sorted_values(self) -> array[int]:
        values = array("Q")
        for shard in self.distinct_shards():
            values.extend(shard)
        return values

    def split(self, slot: int) -> None:
        directory = self.directory
        shard = directory[slot]
        span = 1  # directory entries the shard spans: an aligned block
        while span < len(directory):
            base = slot & ~(2 * span - 1)
            if directory[base] is shard and directory[base + 2 * span - 1] is shard:
                span *= 2
            else:
                break
        if span == 1:
            self.directory = directory = [entry for entry in directory for _ in (0, 1)]
            self.shift -= 1
            slot *= 2
            span = 2
        base = slot & ~(span - 1)
        half = span // 2
        cut = bisect_left(shard, (base + half) << self.shift)
        directory[base : base + half] = [shard[:cut]] * half
        directory[base + half : base + span] = [shard[cut:]] * half
        self.shards += 1


class EventIdsReference:
    """The specification of `EventIds`' core, in Python (see `use_compiled`); its
    methods are `EventIds`' own (documented there), `contains(hour, event_id)` is its
    `in`, and `add_hashed` is `add` after the hash."""

    __slots__ = ("_added", "_hours", "_retired", "_retired_pairs", "_shard_ids", "count",
                 "floor_hour")

    def __init__(self, track_changes: bool, shard_ids: int, /) -> None:
        self._shard_ids = shard_ids
        self._hours: dict[int, _Hour] = {}
        self.count = 0
        self.floor_hour = -(2**62)
        self._retired_pairs = 0.0
        # For a changelog: the hashes added and the hours let go since the last drain.
        self._added: dict[int, array[int]] | None = {} if track_changes else None
        self._retired: list[int] | None = [] if track_changes else None

    def __len__(self) -> int:
        return self.count

    @property
    def has_added(self) -> bool:
        return bool(self._added)

    @property
    def hours(self) -> list[int]:
        return sorted(self._hours)

    def add(self, hour: int, event_id: str) -> bool:
        return self.add_hashed(hour, xxh3_64_intdigest(event_id.encode()))

    def add_hashed(self, hour: int, hashed: int) -> bool:
        ids = self._hours.get(hour)
        if ids is None:
            ids = self._hours[hour] = _Hour.empty()
        slot = hashed >> ids.shift
        shard = ids.directory[slot]
        index = bisect_left(shard, hashed)
        if index < len(shard) and shard[index] == hashed:
            return False
        shard.insert(index, hashed)
        ids.count += 1
        self.count += 1
        if len(shard) > self._shard_ids:
            ids.split(slot)
        if self._added is not None:
            added = self._added.get(hour)
            if added is None:
                added = self._added[hour] = array("Q")
            added.append(hashed)
        return True

    def contains(self, hour: int, event_id: str) -> bool:
        ids = self._hours.get(hour)
        if ids is None:
            return False
        hashed = event_id_hash(event_id)
        shard = ids.directory[hashed >> ids.shift]
        index = bisect_left(shard, hashed)
        return index < len(shard) and shard[index] == hashed

    def ids_in(self, hour: int) -> int:
        ids = self._hours.get(hour)
        return 0 if ids is None else ids.count

    def oldest_hour(self) -> int | None:
        return min(self._hours, default=None)

    def expired_hours(self, first_live_hour: int) -> list[int]:
        return sorted(hour for hour in self._hours if hour < first_live_hour)

    def retire_before(self, first_live_hour: int) -> int:
        gone = 0
        for hour in self.expired_hours(first_live_hour):
            gone += self._retire(hour)
        if first_live_hour > self.floor_hour:
            self.floor_hour = first_live_hour
        return gone

    def forget_oldest(self, before_hour: int) -> int:
        oldest = self.oldest_hour()
        if oldest is None or oldest >= before_hour:
            return 0
        self.floor_hour = oldest + 1
        return self._retire(oldest)

    def _retire(self, hour: int) -> int:
        ids = self._hours.pop(hour)
        self.count -= ids.count
        self._retired_pairs += ids.count * (ids.count - 1) / 2
        if self._added is not None:
            self._added.pop(hour, None)
        if self._retired is not None:
            self._retired.append(hour)
        return ids.count

    def expected_false_duplicates(self) -> float:
        live = 0.0  # summed in the hours' order, as the compiled core does: the same bits
        for ids in self._hours.values():
            live += ids.count * (ids.count - 1) / 2
        return (self._retired_pairs + live) / _PAIRS_PER_COLLISION

    def nbytes(self) -> int:
        return sum(8 * ids.count + _ARRAY_HEADER_BYTES * ids.shards + 8 * len(ids.directory)
                   + _HOUR_BYTES for ids in self._hours.values())

    def export(self) -> dict[int, bytes]:
        return {hour: _to_bytes(ids.sorted_values()) for hour, ids in self._hours.items()}

    def restore(self, hour: int, data: bytes) -> None:
        old = self._hours.get(hour)
        ids = self._hours[hour] = _Hour.from_sorted(_from_bytes(data), self._shard_ids)
        self.count += ids.count - (0 if old is None else old.count)

    def drain_added(self) -> dict[int, bytes]:
        if self._added is None:
            raise RuntimeError("this dedupe memory does not track changes")
        added, self._added = self._added, {}
        return {hour: _to_bytes(values) for hour, values in added.items()}

    def drain_retired(self) -> list[int]:
        if self._retired is None:
            raise RuntimeError("this dedupe memory does not track changes")
        retired, self._retired = self._retired, []
        return retired

    def merge(self, hour: int, data: bytes) -> int:
        if hour < self.floor_hour:
            return 0
        incoming = _from_bytes(data)
        ids = self._hours.get(hour)
        if ids is None or len(incoming) * 8 > ids.count:
            # Many at once: one sort of the union costs less than inserts one by one.
            known = ids.sorted_values() if ids is not None else array("Q")
            values = sorted(set(incoming).union(known))
            rebuilt = self._hours[hour] = _Hour.from_sorted(array("Q", values), self._shard_ids)
            new = rebuilt.count - len(known)
        else:
            new = 0
            for hashed in incoming:
                slot = hashed >> ids.shift
                shard = ids.directory[slot]
                index = bisect_left(shard, hashed)
                if index < len(shard) and shard[index] == hashed:
                    continue
                shard.insert(index, hashed)
                ids.count += 1
                new += 1
                if len(shard) > self._shard_ids:
                    ids.split(slot)
        self.count += new
        return new


# The implementation in use, chosen here and nowhere else (as packing.py and audience.py
# do for theirs).
COMPILED_AVAILABLE = engagement_native is not None
_compiled_selected = COMPILED_AVAILABLE


def use_compiled(compiled: bool) -> None:
    """Selects the compiled core (native/src/dedupe.rs, if it is installed) or
    `EventIdsReference` for every `EventIds` made from now on."""
    global _compiled_selected
    _compiled_selected = compiled and COMPILED_AVAILABLE


def compiled_in_use() -> bool:
    return _compiled_selected


class EventIds:
    """Remembered event ids of one partition, by hour of `occurred_at`.

    `floor_hour` is the first hour the memory can answer for: hours below it were let go
    (expired, or forgotten at the memory cap), so the engine treats an event there as
    late rather than count a re-send twice.

    The ids live in `core`, compiled or the reference (`use_compiled`, or `compiled=`
    for one memory); the compiled fold adds to it directly."""

    __slots__ = ("core",)

    def __init__(self, track_changes: bool = False, compiled: bool | None = None) -> None:
        if compiled is None:
            compiled = _compiled_selected
        self.core: engagement_native.EventIdsCore | EventIdsReference = (
            engagement_native.EventIdsCore(track_changes, SHARD_IDS)
            if compiled and COMPILED_AVAILABLE else EventIdsReference(track_changes, SHARD_IDS))

    @property
    def compiled(self) -> bool:
        return not isinstance(self.core, EventIdsReference)

    def __len__(self) -> int:
        return len(self.core)

    @property
    def count(self) -> int:
        return self.core.count

    @property
    def floor_hour(self) -> int:
        return self.core.floor_hour

    @floor_hour.setter
    def floor_hour(self, hour: int) -> None:
        self.core.floor_hour = hour

    @property
    def has_added(self) -> bool:
        """Whether ids were added since the last `drain_added`."""
        return self.core.has_added

    @property
    def hours(self) -> list[int]:
        return self.core.hours

    def add(self, hour: int, event_id: str) -> bool:
        """Remembers the id; False if it was already remembered (a re-send)."""
        return self.core.add(hour, event_id)

    def __contains__(self, key: tuple[int, str]) -> bool:
        hour, event_id = key
        return self.core.contains(hour, event_id)

    def ids_in(self, hour: int) -> int:
        return self.core.ids_in(hour)

    def oldest_hour(self) -> int | None:
        return self.core.oldest_hour()

    def expired_hours(self, first_live_hour: int) -> list[int]:
        """The hours that `retire_before(first_live_hour)` would let go."""
        return self.core.expired_hours(first_live_hour)

    def retire_before(self, first_live_hour: int) -> int:
        """Lets go every hour before `first_live_hour`; returns how many ids went."""
        return self.core.retire_before(first_live_hour)

    def forget_oldest(self, before_hour: int) -> int:
        """Lets go the oldest hour if it is older than `before_hour` (the memory cap was
        reached); returns how many ids went. Events of that hour are late from now on."""
        return self.core.forget_oldest(before_hour)

    def expected_false_duplicates(self) -> float:
        """Expected pairs of different ids that shared an hour and a hash, over every
        hour held so far: an upper bound on re-sends wrongly seen."""
        return self.core.expected_false_duplicates()

    def nbytes(self) -> int:
        """Bytes of the hashes, the shards and the directories; cheap enough for every
        scrape. The reference estimates its objects' sizes (leaving out the arrays'
        spare capacity, a few per cent); the compiled core counts its allocations."""
        return self.core.nbytes()

    def export(self) -> dict[int, bytes]:
        """Every hour as its sorted hashes, little-endian (what `restore` reads)."""
        return self.core.export()

    def restore(self, hour: int, data: bytes) -> None:
        """Sets an hour from `export`ed bytes (sorted, distinct: not checked)."""
        self.core.restore(hour, data)

    def drain_added(self) -> dict[int, bytes]:
        """The hashes added since the last drain, by hour, as little-endian bytes; what a
        changelog record carries. Needs `track_changes`."""
        return self.core.drain_added()

    def drain_retired(self) -> list[int]:
        """The hours let go since the last drain (a changelog's tombstones)."""
        return self.core.drain_retired()

    def merge(self, hour: int, data: bytes) -> int:
        """Adds hashes in `drain_added`'s or `export`'s bytes to an hour (any order,
        repeats allowed); returns how many were new. Not recorded as added."""
        return self.core.merge(hour, data)
