"""An account unpacked only to be read goes back as the bytes it came from; any change
in between (an event, an audience signal, expiry) packs it again."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from service.engine import Engine, EngineConfig, packing
from service.engine.audience import AudienceSignal
from service.engine.store import AccountStore
from tests.events import decoded, followers, interaction, post

DAY = 86_400.0


@pytest.fixture
def packs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    packed: list[str] = []
    original = packing.pack

    def counting(account):  # type: ignore[no-untyped-def]
        packed.append(account.account_id)
        return original(account)

    monkeypatch.setattr(packing, "pack", counting)
    yield packed


def _engine(packs: list[str], window_s: float = 10 * DAY) -> Engine:
    engine = Engine(EngineConfig(window_s=window_s, allowed_lateness_s=0, hot_accounts=1))
    for name in ("a", "b"):
        engine.apply(decoded(post(name, "p", 10)))
        engine.apply(decoded(interaction("like", name, "p", "fan", 20)))
    packs.clear()
    return engine  # "a" packed, "b" hot


def _held(store: AccountStore, account_id: str) -> object:
    return next(shard[account_id] for shard in store._shards if account_id in shard)


def test_a_read_account_goes_back_as_its_own_bytes(packs: list[str]) -> None:
    engine = _engine(packs)
    before = _held(engine.accounts, "a")
    assert isinstance(before, bytes)
    score = engine.score("a")  # unpacks "a", packs "b" out
    engine.score("b")  # unpacks "b", and "a" goes back unchanged
    assert packs == ["b"]
    assert _held(engine.accounts, "a") is before
    assert engine.score("a") == score
    assert engine.accounts.estimated_bytes() > 0


def test_an_event_after_the_read_packs_it_again(packs: list[str]) -> None:
    engine = _engine(packs)
    engine.score("a")
    engine.apply(decoded(interaction("like", "a", "p", "other", 30)))
    engine.score("b")
    assert packs == ["b", "a"]
    assert engine.accounts.get("a").posts["p"].likes == 2  # type: ignore[union-attr]


def test_an_audience_signal_after_the_read_packs_it_again(packs: list[str]) -> None:
    engine = _engine(packs)
    engine.score("a")
    assert engine.apply_audience(AudienceSignal("a", 0.0, 5, 2, 1))
    engine.score("b")
    assert packs == ["b", "a"]
    assert engine.accounts.get("a").audience  # type: ignore[union-attr]


def test_expiry_of_a_read_account_packs_it_again(packs: list[str]) -> None:
    engine = _engine(packs, window_s=DAY)
    engine.apply(decoded(followers("a", 100, 2 * DAY)))  # "a" changed, then read
    engine.score("b")
    engine.score("a")
    packs.clear()
    engine.apply(decoded(followers("clock", 1, 2 * DAY + 10)))  # "a" packed out
    engine.score("a")  # read again, hot
    assert engine.accounts.get("a").posts  # type: ignore[union-attr]
    engine.expire()  # drops the old post of the hot "a" (and all of "b")
    engine.score("clock")  # "a" packed out
    assert "a" in packs
    assert not engine.accounts.get("a").posts  # type: ignore[union-attr]
