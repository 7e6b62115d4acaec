//! `AccountStore.drain_packed` (service/engine/store.py), compiled: a checkpoint drains
//! every account changed since the last one, tens of thousands at a time on the wide
//! ingest workload, and the Python loop spent ~1.5 us on each outside its packing (the
//! shard's crc32 through `zlib`, the lookup, the tuples). The Python method stays the
//! reference: tests/unit/test_store_native.py holds both to the same answers.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::actors::crc32;
use crate::ACTIVITY_SHARD_MASK;

/// `drain_packed` for the store's `shards`, `changed` (already taken from the store) and
/// hot set, `pack_many` packing a batch of hot accounts at a time (`batch` each).
#[pyfunction]
#[pyo3(signature = (shards, changed, hot, pack_many, most, batch, /))]
pub(crate) fn drain_packed<'py>(
    py: Python<'py>,
    shards: &Bound<'py, PyList>,
    changed: &Bound<'py, PyDict>,
    hot: &Bound<'py, PyAny>,
    pack_many: &Bound<'py, PyAny>,
    most: usize,
    batch: usize,
) -> PyResult<Bound<'py, PyList>> {
    let drained = PyList::empty(py);
    let mut hot_ids: Vec<(Bound<'py, PyString>, Bound<'py, PyDict>, usize)> = Vec::new();
    let hot_accounts = PyList::empty(py);
    for (account_id, folds) in changed.iter() {
        let account_id = account_id.cast_into::<PyString>()?;
        let shard = shards
            .get_item((crc32(account_id.to_str()?.as_bytes()) & ACTIVITY_SHARD_MASK) as usize)?
            .cast_into::<PyDict>()?;
        match shard.get_item(&account_id)? {
            None => drained.append(PyTuple::new(py, [account_id.into_any(), py.None().into_bound(py)])?)?,
            Some(held) if held.is_instance_of::<PyBytes>() => {
                drained.append(PyTuple::new(py, [account_id.into_any(), held])?)?
            }
            Some(held) => {
                hot_ids.push((account_id, shard, folds.extract()?));
                hot_accounts.append(held)?;
            }
        }
    }
    let move_out = hot.getattr(pyo3::intern!(py, "__delitem__"))?;
    for (start, ids) in (0..).step_by(batch.max(1)).zip(hot_ids.chunks(batch.max(1))) {
        let accounts = hot_accounts.get_slice(start, start + ids.len());
        let packed = pack_many.call1((accounts,))?;
        for ((account_id, shard, folds), account_bytes) in ids.iter().zip(packed.try_iter()?) {
            let account_bytes = account_bytes?.cast_into::<PyBytes>()?;
            // As many folds packed would have stayed packed: left packed.
            if folds.saturating_mul(account_bytes.as_bytes().len()) <= most {
                move_out.call1((account_id,))?;
                shard.set_item(account_id, &account_bytes)?;
            }
            drained.append(PyTuple::new(py, [account_id.clone().into_any(), account_bytes.into_any()])?)?;
        }
    }
    Ok(drained)
}
