//! Who the gateway is at WeChat Pay: the merchant credentials of `[pay]`,
//! or, when there are none, an embedded WeChat Pay simulator with freshly
//! generated keys so `flashgate serve` works on a fresh machine.

use crate::config::PayConfig;
use crate::pay::client::MerchantConfig;
use crate::pay::crypto::{random_alphanumeric, RsaSigner};
use crate::pay::sim::{Faults, SimConfig, SimHandle, Simulator};
use std::net::SocketAddr;
use std::path::Path;

/// The `User-Agent` of every call to WeChat Pay (it refuses calls without).
pub fn user_agent() -> String {
    format!(
        "flashgate/{} ({})",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS
    )
}

/// The client's configuration from `[pay]`, reading the key files.
pub fn merchant_config(pay: &PayConfig) -> Result<MerchantConfig, String> {
    let read = |key: &str, path: &Path| {
        std::fs::read_to_string(path).map_err(|error| {
            format!(
                "config key `{key}`: cannot read {}: {error}",
                path.display()
            )
        })
    };
    Ok(MerchantConfig {
        mchid: pay.mchid.clone(),
        appid: pay.appid.clone(),
        merchant_serial_no: pay.merchant_serial_no.clone(),
        merchant_private_key_pem: read(
            "pay.merchant_private_key_file",
            &pay.merchant_private_key_file,
        )?,
        apiv3_key: pay.apiv3_key.clone(),
        wechatpay_public_key_id: pay.wechatpay_public_key_id.clone(),
        wechatpay_public_key_pem: read(
            "pay.wechatpay_public_key_file",
            &pay.wechatpay_public_key_file,
        )?,
        base_url: pay.base_url.clone(),
        backup_base_url: Some(pay.backup_base_url.clone()).filter(|url| !url.is_empty()),
        notify_url: pay.notify_url.clone(),
        timeout_ms: pay.timeout_ms,
        attempts_max: pay.attempts_max,
        requests_per_second_max: pay.requests_per_second_max,
        user_agent: user_agent(),
    })
}

/// The embedded simulator and the merchant identity the gateway uses with
/// it. The keys are made fresh on every start and live only in memory.
pub struct Embedded {
    pub simulator: SimHandle,
    pub merchant: MerchantConfig,
    /// `[pay]` as the payment flow sees it (merchant ids and notify URL
    /// filled in).
    pub pay: PayConfig,
}

/// Starts the simulator on `pay.simulator_listen`, notifying the gateway at
/// `gateway_addr`.
pub async fn start_embedded(pay: &PayConfig, gateway_addr: SocketAddr) -> Result<Embedded, String> {
    let listen: SocketAddr = pay
        .simulator_listen
        .parse()
        .map_err(|_| "config key `pay.simulator_listen`: not an address".to_owned())?;
    let merchant_key = RsaSigner::generate().map_err(|error| error.to_string())?;
    let platform_key = RsaSigner::generate().map_err(|error| error.to_string())?;
    let mut effective = pay.clone();
    effective.mchid = "1900000109".into();
    effective.appid = "wxd678efh567hg6787".into();
    effective.merchant_serial_no = random_hex_upper(40);
    effective.apiv3_key = random_alphanumeric(32);
    effective.wechatpay_public_key_id = format!("PUB_KEY_ID_{}", random_digits(34));
    effective.notify_url = format!("http://{gateway_addr}/v1/payments/wechat/notify");
    let simulator = Simulator::start(SimConfig {
        listen,
        mchid: effective.mchid.clone(),
        appid: effective.appid.clone(),
        apiv3_key: effective.apiv3_key.clone(),
        merchant_serial_no: effective.merchant_serial_no.clone(),
        merchant_public_key_pem: merchant_key.public_key_pem().map_err(|e| e.to_string())?,
        platform_signer: platform_key,
        public_key_id: effective.wechatpay_public_key_id.clone(),
        time_scale: 1.0,
        faults: Faults::default(),
    })
    .await
    .map_err(|error| format!("embedded WeChat Pay simulator: {error}"))?;
    effective.base_url = simulator.base_url();
    effective.backup_base_url = String::new();
    let merchant = MerchantConfig {
        mchid: effective.mchid.clone(),
        appid: effective.appid.clone(),
        merchant_serial_no: effective.merchant_serial_no.clone(),
        merchant_private_key_pem: merchant_key.private_key_pem().map_err(|e| e.to_string())?,
        apiv3_key: effective.apiv3_key.clone(),
        wechatpay_public_key_id: effective.wechatpay_public_key_id.clone(),
        wechatpay_public_key_pem: simulator.public_key_pem(),
        base_url: effective.base_url.clone(),
        backup_base_url: None,
        notify_url: effective.notify_url.clone(),
        timeout_ms: pay.timeout_ms,
        attempts_max: pay.attempts_max,
        requests_per_second_max: pay.requests_per_second_max,
        user_agent: user_agent(),
    };
    Ok(Embedded {
        simulator,
        merchant,
        pay: effective,
    })
}

fn random_digits(len: usize) -> String {
    random_alphanumeric(len * 4)
        .bytes()
        .filter(u8::is_ascii_digit)
        .chain(std::iter::repeat(b'0'))
        .take(len)
        .map(char::from)
        .collect()
}

fn random_hex_upper(len: usize) -> String {
    random_alphanumeric(len * 4)
        .bytes()
        .filter(|byte| byte.is_ascii_digit() || (b'A'..=b'F').contains(byte))
        .chain(std::iter::repeat(b'0'))
        .take(len)
        .map(char::from)
        .collect()
}
