use super::*;

fn fail(endpoint: &str, count: u32, status: u16, code: &str) -> FailNext {
    FailNext {
        endpoint: endpoint.into(),
        count,
        status,
        code: code.into(),
        message: None,
    }
}

#[test]
fn fail_next_is_consumed_per_endpoint_then_calls_succeed() {
    let mut faults = Faults {
        fail_next: vec![
            fail("prepay", 2, 500, "SYSTEM_ERROR"),
            fail("query", 1, 429, "FREQUENCY_LIMITED"),
        ],
        ..Faults::default()
    };
    assert_eq!(faults.decide_api_failure("close"), None);
    assert_eq!(faults.decide_api_failure("prepay").unwrap().status, 500);
    assert_eq!(
        faults.decide_api_failure("query").unwrap().code,
        "FREQUENCY_LIMITED"
    );
    assert_eq!(faults.decide_api_failure("query"), None);
    assert!(faults.decide_api_failure("prepay").is_some());
    assert_eq!(faults.decide_api_failure("prepay"), None);
    assert!(faults.fail_next.is_empty());
}

#[test]
fn rates_of_one_always_fire_and_tampering_counts_down() {
    let mut faults = Faults {
        frequency_limited_rate: 1.0,
        tamper_next_notifications: 1,
        ..Faults::default()
    };
    for _ in 0..10 {
        assert_eq!(faults.decide_api_failure("refund").unwrap().status, 429);
    }
    assert!(faults.take_tamper());
    assert!(!faults.take_tamper());
    assert!(!happens(0.0));
}

#[test]
fn validation_names_the_bad_field_and_json_defaults_everything() {
    let parsed: Faults =
            serde_json::from_str(r#"{"probe_rate":0.5,"fail_next":[{"endpoint":"refund","status":500,"code":"SYSTEM_ERROR"}]}"#)
                .unwrap();
    assert_eq!(parsed.fail_next[0].count, 1);
    assert_eq!(parsed.latency_ms, 0);
    assert!(parsed.validate().is_ok());
    let bad_rate = Faults {
        system_error_rate: 1.5,
        ..Faults::default()
    };
    assert!(bad_rate
        .validate()
        .unwrap_err()
        .contains("system_error_rate"));
    let bad_endpoint = Faults {
        fail_next: vec![fail("pay", 1, 500, "SYSTEM_ERROR")],
        ..Faults::default()
    };
    assert!(bad_endpoint.validate().unwrap_err().contains("\"pay\""));
    let nan = Faults {
        probe_rate: f64::NAN,
        ..Faults::default()
    };
    assert!(nan.validate().is_err());
}
