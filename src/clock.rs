//! Time for the edges of the system. The domain core never reads a clock:
//! callers read [`now_ms`] once and pass the instant in.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Milliseconds since the Unix epoch, UTC.
pub type UnixMs = i64;

pub fn now_ms() -> UnixMs {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis())
        .unwrap_or(0);
    UnixMs::try_from(now).unwrap_or(UnixMs::MAX)
}

/// RFC 3339 UTC with millisecond precision: `2026-11-24T12:00:00.250Z`.
pub fn format_rfc3339(at: UnixMs) -> String {
    let nanos = i128::from(at) * 1_000_000;
    match OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        ),
        Err(_) => "1970-01-01T00:00:00.000Z".to_owned(),
    }
}

/// Parses RFC 3339 (any offset) into Unix milliseconds.
pub fn parse_rfc3339(text: &str) -> Option<UnixMs> {
    let time = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    UnixMs::try_from(time.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_in_utc() {
        let at = parse_rfc3339("2026-11-24T20:00:00+08:00").unwrap();
        assert_eq!(format_rfc3339(at), "2026-11-24T12:00:00.000Z");
        assert_eq!(format_rfc3339(at + 250), "2026-11-24T12:00:00.250Z");
        assert_eq!(parse_rfc3339(&format_rfc3339(at + 7)), Some(at + 7));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
