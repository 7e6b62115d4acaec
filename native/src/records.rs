//! A fetched partition's Kafka record batches (message format v2) read in place: each
//! record an entry of offsets into the fetch response's bytes, with no Python object made
//! for it unless one is asked for (service/fetched_records.py). The batch fold reads the
//! key and value straight from the bytes (fold.rs).
//!
//! aiokafka's reader (`DefaultRecordBatch`, `PartitionRecords._unpack_records`) is the
//! reference, and tests/unit/test_fetched_records.py compares the two. What this reader
//! leaves to aiokafka (`read` returns None): compressed batches, the message formats before
//! v2, a batch with a delete horizon, a CRC that does not match, and anything malformed,
//! so that aiokafka decompresses, or raises its own error.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

/// baseOffset (8) + batchLength (4): what precedes the length's count.
const LOG_OVERHEAD: usize = 12;
/// The v2 batch header, up to and including the record count.
const BATCH_HEADER: usize = 61;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
/// The CRC-32C covers the batch from its attributes to its end.
const ATTRIBUTES_AT: usize = 21;
const COMPRESSION: i16 = 0x07;
const LOG_APPEND_TIME: i16 = 0x08;
const CONTROL: i16 = 0x20;
const DELETE_HORIZON: i16 = 0x40;

/// A byte range of the fetched bytes.
#[derive(Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
}

struct Entry {
    offset: i64,
    timestamp: i64,
    timestamp_type: u8,
    key: Option<Span>,
    value: Option<Span>,
    headers: Vec<(Span, Option<Span>)>,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, count: usize) -> Option<Span> {
        let end = self.pos.checked_add(count).filter(|end| *end <= self.bytes.len())?;
        let span = Span { start: self.pos, end };
        self.pos = end;
        Some(span)
    }

    fn byte(&mut self) -> Option<u8> {
        let span = self.take(1)?;
        Some(self.bytes[span.start])
    }

    /// A zigzag-encoded variable-length integer (Kafka's varint and varlong).
    fn varlong(&mut self) -> Option<i64> {
        let mut unsigned: u64 = 0;
        for shift in (0..70).step_by(7) {
            let byte = self.byte()?;
            unsigned |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some((unsigned >> 1) as i64 ^ -((unsigned & 1) as i64));
            }
        }
        None
    }

    /// A length-prefixed byte string; a negative length is null.
    fn nullable(&mut self) -> Option<Option<Span>> {
        let length = self.varlong()?;
        if length < 0 {
            return Some(None);
        }
        self.take(usize::try_from(length).ok()?).map(Some)
    }
}

fn be_i64(bytes: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

fn be_i32(bytes: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn be_i16(bytes: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(bytes[at..at + 2].try_into().expect("2 bytes"))
}

/// The records of `bytes` (a fetch response's record set) from `fetch_offset` on, and the
/// offset to fetch next; None for what aiokafka should read instead.
fn read_batches(bytes: &[u8], fetch_offset: i64) -> Option<(Vec<Entry>, i64)> {
    let mut entries = Vec::new();
    let mut next_offset = fetch_offset;
    let mut pos = 0;
    while bytes.len() - pos >= LOG_OVERHEAD {
        let base_offset = be_i64(bytes, pos);
        let length = usize::try_from(be_i32(bytes, pos + 8)).ok()?;
        let end = pos + LOG_OVERHEAD + length;
        if end > bytes.len() {
            break; // the fetch's size limit cut this batch: fetched again next time
        }
        if end - pos < BATCH_HEADER || bytes[pos + MAGIC_AT] != 2 {
            return None;
        }
        let crc = u32::from_be_bytes(bytes[pos + CRC_AT..pos + CRC_AT + 4].try_into().ok()?);
        if crc32c::crc32c(&bytes[pos + ATTRIBUTES_AT..end]) != crc {
            return None;
        }
        let attributes = be_i16(bytes, pos + ATTRIBUTES_AT);
        if attributes & (COMPRESSION | DELETE_HORIZON) != 0 {
            return None;
        }
        let last_offset_delta = i64::from(be_i32(bytes, pos + 23));
        let base_timestamp = be_i64(bytes, pos + 27);
        let max_timestamp = be_i64(bytes, pos + 35);
        let count = be_i32(bytes, pos + 57);
        if attributes & CONTROL == 0 {
            let log_append_time = attributes & LOG_APPEND_TIME != 0;
            let mut cursor = Cursor { bytes: &bytes[..end], pos: pos + BATCH_HEADER };
            for _ in 0..count {
                let length = usize::try_from(cursor.varlong()?).ok()?;
                let record_end = cursor.pos.checked_add(length)?;
                cursor.byte()?; // the record's attributes: unused
                let timestamp_delta = cursor.varlong()?;
                let offset = base_offset.checked_add(cursor.varlong()?)?;
                let key = cursor.nullable()?;
                let value = cursor.nullable()?;
                let header_count = cursor.varlong()?;
                let mut headers = Vec::new();
                for _ in 0..header_count {
                    let name = cursor.nullable()??;
                    std::str::from_utf8(&bytes[name.start..name.end]).ok()?; // as aiokafka's
                    headers.push((name, cursor.nullable()?));
                }
                if cursor.pos != record_end {
                    return None;
                }
                // A fetch from inside a batch gets the whole batch: the records before
                // the position were consumed already.
                if offset < next_offset {
                    continue;
                }
                next_offset = offset + 1;
                let (timestamp, timestamp_type) = if log_append_time {
                    (max_timestamp, 1)
                } else {
                    (base_timestamp.checked_add(timestamp_delta)?, 0)
                };
                entries.push(Entry { offset, timestamp, timestamp_type, key, value, headers });
            }
            if cursor.pos != end {
                return None;
            }
        }
        // As aiokafka: past the batch's last offset even if compaction removed it.
        next_offset = base_offset + last_offset_delta + 1;
        pos = end;
    }
    Some((entries, next_offset))
}

/// One partition's records of one fetch, read in place (`read`). A sequence: an item is
/// a `FetchedRecord`, made when asked for.
#[pyclass(frozen, sequence, module = "engagement_native")]
pub(crate) struct FetchedRecords {
    bytes: Py<PyBytes>,
    entries: Vec<Entry>,
    /// The offset after the last record or batch read (the consumer's next position).
    #[pyo3(get)]
    next_offset: i64,
}

impl FetchedRecords {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The key and value of record `index`, as slices of the fetched bytes.
    pub(crate) fn key_value<'a>(&'a self, py: Python<'a>, index: usize
    ) -> (Option<&'a [u8]>, Option<&'a [u8]>) {
        let bytes = self.bytes.as_bytes(py);
        let entry = &self.entries[index];
        let slice = |span: Option<Span>| span.map(|span| &bytes[span.start..span.end]);
        (slice(entry.key), slice(entry.value))
    }

    pub(crate) fn record(&self, py: Python<'_>, index: usize) -> PyResult<FetchedRecord> {
        let bytes = self.bytes.bind(py).as_bytes();
        let entry = &self.entries[index];
        let object = |span: Option<Span>| -> Py<PyAny> {
            match span {
                Some(span) => PyBytes::new(py, &bytes[span.start..span.end]).into_any().unbind(),
                None => py.None(),
            }
        };
        let headers = PyList::empty(py);
        for (name, value) in &entry.headers {
            let name = std::str::from_utf8(&bytes[name.start..name.end]).unwrap_or_default();
            let name = PyString::new(py, name).into_any().unbind();
            headers.append(PyTuple::new(py, [name, object(*value)])?)?;
        }
        Ok(FetchedRecord {
            offset: entry.offset,
            timestamp: entry.timestamp,
            timestamp_type: entry.timestamp_type,
            key: object(entry.key),
            value: object(entry.value),
            headers: headers.into_any().unbind(),
        })
    }
}

#[pymethods]
impl FetchedRecords {
    /// The records of a fetch response's record set from `fetch_offset` on; None where
    /// aiokafka should read them (compression, an older format, a delete horizon, a CRC
    /// that does not match, anything malformed).
    #[staticmethod]
    fn read(bytes: Bound<'_, PyBytes>, fetch_offset: i64) -> Option<FetchedRecords> {
        let (entries, next_offset) = read_batches(bytes.as_bytes(), fetch_offset)?;
        Some(FetchedRecords { bytes: bytes.unbind(), entries, next_offset })
    }

    fn __len__(&self) -> usize {
        self.entries.len()
    }

    fn __getitem__(&self, py: Python<'_>, index: isize) -> PyResult<FetchedRecord> {
        let length = self.entries.len() as isize;
        let position = if index < 0 { index + length } else { index };
        if position < 0 || position >= length {
            return Err(pyo3::exceptions::PyIndexError::new_err("record index out of range"));
        }
        self.record(py, position as usize)
    }
}

/// One record as `aiokafka`'s `DefaultRecord` gives it.
#[pyclass(frozen, get_all, module = "engagement_native")]
pub(crate) struct FetchedRecord {
    offset: i64,
    timestamp: i64,
    timestamp_type: u8,
    key: Py<PyAny>,
    value: Py<PyAny>,
    headers: Py<PyAny>,
}
