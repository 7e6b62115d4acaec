"""The hot set sized from a memory budget (store.hot_capacity_for, Settings, engine_config)."""

from __future__ import annotations

import pytest

from service.consumer import engine_config
from service.engine import Engine, EngineConfig
from service.engine.store import (
    HOT_ACCOUNT_BYTES,
    MIN_HOT_ACCOUNTS,
    PACKED_ACCOUNT_BYTES,
    hot_capacity_for,
)
from service.metrics import Metrics
from service.partition_state import PartitionState
from service.settings import DEFAULT_MEMORY_BUDGET_BYTES, MEMORY_BUDGET_SHARE_OF_LIMIT, Settings
from tests.events import decoded, interaction, post

GIB = 2**30


@pytest.mark.parametrize("budget", [300 * 2**20, 512 * 2**20, GIB, 4 * GIB])
def test_the_cap_fits_the_budget_with_the_hot_set_it_gets(budget: int) -> None:
    max_accounts = 500_000
    hot = hot_capacity_for(budget, max_accounts)
    assert MIN_HOT_ACCOUNTS <= hot <= max_accounts
    full = hot * HOT_ACCOUNT_BYTES + (max_accounts - hot) * PACKED_ACCOUNT_BYTES
    assert full <= budget
    if hot < max_accounts:  # one more would not fit
        assert full + HOT_ACCOUNT_BYTES - PACKED_ACCOUNT_BYTES > budget


def test_a_large_budget_keeps_every_account_hot_and_a_small_one_the_floor() -> None:
    assert hot_capacity_for(100 * GIB, 1_000_000) == 1_000_000
    assert hot_capacity_for(10 * 2**20, 1_000_000) == MIN_HOT_ACCOUNTS  # not even packed
    assert hot_capacity_for(GIB, 1_000_000) > 20_000  # the old fixed default


def test_the_budget_is_as_set_else_a_share_of_the_limit_else_the_default() -> None:
    assert Settings().account_memory_budget == DEFAULT_MEMORY_BUDGET_BYTES
    limited = Settings(memory_limit_bytes=2 * GIB)
    assert limited.account_memory_budget == int(2 * GIB * MEMORY_BUDGET_SHARE_OF_LIMIT)
    both = Settings(memory_limit_bytes=2 * GIB, memory_budget_bytes=GIB // 2)
    assert both.account_memory_budget == GIB // 2


def test_each_partition_gets_its_share_and_a_count_overrides_the_budget() -> None:
    settings = Settings(memory_budget_bytes=GIB, max_accounts=1_000_000)
    whole = engine_config(settings, partitions=1)
    assert whole.hot_accounts == hot_capacity_for(GIB, 1_000_000)
    quarter = engine_config(settings, partitions=4)
    assert quarter.hot_accounts == hot_capacity_for(GIB // 4, 250_000)
    assert quarter.max_accounts == 250_000
    counted = Settings(memory_budget_bytes=GIB, hot_accounts=777)
    assert engine_config(counted, partitions=4).hot_accounts == 777


def test_the_environment_sets_both(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGAGEMENT_MEMORY_LIMIT_BYTES", str(4 * GIB))
    assert Settings().account_memory_budget == int(4 * GIB * MEMORY_BUDGET_SHARE_OF_LIMIT)
    monkeypatch.setenv("ENGAGEMENT_HOT_ACCOUNTS", "5000")
    assert engine_config(Settings()).hot_accounts == 5000


def test_the_estimate_counts_each_form() -> None:
    engine = Engine(EngineConfig(hot_accounts=2))
    for index in range(5):
        account = f"acct-{index}"
        engine.apply(decoded(post(account, "p", index)))
        engine.apply(decoded(interaction("like", account, "p", "fan", index + 1)))
    assert engine.accounts.hot == 2
    assert engine.accounts.estimated_bytes() == (2 * HOT_ACCOUNT_BYTES
                                                 + 3 * PACKED_ACCOUNT_BYTES)


def test_the_gauges_add_up_each_partitions_capacity_and_estimate() -> None:
    settings = Settings(memory_budget_bytes=GIB, max_accounts=1_000_000)
    states = [PartitionState(partition, engine_config(settings, partitions=4))
              for partition in range(2)]  # an instance holding two of four partitions
    engine = states[0].engine
    for index in range(3):
        engine.apply(decoded(post(f"acct-{index}", "p", index)), 0)
    metrics = Metrics()
    metrics.watch_partitions(lambda: states)
    sample = metrics.registry.get_sample_value
    assert sample("engagement_accounts_hot_capacity") == 2 * hot_capacity_for(
        GIB // 4, 250_000)
    assert sample("engagement_accounts_estimated_bytes") == 3 * HOT_ACCOUNT_BYTES
