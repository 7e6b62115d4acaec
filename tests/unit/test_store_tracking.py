"""The store's dicts stay tracked by the cyclic collector through a restore, so that
`gc.freeze()` after the restore takes them along and no young collection walks them later
(see store._tracked_dict)."""

from __future__ import annotations

import gc

from service.engine import Engine, EngineConfig
from service.engine.persistence import export_accounts, export_partitions, import_state
from tests.events import decoded, interaction, post


def test_restored_shards_are_frozen_with_the_restore_and_stay_out_of_young_collections(
) -> None:
    # The Python store's shard dicts (the compiled store holds packed accounts outside
    # the collector's reach).
    engine = Engine(EngineConfig(hot_accounts=1, native_fold=False))
    for index in range(300):
        account = f"acct-{index}"
        engine.apply(decoded(post(account, "p", index)))
        engine.apply(decoded(interaction("like", account, "p", "fan", index + 1)))
    restored = import_state(engine.config, export_partitions(engine),
                            list(export_accounts(engine)), engine.changes)
    shards = restored.accounts._shards
    assert all(isinstance(held, bytes) for shard in shards for held in shard.values())
    assert all(gc.is_tracked(shard) for shard in shards)
    gc.freeze()
    try:
        assert restored.score("acct-7") is not None  # unpacks one into its shard
        young = {id(item) for item in gc.get_objects(0)}
        assert not any(id(shard) in young for shard in shards)
    finally:
        gc.unfreeze()
