//! Arbitrary bytes walked record by record with `journal::record::decode`,
//! as replay walks a segment: advance by `bytes` on a record, stop on
//! `Incomplete` or `Corrupt`. Must never panic and must terminate.
//!
//! Oracles beyond "no panic": a decoded record lies inside the buffer, is at
//! least a header long, and re-encodes to exactly the bytes it was read from.

#![no_main]

use flashgate::journal::record::{decode, encode, Decoded, HEADER_BYTES, PAYLOAD_BYTES_MAX};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut offset = 0usize;
    let mut reencoded = Vec::new();
    loop {
        let rest = &data[offset..];
        match decode(rest) {
            Decoded::Record {
                seq,
                payload,
                bytes,
            } => {
                assert!(bytes >= HEADER_BYTES, "a record shorter than its header");
                assert!(bytes <= rest.len(), "a record past the end of the buffer");
                assert_eq!(bytes, HEADER_BYTES + payload.len());
                assert!(payload.len() <= PAYLOAD_BYTES_MAX);
                reencoded.clear();
                encode(seq, payload, &mut reencoded);
                assert_eq!(&reencoded[..], &rest[..bytes], "decode/encode round trip");
                offset += bytes;
            }
            Decoded::Incomplete | Decoded::Corrupt(_) => break,
        }
    }
});
