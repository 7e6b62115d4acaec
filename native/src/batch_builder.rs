//! A Kafka record batch (message format v2, uncompressed) built for aiokafka's producer:
//! what a checkpoint sends (`consumer._send_in_batches`). It stands in for aiokafka's
//! `BatchBuilder` (`producer.create_batch()`), which its `send_batch` takes whole: the
//! producer's sender asks it for `record_count`, `size`, `closed`, `close`, sets the
//! transactional producer's id, epoch and sequence (`_set_producer_state`) and takes the
//! bytes (`_build`). aiokafka appends one record per Python call into a bytearray that
//! it grows as it goes, and checks the CRC-32C in software; this appends a whole list of
//! records in one call and checks the CRC in hardware (the `crc32c` crate).
//!
//! aiokafka's `DefaultRecordBatchBuilder` is the reference: given the same timestamp
//! the two write the same bytes (tests/unit/test_batch_builder.py).

use std::time::{SystemTime, UNIX_EPOCH};

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

/// baseOffset (8) .. recordCount (4): aiokafka's `HEADER_STRUCT`.
const HEADER: usize = 61;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const TRANSACTIONAL: i16 = 0x10;
const MAGIC: u8 = 2;

fn write_varint(out: &mut Vec<u8>, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    while zigzag >= 0x80 {
        out.push((zigzag as u8) | 0x80);
        zigzag >>= 7;
    }
    out.push(zigzag as u8);
}

/// A length-prefixed byte string; null as the length -1.
fn write_nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(bytes) => {
            write_varint(out, bytes.len() as i64);
            out.extend_from_slice(bytes);
        }
        None => write_varint(out, -1),
    }
}

fn varint_size(value: i64) -> usize {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    let mut size = 1;
    while zigzag >= 0x80 {
        zigzag >>= 7;
        size += 1;
    }
    size
}

fn bytes_of<'a>(object: &'a Bound<'_, PyAny>, what: &str) -> PyResult<Option<&'a [u8]>> {
    if object.is_none() {
        return Ok(None);
    }
    match object.cast::<PyBytes>() {
        Ok(bytes) => Ok(Some(bytes.as_bytes())),
        Err(_) => Err(PyTypeError::new_err(format!("Not supported type for {what}: {}",
                                                   object.get_type().name()?))),
    }
}

#[pyclass(module = "engagement_native")]
pub struct RecordBatchBuilder {
    batch_size: usize,
    transactional: bool,
    /// The header's room, then the records.
    buffer: Vec<u8>,
    records: i32,
    first_timestamp: Option<i64>,
    producer: (i64, i16, i32),
    closed: bool,
    built: Option<Py<PyBytes>>,
    /// Scratch for one record's body, before its length is known.
    record: Vec<u8>,
}

impl RecordBatchBuilder {
    /// One record, unless the batch is full (it always takes its first one).
    fn push(&mut self, timestamp: i64, key: Option<&[u8]>, value: Option<&[u8]>,
            headers: Option<&Bound<'_, PyAny>>) -> PyResult<bool> {
        let first = *self.first_timestamp.get_or_insert(timestamp);
        let record = &mut self.record;
        record.clear();
        record.push(0); // attributes
        write_varint(record, timestamp - first);
        write_varint(record, i64::from(self.records)); // the offset delta
        write_nullable(record, key);
        write_nullable(record, value);
        let headers = match headers.filter(|headers| !headers.is_none()) {
            None => None,
            Some(headers) => Some(
                headers.cast::<PyTuple>().map(|tuple| tuple.as_sequence().clone())
                    .or_else(|_| headers.cast::<PyList>().map(|list| list.as_sequence().clone()))
                    .map_err(|_| PyTypeError::new_err("headers must be a tuple, a list or None"))?),
        };
        let Some(headers) = headers else {
            write_varint(record, 0);
            return self.commit();
        };
        write_varint(record, headers.len()? as i64);
        for header in headers.try_iter()? {
            let header = header?;
            let header = header.cast::<PyTuple>()
                .map_err(|_| PyTypeError::new_err("a header must be a (str, bytes) tuple"))?;
            let name = header.get_item(0)?;
            let name = name.cast::<PyString>()
                .map_err(|_| PyTypeError::new_err("a header's name must be a str"))?
                .to_str()?;
            write_varint(record, name.len() as i64);
            record.extend_from_slice(name.as_bytes());
            let value = header.get_item(1)?;
            write_nullable(record, bytes_of(&value, "a header's value")?);
        }
        self.commit()
    }

    /// The record in `record` goes into the batch, unless the batch is full: as
    /// aiokafka's compiled builder has it, the batch must stay below `batch_size`.
    fn commit(&mut self) -> PyResult<bool> {
        let length = self.record.len() as i64;
        if self.records > 0
            && self.buffer.len() + varint_size(length) + self.record.len() >= self.batch_size
        {
            return Ok(false);
        }
        write_varint(&mut self.buffer, length);
        self.buffer.extend_from_slice(&self.record);
        self.records += 1;
        Ok(true)
    }
}

#[pymethods]
impl RecordBatchBuilder {
    #[new]
    #[pyo3(signature = (batch_size, *, transactional))]
    fn new(batch_size: usize, transactional: bool) -> Self {
        RecordBatchBuilder {
            batch_size,
            transactional,
            buffer: vec![0; HEADER],
            records: 0,
            first_timestamp: None,
            producer: (-1, -1, 0),
            closed: false,
            built: None,
            record: Vec::new(),
        }
    }

    /// Appends `records[start:]`, each a (key, value, headers) tuple, until the batch is
    /// full; returns the index of the first one not appended. All of them get the time
    /// of the batch's first record, in milliseconds (`timestamp_ms`: now if None).
    #[pyo3(signature = (records, start = 0, timestamp_ms = None))]
    fn extend(&mut self, records: &Bound<'_, PyList>, start: usize, timestamp_ms: Option<i64>
              ) -> PyResult<usize> {
        if self.closed {
            return Ok(start);
        }
        let timestamp = match (self.first_timestamp, timestamp_ms) {
            (Some(first), _) => first,
            (None, Some(given)) => given,
            (None, None) => SystemTime::now().duration_since(UNIX_EPOCH)
                .map(|since| since.as_millis() as i64).unwrap_or(0),
        };
        for index in start..records.len() {
            let record = records.get_item(index)?;
            let record = record.cast::<PyTuple>()
                .map_err(|_| PyTypeError::new_err(
                "a record must be a (key, value) or (key, value, headers) tuple"))?;
            let headers = match record.len() {
                2 => None,
                3 => Some(record.get_item(2)?),
                _ => return Err(PyTypeError::new_err(
                    "a record must be a (key, value) or (key, value, headers) tuple")),
            };
            let key = record.get_item(0)?;
            let value = record.get_item(1)?;
            let appended = self.push(timestamp, bytes_of(&key, "key")?, bytes_of(&value, "value")?,
                                     headers.as_ref())?;
            if !appended {
                self.closed = true;
                return Ok(index);
            }
        }
        Ok(records.len())
    }

    fn close(&mut self) {
        self.closed = true;
    }

    fn closed(&self) -> bool {
        self.closed
    }

    fn size(&self) -> usize {
        self.buffer.len()
    }

    fn record_count(&self) -> i32 {
        self.records
    }

    /// Set by aiokafka's sender before it takes the bytes.
    fn _set_producer_state(&mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) {
        self.producer = (producer_id, producer_epoch, base_sequence);
    }

    /// The batch's bytes; the first call closes it and writes its header.
    fn _build(&mut self, py: Python<'_>) -> Py<PyBytes> {
        if let Some(built) = &self.built {
            return built.clone_ref(py);
        }
        self.closed = true;
        let first = self.first_timestamp.unwrap_or(0);
        let (producer_id, producer_epoch, base_sequence) = self.producer;
        let length = (self.buffer.len() - 12) as i32;
        let header = &mut self.buffer[..HEADER];
        header[0..8].copy_from_slice(&0i64.to_be_bytes()); // the broker sets the offset
        header[8..12].copy_from_slice(&length.to_be_bytes());
        header[12..16].copy_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
        header[16] = MAGIC;
        let attributes: i16 = if self.transactional { TRANSACTIONAL } else { 0 };
        header[21..23].copy_from_slice(&attributes.to_be_bytes());
        header[23..27].copy_from_slice(&(self.records.max(1) - 1).to_be_bytes());
        header[27..35].copy_from_slice(&first.to_be_bytes());
        header[35..43].copy_from_slice(&first.to_be_bytes()); // every record's time
        header[43..51].copy_from_slice(&producer_id.to_be_bytes());
        header[51..53].copy_from_slice(&producer_epoch.to_be_bytes());
        header[53..57].copy_from_slice(&base_sequence.to_be_bytes());
        header[57..61].copy_from_slice(&self.records.to_be_bytes());
        let crc = crc32c::crc32c(&self.buffer[ATTRIBUTES_AT..]);
        self.buffer[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        let built: Py<PyBytes> = PyBytes::new(py, &self.buffer).unbind();
        self.buffer = Vec::new();
        self.built = Some(built.clone_ref(py));
        built
    }
}
