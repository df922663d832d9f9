//! The on-disk record: `[len: u32][crc32c: u32][seq: u64][payload: len bytes]`,
//! little-endian. The CRC32C covers the sequence number and the payload, so a
//! torn write, a zeroed sector or a flipped bit all fail the check.

pub const HEADER_BYTES: usize = 16;
/// Largest payload accepted; a longer length field is damage, not a record.
pub const PAYLOAD_BYTES_MAX: usize = 1 << 20;

/// Appends one encoded record to `out`.
pub fn encode(seq: u64, payload: &[u8], out: &mut Vec<u8>) {
    assert!(
        payload.len() <= PAYLOAD_BYTES_MAX,
        "journal payload too large"
    );
    let seq_bytes = seq.to_le_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c(&seq_bytes), payload);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&seq_bytes);
    out.extend_from_slice(payload);
}

#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole, intact record and the bytes it took.
    Record {
        seq: u64,
        payload: &'a [u8],
        bytes: usize,
    },
    /// The buffer ends inside a record (or is empty).
    Incomplete,
    /// The bytes here are not a record.
    Corrupt(&'static str),
}

/// Decodes the record at the start of `buf`.
pub fn decode(buf: &[u8]) -> Decoded<'_> {
    if buf.len() < HEADER_BYTES {
        return Decoded::Incomplete;
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if len > PAYLOAD_BYTES_MAX {
        return Decoded::Corrupt("length field out of range");
    }
    let end = HEADER_BYTES + len;
    if buf.len() < end {
        return Decoded::Incomplete;
    }
    let seq_bytes = &buf[8..16];
    let payload = &buf[HEADER_BYTES..end];
    if crc32c::crc32c_append(crc32c::crc32c(seq_bytes), payload) != crc {
        return Decoded::Corrupt("checksum mismatch");
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(seq_bytes);
    Decoded::Record {
        seq: u64::from_le_bytes(seq),
        payload,
        bytes: end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_damage_is_detected() {
        let mut buf = Vec::new();
        encode(7, b"hello", &mut buf);
        encode(8, b"", &mut buf);
        let Decoded::Record {
            seq,
            payload,
            bytes,
        } = decode(&buf)
        else {
            panic!()
        };
        assert_eq!((seq, payload, bytes), (7, &b"hello"[..], HEADER_BYTES + 5));
        assert!(matches!(
            decode(&buf[bytes..]),
            Decoded::Record { seq: 8, .. }
        ));
        assert_eq!(decode(&buf[..bytes - 1]), Decoded::Incomplete);
        let mut flipped = buf.clone();
        flipped[HEADER_BYTES + 1] ^= 1;
        assert_eq!(decode(&flipped), Decoded::Corrupt("checksum mismatch"));
        let mut reseq = buf.clone();
        reseq[8] = 9;
        assert_eq!(decode(&reseq), Decoded::Corrupt("checksum mismatch"));
        assert_eq!(
            decode(&[0xff; 32]),
            Decoded::Corrupt("length field out of range")
        );
    }
}
