"""When the score-change stream hears about an account. Pure; no I/O.

The stream (`engagement-scores`, compacted, keyed by account id) carries an account's
score body when its tier changes or its credibility has moved by at least a step since
the record last emitted for it, at most once per account per interval, and a tombstone
when the account leaves the window. `ChangeGate` remembers what was last emitted per
account and decides; the caller produces the records in the same transaction as the
state they describe.

Time is whatever clock the caller passes, in seconds; the partition's stream time (the
score's `as_of`) makes a replay emit exactly what the live run emitted.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class ChangePolicy:
    credibility_step: float = 5.0  # points on the 0-100 scale
    interval_s: float = 60.0  # at most one record per account in this long

    def __post_init__(self) -> None:
        if self.credibility_step <= 0 or self.interval_s < 0:
            raise ValueError("credibility_step must be > 0 and interval_s >= 0")


@dataclass(frozen=True, slots=True)
class Emitted:
    """What the stream last said about an account."""

    tier: str
    credibility: float
    emitted_at: float


class Verdict(StrEnum):
    EMIT = "emit"
    HOLD = "hold"  # worth a record, but one went out less than an interval ago
    SKIP = "skip"  # nothing worth telling


def decide(previous: Emitted | None, tier: str, credibility: float, now: float,
           policy: ChangePolicy) -> Verdict:
    if previous is None:
        return Verdict.EMIT
    moved = (tier != previous.tier
             or abs(credibility - previous.credibility) >= policy.credibility_step)
    if not moved:
        return Verdict.SKIP
    if now - previous.emitted_at < policy.interval_s:
        return Verdict.HOLD
    return Verdict.EMIT


class ChangeGate:
    """The last record emitted per account, and the accounts held back by the interval.

    A held account must be offered again once its interval is over, even if no event
    arrives for it, or the stream would keep a stale score: `due(now)` names them."""

    def __init__(self, policy: ChangePolicy | None = None) -> None:
        self.policy = policy or ChangePolicy()
        self._emitted: dict[str, Emitted] = {}
        self._held: dict[str, float] = {}  # account -> when it may be emitted
        self._due: list[tuple[float, str]] = []  # heap over _held; stale entries skipped

    def __len__(self) -> int:
        return len(self._emitted)

    def last(self, account_id: str) -> Emitted | None:
        return self._emitted.get(account_id)

    def holds(self, account_id: str) -> bool:
        """Whether a change of the account waits for its interval (`due` names it then)."""
        return account_id in self._held

    def offer(self, account_id: str, tier: str, credibility: float, now: float) -> bool:
        """True: emit the account's score now (the gate records it as emitted)."""
        previous = self._emitted.get(account_id)
        verdict = decide(previous, tier, credibility, now, self.policy)
        if verdict is Verdict.EMIT:
            self._emitted[account_id] = Emitted(tier, credibility, now)
            self._held.pop(account_id, None)
            return True
        if verdict is Verdict.HOLD and previous is not None:
            if account_id not in self._held:
                due_at = previous.emitted_at + self.policy.interval_s
                self._held[account_id] = due_at
                heapq.heappush(self._due, (due_at, account_id))
        else:
            # Moved back within the step: nothing is owed any more.
            self._held.pop(account_id, None)
        return False

    def defer(self, account_id: str, now: float) -> bool:
        """An account that may have moved, before it is re-scored: if its last record went
        out less than an interval ago, nothing can be emitted for it now, so it is held
        until then unscored (True). Re-scoring, which costs tens of microseconds, then
        happens at most once per interval for a busy account, not at every checkpoint;
        what is emitted is the same: `due` offers it when its interval is over."""
        previous = self._emitted.get(account_id)
        if previous is None or now - previous.emitted_at >= self.policy.interval_s:
            return False
        if account_id not in self._held:
            due_at = previous.emitted_at + self.policy.interval_s
            self._held[account_id] = due_at
            heapq.heappush(self._due, (due_at, account_id))
        return True

    def record(self, account_id: str, tier: str, credibility: float, emitted_at: float
               ) -> None:
        """What the stream holds for an account (a restore reads it back)."""
        self._emitted[account_id] = Emitted(tier, credibility, emitted_at)
        self._held.pop(account_id, None)

    def due(self, now: float) -> list[str]:
        """Held accounts whose interval is over: re-score them and `offer` again."""
        ready = []
        heap = self._due
        held = self._held
        while heap and heap[0][0] <= now:
            due_at, account_id = heapq.heappop(heap)
            if held.get(account_id) == due_at:
                del held[account_id]
                ready.append(account_id)
        return ready

    def leave(self, account_id: str) -> bool:
        """The account left the window. True: emit a tombstone (the stream had a record
        for it); it is forgotten either way."""
        self._held.pop(account_id, None)
        return self._emitted.pop(account_id, None) is not None

    def export(self) -> Iterator[tuple[str, str, float, float, float | None]]:
        """(account_id, tier, credibility, emitted_at, held_until) per account, for the
        checkpoint; held_until is None unless a change waits for its interval."""
        held = self._held
        for account_id, emitted in self._emitted.items():
            yield (account_id, emitted.tier, emitted.credibility, emitted.emitted_at,
                   held.get(account_id))

    def restore(self, rows: Iterable[tuple[str, str, float, float, float | None]]) -> None:
        """The state `export` gave, as of a checkpoint."""
        self._emitted = {}
        self._held = {}
        self._due = []
        for account_id, tier, credibility, emitted_at, held_until in rows:
            self._emitted[account_id] = Emitted(tier, credibility, emitted_at)
            if held_until is not None:
                self._held[account_id] = held_until
                self._due.append((held_until, account_id))
        heapq.heapify(self._due)
