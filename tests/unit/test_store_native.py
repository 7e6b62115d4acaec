"""The compiled store (native/src/table.rs, `CompiledAccountStore`) against its Python
reference (`AccountStore`): any sequence of the store's operations gives the same
answers, the same accounts in the same orders (activity per shard, use of the hot set,
first change since the drain) and the same counts."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.engine import Engine, EngineConfig, packing
from service.engine.account import Account
from service.engine.store import ACTIVITY_SHARDS, AccountStore
from tests.events import decoded, followers, interaction, post

compiled_store = pytest.importorskip("service.engine.compiled_store")
CompiledAccountStore = compiled_store.CompiledAccountStore

DAY = 86_400.0
Store = AccountStore | Any


def observed(store: Store) -> dict[str, Any]:
    return {
        "shards": [store.shard_ids(shard) for shard in range(ACTIVITY_SHARDS)],
        "packed": list(store.packed()),
        "hot": store.hot_ids(),
        "changed": list(store.changed_folds().items()),
        "changed_ids": store.changed_ids(),
        "count": len(store),
        "hot_count": store.hot,
        "stats": dataclasses.asdict(store.stats),
        "bytes": store.estimated_bytes(),
    }


def _answer(value: Any) -> Any:
    """An answer in comparable form: an account by its packed bytes."""
    if isinstance(value, Account):
        return ("account", packing.pack(value))
    if isinstance(value, tuple):
        return tuple(_answer(item) for item in value)
    if isinstance(value, list):
        return [_answer(item) for item in value]
    return value


class Pair:
    """The same operations on both stores, each answer compared."""

    def __init__(self, hot: int, allowance: int) -> None:
        self.stores: list[Store] = [CompiledAccountStore(hot), AccountStore(hot)]
        for store in self.stores:
            store.packed_fold_max_bytes = allowance
        self.version = 0

    def do(self, name: str, *arguments: Any) -> Any:
        answers = [getattr(store, name)(*arguments) for store in self.stores]
        assert _answer(answers[0]) == _answer(answers[1]), name
        return answers

    def fold(self, account_id: str, rng: random.Random) -> None:
        """An event as the engine folds it: activate, change, put back (or add)."""
        self.version += 1
        held = self.do("activate", account_id)
        at = 1_000.0 + self.version
        actor = rng.randrange(40)
        post_id = f"p{rng.randrange(3)}"
        for store, answer in zip(self.stores, held, strict=True):
            if answer is None:
                account = Account(account_id, 0)
                account.touch(at, self.version)
                account.record_interaction("like", post_id, at, actor, 0, 30.0, 256)
                store.add(account)
                continue
            account, stays_packed = answer
            account.touch(at, self.version)
            account.record_interaction("like", post_id, at, actor, 0, 30.0, 256)
            if stays_packed:
                store.put_back(account)

    def same(self) -> None:
        assert observed(self.stores[0]) == observed(self.stores[1])


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), hot=st.sampled_from([1, 2, 5, 40]),
       allowance=st.sampled_from([0, 300, 1_200, 4_096]), accounts=st.integers(1, 30),
       steps=st.integers(1, 250))
def test_any_sequence_of_operations_answers_as_the_reference(
        seed: int, hot: int, allowance: int, accounts: int, steps: int) -> None:
    rng = random.Random(seed)
    pair = Pair(hot, allowance)
    # Ids past the 16 bytes the table keeps in its slots, alike in those 16 bytes.
    ids = [f"a-{n}" for n in range(accounts)] + [
        "ü-umlaut", "an-id-longer-than-its-slot-1", "an-id-longer-than-its-slot-22",
        "an-id-longer-than-its-slot-2", "sixteen-bytes-id"]
    for _ in range(steps):
        account_id = rng.choice(ids)
        choice = rng.random()
        if choice < 0.55:
            pair.fold(account_id, rng)
        elif choice < 0.62:
            pair.do("get", account_id)
        elif choice < 0.67:
            held = pair.do("for_change", account_id)
            for store, answer in zip(pair.stores, held, strict=True):
                if answer is not None and answer[1]:
                    store.put_back(answer[0])
        elif choice < 0.72:
            pair.do("drain_packed")
        elif choice < 0.735:
            pair.do("drain_changed")
        elif choice < 0.75:
            pair.do("discard_changes")
        elif choice < 0.79:
            pair.do("evict_least_active")
        elif choice < 0.83:
            pair.do("packed_one", account_id)
        elif choice < 0.88:
            packed = packing.pack(Account(account_id, 1)) if rng.random() < 0.6 else None
            pair.do("put_packed", account_id, packed)
        elif choice < 0.91:
            pair.do("mark_changed", account_id)
        elif choice < 0.94:
            pair.do("held", account_id)
        elif choice < 0.97:
            pair.do("changed_count")
        else:
            pair.same()
    pair.same()
    pair.do("drain_packed")
    pair.same()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), hot=st.sampled_from([1, 3, 40]))
def test_expiry_and_restore_answer_as_the_reference(seed: int, hot: int) -> None:
    rng = random.Random(seed)
    pair = Pair(hot, 4_096)
    for _ in range(120):
        pair.fold(f"a-{rng.randrange(25)}", rng)
        if rng.random() < 0.1:
            pair.do("drain_packed")
    limits = {0: (1_000.0 + rng.randrange(150), 0)}
    ids = list(pair.stores[1])
    assert list(pair.stores[0]) == ids
    most_examined, most_opened = rng.randrange(1, 40), rng.randrange(1, 10)
    swept = [store.expire(iter(ids), limits, most_examined, most_opened)
             for store in pair.stores]
    assert swept[0] == swept[1]
    pair.same()
    snapshot = list(pair.stores[1].packed())
    restored = Pair(hot, 4_096)
    restored.do("restore", snapshot)
    restored.same()
    assert list(restored.stores[0].packed()) == snapshot


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), hot=st.sampled_from([1, 3, 8, 40]),
       allowance=st.sampled_from([0, 300, 900, 4_096]),
       accounts=st.integers(2, 40), checkpoint_every=st.integers(1, 60))
def test_an_engine_on_the_compiled_store_answers_as_on_the_reference(
        seed: int, hot: int, allowance: int, accounts: int, checkpoint_every: int) -> None:
    """The engine's own paths (the compiled fold on the table, the Python fold on the
    reference), evictions at a small cap and queries between checkpoints."""
    rng = random.Random(seed)
    engines = [Engine(EngineConfig(window_s=10 * DAY, hot_accounts=hot, max_accounts=30,
                                   native_fold=native)) for native in (True, False)]
    assert isinstance(engines[0].accounts, CompiledAccountStore)
    assert isinstance(engines[1].accounts, AccountStore)
    for engine in engines:
        engine.accounts.packed_fold_max_bytes = allowance
    for n in range(300):
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
            assert observed(engines[0].accounts) == observed(engines[1].accounts)
    assert observed(engines[0].accounts) == observed(engines[1].accounts)


def test_ids_alike_in_the_bytes_a_slot_keeps_are_told_apart() -> None:
    """The table keeps an id's first 16 bytes in its slot; ids of the same length that
    share them differ only past them, and thousands of them make the index compare
    such ids (its 7-bit tags collide)."""
    store = CompiledAccountStore(5_000)
    ids = [f"a-prefix-of-16-b-{n:06d}" for n in range(3_000)]
    for account_id in ids:
        store.add(Account(account_id, 0))
    for account_id in ids:
        account = store.get(account_id)
        assert account is not None
        assert account.account_id == account_id
    assert store.get("a-prefix-of-16-b-999999") is None
    assert len(store) == len(ids)
