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

/// WeChat Pay's clock: Beijing time, UTC+8 all year (no daylight saving).
const BEIJING_OFFSET_SECONDS: i64 = 8 * 3600;

/// RFC 3339 in Beijing time to the second, as WeChat Pay writes times
/// (`time_expire`, `success_time`): `2026-11-24T20:00:00+08:00`.
pub fn format_beijing_rfc3339(at: UnixMs) -> String {
    let t = beijing(at);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}+08:00",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `yyyy-MM-dd HH:mm:ss` in Beijing time, the trade bill's time format.
pub fn format_beijing_bill_time(at: UnixMs) -> String {
    let t = beijing(at);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The Beijing calendar day of an instant, `YYYY-MM-DD` (a bill date).
pub fn beijing_date(at: UnixMs) -> String {
    let t = beijing(at);
    format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
}

/// The first millisecond of a Beijing calendar day given as `YYYY-MM-DD`;
/// the day runs to this plus 86,400,000.
pub fn beijing_day_start(date: &str) -> Option<UnixMs> {
    let text = format!("{date}T00:00:00+08:00");
    if date.len() != 10 {
        return None;
    }
    parse_rfc3339(&text)
}

/// The instant's wall clock in Beijing, truncated to the second (the
/// returned value's offset is nominally UTC; only its fields are read).
fn beijing(at: UnixMs) -> OffsetDateTime {
    let shifted = i128::from(at.div_euclid(1000) + BEIJING_OFFSET_SECONDS) * 1_000_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(shifted).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beijing_time_is_utc_plus_eight() {
        let at = parse_rfc3339("2026-11-24T16:30:05.900Z").unwrap();
        assert_eq!(format_beijing_rfc3339(at), "2026-11-25T00:30:05+08:00");
        assert_eq!(format_beijing_bill_time(at), "2026-11-25 00:30:05");
        assert_eq!(beijing_date(at), "2026-11-25");
        let start = beijing_day_start("2026-11-25").unwrap();
        assert_eq!(format_rfc3339(start), "2026-11-24T16:00:00.000Z");
        assert!(start <= at && at < start + 86_400_000);
        assert_eq!(beijing_day_start("2026-13-01"), None);
        assert_eq!(beijing_day_start("2026-1-1"), None);
        assert_eq!(parse_rfc3339(&format_beijing_rfc3339(at)), Some(at - 900));
    }

    #[test]
    fn rfc3339_round_trips_in_utc() {
        let at = parse_rfc3339("2026-11-24T20:00:00+08:00").unwrap();
        assert_eq!(format_rfc3339(at), "2026-11-24T12:00:00.000Z");
        assert_eq!(format_rfc3339(at + 250), "2026-11-24T12:00:00.250Z");
        assert_eq!(parse_rfc3339(&format_rfc3339(at + 7)), Some(at + 7));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
