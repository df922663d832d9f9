//! Arbitrary headers and body through `NotificationVerifier::parse` with a
//! fixed key set (see `notification_input.rs`, shared with
//! `examples/notification_seed.rs`).
//!
//! Every input must end in a notification or a `NotifyError`; a panic, a
//! hang or an abort is a bug. Beyond that: an accepted notification names
//! the configured merchant, since `parse` promises to refuse any other.

#![no_main]

mod notification_input;

use flashgate::pay::notify::Notification;
use libfuzzer_sys::fuzz_target;
use notification_input::{run, APPID, MCHID};

fuzz_target!(|data: &[u8]| {
    match run(data) {
        Some(Ok(Notification::Payment(transaction))) => {
            assert_eq!(transaction.mchid, MCHID);
            assert_eq!(transaction.appid, APPID);
        }
        Some(Ok(Notification::Refund(refund))) => assert_eq!(refund.mchid, MCHID),
        Some(Err(_)) | None => {}
    }
});
