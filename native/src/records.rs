//! A fetched partition's Kafka record batches (message format v2) read in place: each
//! record an entry of offsets into the fetch response's bytes, with no Python object made
//! for it unless one is asked for (service/fetched_records.py). The batch fold reads the
//! key and value straight from the bytes (fold.rs).
//!
//! aiokafka's reader (`DefaultRecordBatch`, `PartitionRecords._unpack_records`) is the
//! reference, and tests/unit/test_fetched_records.py compares the two. A compressed
//! batch (gzip, snappy, lz4, zstd) is decompressed into a buffer of its own, which its
//! records' offsets then point into. What this reader leaves to aiokafka (`read` returns
//! None): the message formats before v2, a batch with a delete horizon, a CRC that does
//! not match, a batch that does not decompress, and anything malformed, so that aiokafka
//! raises its own error.

use std::io::Read;

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
/// A batch that decompresses to more is left to aiokafka (a broker accepts ~1 MiB
/// batches by default; this bounds what a hostile one can make this reader allocate).
const MOST_DECOMPRESSED: usize = 256 << 20;
/// The xerial framing of snappy, which Kafka's Java client writes.
const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";

/// A byte range of the fetched bytes.
#[derive(Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
}

struct Entry {
    /// 0: the fetched bytes; n: the n-th decompressed batch.
    buffer: u32,
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

/// A compressed batch's records, decompressed; None if they do not decompress.
fn decompress(codec: i16, data: &[u8]) -> Option<Vec<u8>> {
    let limit = MOST_DECOMPRESSED as u64 + 1;
    let mut out = Vec::new();
    match codec {
        1 => flate2::read::MultiGzDecoder::new(data).take(limit).read_to_end(&mut out).ok()?,
        2 => {
            if data.len() >= 16 && data.starts_with(XERIAL_MAGIC) {
                let mut pos = 16; // the magic, a version and a compatible version
                while pos < data.len() {
                    let length = usize::try_from(be_i32(data.get(pos..pos + 4)?, 0)).ok()?;
                    let block = data.get(pos + 4..(pos + 4).checked_add(length)?)?;
                    if out.len() + snap::raw::decompress_len(block).ok()? > MOST_DECOMPRESSED {
                        return None;
                    }
                    out.extend(snap::raw::Decoder::new().decompress_vec(block).ok()?);
                    pos += 4 + length;
                }
            } else {
                if snap::raw::decompress_len(data).ok()? > MOST_DECOMPRESSED {
                    return None;
                }
                out = snap::raw::Decoder::new().decompress_vec(data).ok()?;
            }
            0
        }
        3 => lz4_flex::frame::FrameDecoder::new(data).take(limit).read_to_end(&mut out).ok()?,
        4 => zstd::stream::read::Decoder::new(data).ok()?.take(limit).read_to_end(&mut out).ok()?,
        _ => return None,
    };
    (out.len() <= MOST_DECOMPRESSED).then_some(out)
}

/// What a batch's header says of its records.
struct BatchHeader {
    base_offset: i64,
    base_timestamp: i64,
    max_timestamp: i64,
    log_append_time: bool,
    count: i32,
}

/// The `count` records of one batch, `data[start..]` (exactly), as entries into `buffer`;
/// those before `next_offset` skipped, which moves past each one taken.
fn read_records(data: &[u8], start: usize, header: &BatchHeader, buffer: u32,
                next_offset: &mut i64, entries: &mut Vec<Entry>) -> Option<()> {
    let mut cursor = Cursor { bytes: data, pos: start };
    for _ in 0..header.count {
        let length = usize::try_from(cursor.varlong()?).ok()?;
        let record_end = cursor.pos.checked_add(length)?;
        if cursor.byte()? != 0 {
            return None; // the record's attributes, unused: aiokafka reads them otherwise
        }
        let timestamp_delta = cursor.varlong()?;
        let offset = header.base_offset.checked_add(cursor.varlong()?)?;
        let key = cursor.nullable()?;
        let value = cursor.nullable()?;
        let header_count = cursor.varlong()?;
        if header_count < 0 {
            return None; // corrupt, as aiokafka says
        }
        let mut headers = Vec::new();
        for _ in 0..header_count {
            let name = cursor.nullable()??;
            std::str::from_utf8(&data[name.start..name.end]).ok()?; // as aiokafka's
            headers.push((name, cursor.nullable()?));
        }
        if cursor.pos != record_end {
            return None;
        }
        // A fetch from inside a batch gets the whole batch: the records before the
        // position were consumed already.
        if offset < *next_offset {
            continue;
        }
        *next_offset = offset.checked_add(1)?;
        let (timestamp, timestamp_type) = if header.log_append_time {
            (header.max_timestamp, 1)
        } else {
            (header.base_timestamp.checked_add(timestamp_delta)?, 0)
        };
        entries.push(Entry { buffer, offset, timestamp, timestamp_type, key, value, headers });
    }
    (cursor.pos == data.len()).then_some(())
}

/// What `read` makes of a fetch response's record set.
struct FetchRead {
    entries: Vec<Entry>,
    decompressed: Vec<Vec<u8>>,
    next_offset: i64,
}

/// The records of `bytes` (a fetch response's record set) from `fetch_offset` on, and the
/// offset to fetch next; None for what aiokafka should read instead.
fn read_batches(bytes: &[u8], fetch_offset: i64) -> Option<FetchRead> {
    let mut read = FetchRead { entries: Vec::new(), decompressed: Vec::new(), next_offset: fetch_offset };
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
        if attributes & DELETE_HORIZON != 0 {
            return None;
        }
        let last_offset_delta = i64::from(be_i32(bytes, pos + 23));
        let header = BatchHeader {
            base_offset,
            base_timestamp: be_i64(bytes, pos + 27),
            max_timestamp: be_i64(bytes, pos + 35),
            log_append_time: attributes & LOG_APPEND_TIME != 0,
            count: be_i32(bytes, pos + 57),
        };
        if attributes & CONTROL == 0 {
            let codec = attributes & COMPRESSION;
            if codec == 0 {
                read_records(&bytes[..end], pos + BATCH_HEADER, &header, 0,
                             &mut read.next_offset, &mut read.entries)?;
            } else {
                let records = decompress(codec, &bytes[pos + BATCH_HEADER..end])?;
                let buffer = u32::try_from(read.decompressed.len() + 1).ok()?;
                read_records(&records, 0, &header, buffer, &mut read.next_offset,
                             &mut read.entries)?;
                read.decompressed.push(records);
            }
        }
        // As aiokafka: past the batch's last offset even if compaction removed it.
        read.next_offset = base_offset.checked_add(last_offset_delta)?.checked_add(1)?;
        pos = end;
    }
    Some(read)
}

/// One partition's records of one fetch, read in place (`read`). A sequence: an item is
/// a `FetchedRecord`, made when asked for.
#[pyclass(frozen, sequence, module = "engagement_native")]
pub(crate) struct FetchedRecords {
    bytes: Py<PyBytes>,
    /// The compressed batches' records (`Entry::buffer` n is the (n-1)-th).
    decompressed: Vec<Vec<u8>>,
    entries: Vec<Entry>,
    /// The offset after the last record or batch read (the consumer's next position).
    #[pyo3(get)]
    next_offset: i64,
}

impl FetchedRecords {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    fn buffer<'a>(&'a self, py: Python<'a>, entry: &Entry) -> &'a [u8] {
        match entry.buffer {
            0 => self.bytes.as_bytes(py),
            n => &self.decompressed[n as usize - 1],
        }
    }

    /// The key and value of record `index`, as slices of the fetched bytes.
    pub(crate) fn key_value<'a>(&'a self, py: Python<'a>, index: usize
    ) -> (Option<&'a [u8]>, Option<&'a [u8]>) {
        let entry = &self.entries[index];
        let bytes = self.buffer(py, entry);
        let slice = |span: Option<Span>| span.map(|span| &bytes[span.start..span.end]);
        (slice(entry.key), slice(entry.value))
    }

    pub(crate) fn record(&self, py: Python<'_>, index: usize) -> PyResult<FetchedRecord> {
        let entry = &self.entries[index];
        let bytes = self.buffer(py, entry);
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
    /// aiokafka should read them (an older format, a delete horizon, a CRC that does not
    /// match, a batch that does not decompress, anything malformed).
    #[staticmethod]
    fn read(bytes: Bound<'_, PyBytes>, fetch_offset: i64) -> Option<FetchedRecords> {
        let read = read_batches(bytes.as_bytes(), fetch_offset)?;
        Some(FetchedRecords {
            bytes: bytes.unbind(),
            decompressed: read.decompressed,
            entries: read.entries,
            next_offset: read.next_offset,
        })
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
