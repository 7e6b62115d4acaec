"""The compiled checkpoint drain (native/src/store.rs) against its Python reference
(`AccountStore._drain_packed`): the same records in the same order, and the same store
after it (which accounts it left packed, the activity and use orders)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.engine import Engine, EngineConfig
from service.engine.store import AccountStore
from tests.events import decoded, followers, interaction, post

engagement_native = pytest.importorskip("engagement_native")

DAY = 86_400.0


def _state(accounts: AccountStore) -> tuple[list[list[tuple[str, bytes | None]]], list[str]]:
    shards = [[(account_id, held if isinstance(held, bytes) else None)
               for account_id, held in shard.items()] for shard in accounts._shards]
    return shards, list(accounts._hot)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), hot=st.sampled_from([1, 3, 8, 40]),
       allowance=st.sampled_from([0, 300, 900, 4_096]),
       accounts=st.integers(2, 40), checkpoint_every=st.integers(1, 60))
def test_the_compiled_drain_is_the_reference(seed: int, hot: int, allowance: int,
                                             accounts: int, checkpoint_every: int) -> None:
    rng = random.Random(seed)
    engines = [Engine(EngineConfig(window_s=10 * DAY, hot_accounts=hot, max_accounts=30))
               for _ in range(2)]
    engines[1].accounts.compiled_drain = False
    for engine in engines:
        engine.accounts.packed_fold_max_bytes = allowance
    for n in range(400):
        account = f"a-{rng.randrange(accounts)}"
        at = 1_000.0 + n
        kind = rng.random()
        if kind < 0.1:
            event = post(account, f"p{rng.randrange(4)}", at)
        elif kind < 0.2:
            event = followers(account, rng.randrange(10_000), at)
        else:
            event = interaction("like", account, f"p{rng.randrange(4)}",
                                f"fan-{rng.randrange(50)}", at)
        for engine in engines:
            engine.apply(decoded(event))
        if rng.random() < 0.05:
            queried = f"a-{rng.randrange(accounts)}"
            assert engines[0].score(queried) == engines[1].score(queried)
        if n % checkpoint_every == 0:
            compiled, reference = (engine.accounts.drain_packed() for engine in engines)
            assert compiled == reference
            assert _state(engines[0].accounts) == _state(engines[1].accounts)
    assert engines[0].accounts.drain_packed() == engines[1].accounts.drain_packed()
