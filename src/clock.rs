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
    match rfc3339_text(at) {
        Some(text) => String::from_utf8(text.to_vec()).expect("digits and separators are ASCII"),
        None => format_rfc3339_slow(at),
    }
}

/// An instant that serializes as [`format_rfc3339`] writes it, the text
/// made on the stack instead of allocated.
#[derive(Clone, Copy, Debug)]
pub struct Rfc3339Ms(pub UnixMs);

impl Rfc3339Ms {
    /// Hands the text to `use_text`: from the stack for years 1970..=9999.
    pub fn with_text<R>(self, use_text: impl FnOnce(&str) -> R) -> R {
        match rfc3339_text(self.0) {
            Some(text) => {
                use_text(std::str::from_utf8(&text).expect("digits and separators are ASCII"))
            }
            None => use_text(&format_rfc3339_slow(self.0)),
        }
    }
}

impl serde::Serialize for Rfc3339Ms {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.with_text(|text| serializer.serialize_str(text))
    }
}

/// [`format_rfc3339`]'s text for years 1970..=9999, which every order
/// view writes two of: a direct path (days to civil date, digits into a
/// fixed buffer, no `fmt` machinery). `None` for anything else, which
/// goes through `time`.
fn rfc3339_text(at: UnixMs) -> Option<[u8; 24]> {
    const MS_PER_DAY: i64 = 86_400_000;
    const YEAR_10000_MS: i64 = 253_402_300_800_000;
    if !(0..YEAR_10000_MS).contains(&at) {
        return None;
    }
    let (days, ms_of_day) = (at / MS_PER_DAY, at % MS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let mut text = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, value: i64| {
        let mut value = value;
        for index in (at..at + width).rev() {
            text[index] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, ms_of_day / 3_600_000);
    put(14, 2, ms_of_day / 60_000 % 60);
    put(17, 2, ms_of_day / 1000 % 60);
    put(20, 3, ms_of_day % 1000);
    Some(text)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`), for `days >= 0`.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn format_rfc3339_slow(at: UnixMs) -> String {
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
#[path = "clock_tests.rs"]
mod tests;
