use super::*;

#[test]
fn the_direct_format_matches_the_time_crate() {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..100_000 {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let at = (state >> 1) as i64 % 253_402_300_800_000;
        assert_eq!(format_rfc3339(at), format_rfc3339_slow(at), "{at}");
    }
    for day in 0..3_000i64 {
        for at in [day * 86_400_000, day * 86_400_000 + 86_399_999] {
            assert_eq!(format_rfc3339(at), format_rfc3339_slow(at), "{at}");
        }
    }
    for at in [
        951_782_400_000,     // 2000-02-29
        4_107_542_399_999,   // 2100-02-28T23:59:59.999
        253_402_300_799_999, // 9999-12-31T23:59:59.999
        -1,
        253_402_300_800_000,
    ] {
        assert_eq!(format_rfc3339(at), format_rfc3339_slow(at), "{at}");
    }
}

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

#[test]
fn an_instant_serializes_as_format_rfc3339_writes_it() {
    for at in [
        0,
        1_764_000_000_250,
        951_782_400_000,
        253_402_300_799_999,
        -1,
        253_402_300_800_000,
    ] {
        let json = serde_json::to_string(&Rfc3339Ms(at)).unwrap();
        assert_eq!(json, format!("\"{}\"", format_rfc3339(at)), "{at}");
    }
}
