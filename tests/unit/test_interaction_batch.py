"""The compiled batch of re-keyed interactions (native/src/routes.rs) against the Python
one (`audience.InteractionBatch`), the reference: the same interactions give the same
message of the repartition topic, byte for byte, which the actor side reads back."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.engine.audience import InteractionBatch, unpack_interactions
from service.partition_state import PartitionState
from service.settings import Settings
from tests.events import at
from tests.unit.test_native_fold import PARTITION, PARTITIONS, Record, config

engagement_native = pytest.importorskip("engagement_native")

ACCOUNT_IDS = st.one_of(st.sampled_from(["acct-1", "acct-2", "ä", "x" * 300]),
                        st.text(min_size=1, max_size=40))
INTERACTION = st.tuples(st.integers(0, 2**64 - 1), ACCOUNT_IDS,
                        st.floats(allow_nan=True, allow_infinity=True))


@settings(max_examples=200, deadline=None)
@given(interactions=st.lists(INTERACTION, max_size=60))
def test_the_compiled_batch_writes_the_references_bytes(
        interactions: list[tuple[int, str, float]]) -> None:
    reference, compiled = InteractionBatch(), engagement_native.InteractionBatch()
    for actor, account_id, occurred_at in interactions:
        reference.add(actor, account_id, occurred_at)
        compiled.add(actor, account_id, occurred_at)
    assert compiled.count == reference.count == len(interactions)
    assert compiled.to_bytes() == reference.to_bytes()
    read_back = [(r.actor, r.account_id, r.occurred_at)
                 for r in unpack_interactions(compiled.to_bytes())]
    assert [(a, i) for a, i, _ in read_back] == [(a, i) for a, i, _ in interactions]


def test_an_account_id_past_the_tables_length_is_refused() -> None:
    with pytest.raises(ValueError, match="65,535"):
        engagement_native.InteractionBatch().add(1, "x" * 65_536, 1.0)


def test_the_fold_adds_to_a_batch_python_started() -> None:
    """A batch of the Python kind already in the routes (not made by the compiled fold)
    gets the compiled fold's interactions through its `add`."""
    state = PartitionState(PARTITION, config(True))
    python_batch = InteractionBatch()
    for target in range(PARTITIONS):
        state.interactions_out[target] = python_batch
    like = Record(b"acct-0", orjson.dumps({
        "event_id": "e1", "type": "like", "account_id": "acct-0", "post_id": "p",
        "actor_id": "a", "occurred_at": at(1_000.0)}), 1)
    state.engine.fold_records([like], 0, PARTITION, state.interactions_out, PARTITIONS,
                              now=2e9, max_event_bytes=Settings().max_event_bytes,
                              max_future_skew_s=Settings().max_future_skew_s, budget_s=1e9,
                              outcomes=[0] * 15, otherwise=lambda record: None)
    assert python_batch.count == 1
    assert [r.account_id for r in unpack_interactions(python_batch.to_bytes())] == ["acct-0"]
    assert Counter(type(batch) for batch in state.interactions_out.values()) == Counter(
        {InteractionBatch: PARTITIONS})
