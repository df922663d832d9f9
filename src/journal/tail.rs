//! Following the journal from behind: the store writer reads the records
//! the writer has made durable, in order, straight from the segment files
//! (the page cache serves them), so it never slows the order path and picks
//! up where it left off after a restart.
//!
//! It reads a bounded chunk at a time ([`READ_CHUNK_BYTES`]) and decodes from
//! a cursor into it, compacting only before the next read: however far the
//! store lags (and it lags by design during a burst), a batch costs what its
//! records cost, and the tail holds at most a chunk or two in memory. In
//! the segment being written it reads no further than the writer has
//! written ([`DurableEnd`]): a preallocated segment's zeros are not read.

use crate::journal::record::{decode, Decoded, HEADER_BYTES, PAYLOAD_BYTES_MAX};
use crate::journal::segment::{first_seq_of, list_segments};
use crate::journal::{DurableEnd, JournalError};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Bytes read from a segment at a time: larger than the largest record, so a
/// chunk always completes the record it starts in.
pub const READ_CHUNK_BYTES: usize = 4 << 20;
const _: () = assert!(READ_CHUNK_BYTES > HEADER_BYTES + PAYLOAD_BYTES_MAX);

pub struct Tail {
    dir: PathBuf,
    /// The next sequence number to hand out.
    next_seq: u64,
    /// The segment being read and the offset of the next undecoded record.
    segment: Option<(PathBuf, u64)>,
    /// Bytes read from the segment; `pending[decoded..]` are not decoded yet
    /// (the rest of the chunk, or a record cut short by the writer).
    pending: Vec<u8>,
    decoded: usize,
}

impl Tail {
    /// A tail that will hand out records after `after_seq`.
    pub fn new(dir: &Path, after_seq: u64) -> Tail {
        Tail {
            dir: dir.to_owned(),
            next_seq: after_seq + 1,
            segment: None,
            pending: Vec::new(),
            decoded: 0,
        }
    }

    /// Bytes the tail holds in memory (read, not yet handed out).
    pub fn buffered_bytes(&self) -> usize {
        self.pending.len() - self.decoded
    }

    fn forget_buffered(&mut self) {
        self.pending.clear();
        self.decoded = 0;
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Up to `records_max` records with sequence numbers up to `end.seq`.
    pub fn read(
        &mut self,
        end: DurableEnd,
        records_max: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, JournalError> {
        let durable_seq = end.seq;
        let mut records = Vec::new();
        while self.next_seq <= durable_seq && records.len() < records_max {
            if self.segment.is_none() && !self.open_segment()? {
                break;
            }
            let before = records.len();
            self.read_segment(end, records_max, &mut records)?;
            if self.segment.is_none() {
                if !self.open_segment()? {
                    break;
                }
                continue;
            }
            if records.len() == before && self.next_seq <= durable_seq {
                // This segment holds no more: the next one starts at next_seq.
                if !self.advance_segment()? {
                    break;
                }
            }
        }
        Ok(records)
    }

    /// Opens the segment that holds `next_seq`, skipping records before it.
    fn open_segment(&mut self) -> Result<bool, JournalError> {
        let segments = list_segments(&self.dir).map_err(|e| JournalError::io(&self.dir, e))?;
        let Some((_, path)) = segments
            .iter()
            .rev()
            .find(|(first, _)| *first <= self.next_seq)
        else {
            return Ok(false);
        };
        self.segment = Some((path.clone(), 0));
        self.forget_buffered();
        Ok(true)
    }

    fn advance_segment(&mut self) -> Result<bool, JournalError> {
        let segments = list_segments(&self.dir).map_err(|e| JournalError::io(&self.dir, e))?;
        match segments.iter().find(|(first, _)| *first == self.next_seq) {
            Some((_, path)) => {
                self.segment = Some((path.clone(), 0));
                self.forget_buffered();
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn read_segment(
        &mut self,
        end: DurableEnd,
        records_max: usize,
        records: &mut Vec<(u64, Vec<u8>)>,
    ) -> Result<(), JournalError> {
        let durable_seq = end.seq;
        let Some((path, offset)) = self.segment.clone() else {
            return Ok(());
        };
        let being_written = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(first_seq_of)
            == Some(end.segment_first_seq);
        let readable_end = if being_written {
            end.segment_bytes
        } else {
            u64::MAX
        };
        if self.buffered_bytes() < READ_CHUNK_BYTES {
            // Refill: keep the undecoded bytes, read the next chunk after them.
            let mut file = match File::open(&path) {
                Ok(file) => file,
                // A checkpoint deleted it after we had read it all: the next
                // segment starts at `next_seq`.
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                    self.segment = None;
                    self.forget_buffered();
                    return Ok(());
                }
                Err(error) => return Err(JournalError::io(&path, error)),
            };
            self.pending.drain(..self.decoded);
            self.decoded = 0;
            let read_from = offset + self.pending.len() as u64;
            let chunk = readable_end
                .saturating_sub(read_from)
                .min(READ_CHUNK_BYTES as u64);
            if chunk > 0 {
                file.seek(SeekFrom::Start(read_from))
                    .map_err(|e| JournalError::io(&path, e))?;
                file.take(chunk)
                    .read_to_end(&mut self.pending)
                    .map_err(|e| JournalError::io(&path, e))?;
            }
        }
        let mut consumed = 0usize;
        let start = self.decoded;
        while records.len() < records_max && self.next_seq <= durable_seq {
            match decode(&self.pending[start + consumed..]) {
                Decoded::Record {
                    seq,
                    payload,
                    bytes,
                } => {
                    consumed += bytes;
                    if seq < self.next_seq {
                        continue; // before our position: already applied
                    }
                    if seq != self.next_seq {
                        return Err(JournalError::Corrupt {
                            segment: path.clone(),
                            offset: offset + (consumed - bytes) as u64,
                            reason: "sequence number out of order".into(),
                        });
                    }
                    records.push((seq, payload.to_vec()));
                    self.next_seq += 1;
                }
                // The writer is mid-write, or this is past the durable end.
                Decoded::Incomplete | Decoded::Corrupt(_) => break,
            }
        }
        self.decoded += consumed;
        self.segment = Some((path, offset + consumed as u64));
        Ok(())
    }
}
