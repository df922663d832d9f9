//! What the `replay` target does with one input, shared with
//! `examples/check.rs` so the seeds and artifacts can be replayed outside
//! libFuzzer exactly as the target replays them.
//!
//! The first input byte says how the rest becomes segment files:
//! - `0xxxxxxx`: one segment holding all of it;
//! - `11nnnnnn`: two segments, split after record `nnnnnn + 1` (counted by
//!   decoding from the start; where decoding stops earlier, split there), the
//!   way the writer closes a segment between two commits;
//! - `10nnnnnn`: two segments, split at byte `nnnnnn * len / 63`, anywhere.
//!
//! Each segment is named `segment_path(dir, first_seq)` with `first_seq` the
//! sequence number of its first record when that decodes, else 1 for the
//! first segment and the first segment's `first_seq + 1` for the second (so
//! the two never share a name).
//!
//! Every record `replay` hands over is parsed as a `sale::Event` with
//! serde_json and applied to a fresh `sale::Engine`; both errors become
//! `Err(String)`.

use flashgate::journal::record::{decode, Decoded};
use flashgate::journal::segment::segment_path;
use flashgate::journal::{replay, JournalError, ReplayOutcome};
use flashgate::sale::{Engine, EngineLimits, Event};
use std::fs;
use std::path::Path;

pub const TAIL_WINDOW_BYTES: usize = 64 * 1024;

/// Where the second segment starts, if there is one.
fn split_at(control: u8, rest: &[u8]) -> Option<usize> {
    if control & 0x80 == 0 {
        return None;
    }
    let n = usize::from(control & 0x3f);
    if control & 0x40 != 0 {
        let mut offset = 0;
        for _ in 0..=n {
            match decode(&rest[offset..]) {
                Decoded::Record { bytes, .. } => offset += bytes,
                _ => break,
            }
        }
        Some(offset)
    } else {
        Some(n * rest.len() / 63)
    }
}

fn first_seq(segment: &[u8]) -> Option<u64> {
    match decode(segment) {
        Decoded::Record { seq, .. } => Some(seq),
        _ => None,
    }
}

pub fn engine() -> Engine {
    Engine::new(
        EngineLimits {
            shard_count: 4,
            sales_max: 16,
            items_per_sale_max: 8,
            stock_per_item_max: 1000,
            orders_max: 10000,
            hold_seconds_min: flashgate::sale::engine::HOLD_SECONDS_MIN,
            stock_from_leases: false,
        },
        0,
    )
}

/// Writes `data` as segment files into `dir` (which must exist and be
/// empty), then replays `dir` into a fresh engine.
pub fn replay_input(dir: &Path, data: &[u8]) -> Result<ReplayOutcome, JournalError> {
    if let Some((&control, rest)) = data.split_first() {
        let (first, second) = match split_at(control, rest) {
            Some(at) => (&rest[..at], Some(&rest[at..])),
            None => (rest, None),
        };
        let first_seq_1 = first_seq(first).unwrap_or(1);
        fs::write(segment_path(dir, first_seq_1), first).expect("write segment 1");
        if let Some(second) = second {
            let mut first_seq_2 = first_seq(second).unwrap_or(first_seq_1.wrapping_add(1));
            if first_seq_2 == first_seq_1 {
                first_seq_2 = first_seq_1.wrapping_add(1);
            }
            fs::write(segment_path(dir, first_seq_2), second).expect("write segment 2");
        }
    }

    let engine = engine();
    replay(dir, 0, TAIL_WINDOW_BYTES, |_seq, payload| {
        let event: Event = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
        engine.apply(&event).map_err(|e| e.to_string())
    })
}
