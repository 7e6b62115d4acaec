"""Bounded-memory actor statistics: exact while small, then Space-Saving + HyperLogLog.

An `ActorSketch` counts interactions per actor. While an account has at most
`HEAVY_HITTER_CAPACITY` distinct actors in a time bucket every number is exact (most
accounts). Past that it keeps the Space-Saving counters (Metwally et al. 2005: each kept
count overestimates by at most interactions / capacity; that overestimate is tracked and
the scoring uses the guaranteed lower bound, so a flat audience does not look like a
pod) and a HyperLogLog of the distinct
actors (Flajolet et al. 2007; 2**HLL_PRECISION registers, standard error 1.04/sqrt(256) =
6.5 %). Memory is bounded whatever the audience size: 32 counters and 256 bytes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from hashlib import blake2b

HEAVY_HITTER_CAPACITY = 32
# Interactions by time of day, in bins of 3 hours (UTC): every 6-hour night contains
# one whole bin, whatever the time zone.
RHYTHM_BINS = 8
RHYTHM_BIN_S = 86_400.0 / RHYTHM_BINS
HLL_PRECISION = 8
HLL_REGISTERS = 1 << HLL_PRECISION
_HASH_BITS = 64
_REMAINING_BITS = _HASH_BITS - HLL_PRECISION
_REMAINING_MASK = (1 << _REMAINING_BITS) - 1
_HLL_ALPHA = 0.7213 / (1 + 1.079 / HLL_REGISTERS)


def actor_hash(actor_id: str) -> int:
    """A 64-bit hash that is stable across processes (snapshots store it)."""
    return int.from_bytes(blake2b(actor_id.encode(), digest_size=8).digest(), "little")


def hll_add(registers: bytearray, hashed: int) -> None:
    index = hashed >> _REMAINING_BITS
    remaining = hashed & _REMAINING_MASK
    rank = _REMAINING_BITS - remaining.bit_length() + 1
    if rank > registers[index]:
        registers[index] = rank


_INVERSE_POWERS = tuple(2.0**-rank for rank in range(_REMAINING_BITS + 2))
# A rank is at most _REMAINING_BITS + 1 = 57 < 128, so each register's top bit is free:
# a byte-wise maximum can be taken on whole register arrays as one integer each.
_TOP_BITS = int.from_bytes(b"\x80" * HLL_REGISTERS, "little")


def hll_merge(into: bytearray, other: bytes | bytearray) -> None:
    """`into[i] = max(into[i], other[i])` for every register, ~17x faster than a loop:
    with each byte of `mine` lifted by 128, `mine - theirs` borrows across no byte, and
    its top bit per byte says where `mine >= theirs`."""
    mine = int.from_bytes(into, "little")
    theirs = int.from_bytes(other, "little")
    mine_wins = (((mine | _TOP_BITS) - theirs) & _TOP_BITS) >> 7
    keep = mine_wins * 0xFF  # 0xFF in the bytes where mine >= theirs, else 0x00
    merged = (mine & keep) | (theirs & ~keep)
    into[:] = merged.to_bytes(HLL_REGISTERS, "little")


def hll_estimate(registers: bytes | bytearray) -> float:
    # Registers grouped by rank (ranks seldom exceed ~20): a count per rank instead of a
    # lookup per register. Each term is exact (a whole number times a power of two), so
    # the sum is exact whenever the ranks span fewer than ~45 binary places. The ranks
    # are counted up from 0 until every register is counted, that is up to the largest
    # rank (the terms of range(max(registers) + 1), without max's walk over them).
    terms = []
    uncounted = len(registers)
    rank = 0
    while uncounted > 0:
        count = registers.count(rank)
        terms.append(count * _INVERSE_POWERS[rank])
        uncounted -= count
        rank += 1
    harmonic = sum(terms)
    zeros = registers.count(0)
    estimate = _HLL_ALPHA * HLL_REGISTERS * HLL_REGISTERS / harmonic
    if estimate <= 2.5 * HLL_REGISTERS and zeros:
        return HLL_REGISTERS * math.log(HLL_REGISTERS / zeros)  # linear counting
    return estimate


class ActorSketch:
    __slots__ = ("_at_floor", "_floor", "bucket", "counts", "errors", "interactions",
                 "registers", "rhythm")

    def __init__(self, bucket: int = 0) -> None:
        self.bucket = bucket  # which time bucket of the account's actors this is
        self.interactions = 0
        self.counts: dict[int, int] = {}
        # Space-Saving's per-counter overestimate (count - error is guaranteed); only
        # allocated once the sketch stops being exact, to keep small accounts small.
        self.errors: dict[int, int] | None = None
        self.registers: bytearray | None = None
        self.rhythm = [0] * RHYTHM_BINS  # interactions per time-of-day bin
        # The actors whose count is the minimum, `_floor`, in the order of `counts`
        # (reversed, to pop the first): derived state, rebuilt when used up, not packed,
        # and allocated only once the sketch is full.
        self._at_floor: list[int] | None = None
        self._floor = 0

    @property
    def exact(self) -> bool:
        return self.registers is None

    def add(self, actor: int) -> None:
        self.interactions += 1
        counts = self.counts
        seen = counts.get(actor)
        if seen is not None:
            counts[actor] = seen + 1
            return
        if len(counts) < HEAVY_HITTER_CAPACITY:
            counts[actor] = 1
            if self.registers is not None:
                hll_add(self.registers, actor)
            return
        if self.registers is None:
            self.registers = bytearray(HLL_REGISTERS)
            for known in counts:
                hll_add(self.registers, known)
        hll_add(self.registers, actor)
        if self.errors is None:
            self.errors = {}
        victim = self._first_at_floor()
        floor = counts.pop(victim)
        self.errors.pop(victim, None)
        counts[actor] = floor + 1
        self.errors[actor] = floor

    def _first_at_floor(self) -> int:
        """What `min(counts, key=counts.get)` gives (the first actor with the smallest
        count), without a scan of all counters per new actor: counts only grow and a
        newcomer enters above the floor, so the actors at the floor only leave it, in
        order, until none is left."""
        counts = self.counts
        at_floor = self._at_floor
        if at_floor is None:
            at_floor = self._at_floor = []
        while at_floor:
            candidate = at_floor.pop()
            if counts.get(candidate) == self._floor:
                return candidate
        floor = self._floor = min(counts.values())
        at_floor.extend(actor for actor, count in counts.items() if count == floor)
        at_floor.reverse()
        return at_floor.pop()

    def guaranteed_counts(self) -> dict[int, int]:
        errors = self.errors
        if not errors:
            return self.counts
        return {actor: count - errors.get(actor, 0) for actor, count in self.counts.items()}


_NO_ERRORS: dict[int, int] = {}  # never written


@dataclass(frozen=True, slots=True)
class ActorSummary:
    """Actor statistics over several buckets."""

    interactions: int
    distinct_actors: float
    top_counts: tuple[int, ...]  # the heaviest actors' guaranteed counts, descending
    exact: bool
    rhythm: tuple[int, ...] = ()  # interactions per time-of-day bin


def summarize(sketches: Iterable[ActorSketch], top: int) -> ActorSummary:
    chosen = sketches if isinstance(sketches, list) else list(sketches)
    if len(chosen) == 1 and chosen[0].registers is None and len(chosen[0].rhythm) == RHYTHM_BINS:
        # One exact sketch (most accounts inside a window of a few days): its own
        # numbers, without the merge's copies (the same values the merge gives).
        only = chosen[0]
        return ActorSummary(only.interactions, float(len(only.counts)),
                            tuple(sorted(only.counts.values(), reverse=True)[:top]), True,
                            tuple(only.rhythm))
    return _merged(chosen, top)


def _merged(chosen: list[ActorSketch], top: int) -> ActorSummary:
    interactions = 0
    merged_counts: dict[int, int] = {}
    registers: bytearray | None = None
    exact = all(sketch.exact for sketch in chosen)
    rhythm = [0] * RHYTHM_BINS
    for sketch in chosen:
        interactions += sketch.interactions
        for index, count in enumerate(sketch.rhythm):
            rhythm[index] += count
        errors = sketch.errors
        if not merged_counts:  # the first: its guaranteed counts (a copy if its own)
            merged_counts = sketch.guaranteed_counts() if errors else sketch.counts.copy()
        else:  # guaranteed counts added in, without building them first
            known = merged_counts.get
            error_of = (errors or _NO_ERRORS).get
            for actor, count in sketch.counts.items():
                merged_counts[actor] = known(actor, 0) + (count - error_of(actor, 0))
    if exact:
        distinct = float(len(merged_counts))
    else:
        # The registers' maximum over all sketches (in any order: max commutes): the
        # first sketch's registers copied, instead of merged into zeros.
        for sketch in chosen:
            if sketch.registers is None:
                if registers is None:
                    registers = bytearray(HLL_REGISTERS)
                for actor in sketch.counts:
                    hll_add(registers, actor)
            elif registers is None:
                registers = bytearray(sketch.registers)
            else:
                hll_merge(registers, sketch.registers)
        assert registers is not None  # a sketch that is not exact has registers
        distinct = min(float(interactions), hll_estimate(registers))
    top_counts = tuple(sorted(merged_counts.values(), reverse=True)[:top])
    return ActorSummary(interactions, distinct, top_counts, exact, tuple(rhythm))
