"""A flood of made-up account ids cannot exhaust memory: the account cap holds."""

from __future__ import annotations

import subprocess
import sys

FLOOD = r"""
import resource, sys
from datetime import UTC, datetime, timedelta
from service.engine import Engine, EngineConfig
from service.events import LikeEvent

cap = int(sys.argv[1]); flood = int(sys.argv[2])
engine = Engine(EngineConfig(max_accounts=cap))
start = datetime(2026, 11, 1, tzinfo=UTC)
def rss() -> int:
    return int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize()
before = rss()
for index in range(flood):
    moment = start + timedelta(milliseconds=index)
    engine.apply(LikeEvent(
        event_id=f"e{index}", account_id=f"made-up-{index}", occurred_at=moment,
        occurred_at_s=moment.timestamp(), post_id="p", actor_id=f"a{index}"))
    if index % 2_000 == 0:  # what each checkpoint takes for the changelog
        engine.accounts.discard_changes()
print(len(engine.accounts), engine.stats.evicted_accounts, rss() - before)
"""

CAP = 20_000
FLOOD_SIZE = 1_000_000
BUDGET_PER_ACCOUNT_BYTES = 4_096


def test_a_million_made_up_accounts_stay_within_the_caps_budget() -> None:
    run = subprocess.run([sys.executable, "-c", FLOOD, str(CAP), str(FLOOD_SIZE)],
                         capture_output=True, text=True, check=True, timeout=600)
    tracked, evicted, grown = (int(part) for part in run.stdout.split())
    assert tracked == CAP
    assert evicted == FLOOD_SIZE - CAP
    # The dedupe ids of the lateness horizon are the other thing that grows with a flood;
    # all these events fall within 17 minutes, so all of them are remembered.
    dedupe_allowance = FLOOD_SIZE * 80  # below the default cap of 5 M ids
    assert grown < CAP * BUDGET_PER_ACCOUNT_BYTES + dedupe_allowance, grown
