use super::*;

#[test]
fn the_retry_schedule_is_scaled_and_ends_after_fifteen_retries() {
    let real = Timing { time_scale: 1.0 };
    let total: u64 = RETRY_SCHEDULE_SECONDS.iter().sum();
    assert_eq!(total, 24 * 3600 + 4 * 60, "24 h 4 min as documented");
    assert_eq!(real.retry_delay(1), Some(Duration::from_secs(15)));
    assert_eq!(real.retry_delay(15), Some(Duration::from_secs(21600)));
    assert_eq!(real.retry_delay(16), None);
    assert_eq!(real.retry_delay(0), None);
    assert_eq!(real.answer_timeout(), Duration::from_secs(5));
    let fast = Timing { time_scale: 0.001 };
    assert_eq!(fast.retry_delay(4), Some(Duration::from_millis(180)));
    assert_eq!(
        fast.answer_timeout(),
        Duration::from_secs(1),
        "at least 1 s"
    );
}

#[test]
fn an_envelope_decrypts_and_its_tampered_copy_differs_only_in_the_summary() {
    let key = ApiV3Key::new(b"a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb").unwrap();
    let event = Event {
        event_type: "TRANSACTION.SUCCESS",
        summary: "支付成功",
        original_type: "transaction",
        resource_json: br#"{"out_trade_no":"FG1"}"#,
        out_trade_no: "FG1",
        out_refund_no: None,
        notify_url: "http://127.0.0.1:1/notify",
    };
    let notification = Notification::compose(&key, &event, vec![DeliveryKind::Probe], 0).unwrap();
    let envelope: NotificationEnvelope = serde_json::from_slice(&notification.body).unwrap();
    assert_eq!(envelope.id, notification.event_id);
    assert_eq!(envelope.create_time, "1970-01-01T08:00:00+08:00");
    assert_eq!(
        (envelope.resource_type.as_str(), envelope.summary.as_str()),
        ("encrypt-resource", "支付成功")
    );
    let resource = &envelope.resource;
    assert_eq!(
        (resource.nonce.len(), resource.associated_data.as_str()),
        (12, "transaction")
    );
    let plaintext = key
        .decrypt(
            &resource.nonce,
            &resource.associated_data,
            &resource.ciphertext,
        )
        .unwrap();
    assert_eq!(plaintext, event.resource_json);
    let tampered: NotificationEnvelope =
        serde_json::from_slice(&notification.tampered_body).unwrap();
    assert_ne!(tampered.summary, envelope.summary);
    assert_eq!(tampered.resource, envelope.resource);
    assert_eq!(notification.kind_of_attempt(1), DeliveryKind::Probe);
    assert_eq!(notification.kind_of_attempt(2), DeliveryKind::Normal);
}

#[test]
fn only_a_2xx_to_a_bad_signature_is_a_merchant_failure() {
    let key = ApiV3Key::new(&[7u8; 32]).unwrap();
    let event = Event {
        event_type: "REFUND.SUCCESS",
        summary: "退款成功",
        original_type: "refund",
        resource_json: b"{}",
        out_trade_no: "FG1",
        out_refund_no: Some("R1"),
        notify_url: "http://127.0.0.1:1/notify",
    };
    let notification = Notification::compose(&key, &event, Vec::new(), 0).unwrap();
    let ok = DeliveryOutcome::Answered { status: 204 };
    let refused = DeliveryOutcome::Answered { status: 401 };
    assert!(
        notification
            .delivery(1, DeliveryKind::Probe, ok.clone(), 0)
            .accepted_bad_signature
    );
    assert!(
        !notification
            .delivery(1, DeliveryKind::Probe, refused, 0)
            .accepted_bad_signature
    );
    assert!(
        !notification
            .delivery(1, DeliveryKind::Normal, ok, 0)
            .accepted_bad_signature
    );
    let json = serde_json::to_value(notification.delivery(
        2,
        DeliveryKind::Tampered,
        DeliveryOutcome::Timeout,
        5,
    ))
    .unwrap();
    assert_eq!(json["kind"], "tampered");
    assert_eq!(json["outcome"]["result"], "timeout");
    assert_eq!(json["out_refund_no"], "R1");
}
