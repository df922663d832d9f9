//! Configuration: one typed struct with defaults and validation.
//!
//! Sources, later ones winning: the built-in defaults, the TOML file given by
//! `--config`, then environment variables `FLASHGATE__<SECTION>__<KEY>`.
//! An environment value takes the type of the key it overrides (a list key
//! takes a comma list). Every key is documented in `config/flashgate.toml`.
//! A bad value stops start-up with an error that names the key.

use crate::journal::Durability;
use crate::sched::ThreadPolicy;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub const ENV_PREFIX: &str = "FLASHGATE__";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub auth: AuthConfig,
    pub inventory: InventoryConfig,
    pub sale: SaleConfig,
    pub storage: StorageConfig,
    pub pay: PayConfig,
    pub cluster: ClusterConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: String,
    pub requests_in_flight_max: usize,
    pub connections_max: usize,
    pub body_bytes_max: usize,
    pub retry_after_seconds: u32,
    pub shutdown_grace_seconds: u64,
    pub header_read_timeout_seconds: u64,
    pub sse_streams_max: usize,
    pub workers: usize,
    pub http_thread_policy: ThreadPolicy,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub session_secret: String,
    pub admin_tokens: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InventoryConfig {
    pub shards: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SaleConfig {
    pub sales_max: usize,
    pub items_per_sale_max: usize,
    pub stock_per_item_max: i64,
    pub orders_max: u64,
    pub hold_tick_ms: u64,
    pub hold_seconds_min: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    pub data_dir: PathBuf,
    pub durability: Durability,
    pub journal_segment_bytes_max: u64,
    pub journal_preallocate: bool,
    pub commit_batch_bytes_max: usize,
    pub commit_gather_us: u64,
    pub commit_gather_min_records: usize,
    pub journal_writer_policy: ThreadPolicy,
    pub postgres_url: String,
    pub store_batch_records_max: usize,
    pub snapshot_every_records: u64,
    pub store_lag_seconds_max: u64,
    pub store_defer_seconds: u64,
    pub store_defer_records_max: u64,
}

/// WeChat Pay (API v3, JSAPI / Mini Program payment). An empty `mchid`
/// means no merchant credentials: `serve` then runs the WeChat Pay
/// simulator in-process with freshly generated keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PayConfig {
    pub mchid: String,
    pub appid: String,
    pub merchant_serial_no: String,
    pub merchant_private_key_file: PathBuf,
    pub apiv3_key: String,
    pub wechatpay_public_key_id: String,
    pub wechatpay_public_key_file: PathBuf,
    pub base_url: String,
    pub backup_base_url: String,
    pub notify_url: String,
    pub timeout_ms: u64,
    pub attempts_max: u32,
    pub requests_per_second_max: u32,
    pub paying_query_after_seconds: u64,
    pub reconcile_interval_seconds: u64,
    pub simulator_listen: String,
}

/// Several nodes selling one sale through Redis stock leases
/// (`src/cluster/`). An empty `redis_url` runs the node alone, as before.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// One `redis://` URL; with `redis_mode = "cluster"`, one or more seed
    /// nodes of a Redis Cluster, comma-separated.
    pub redis_url: String,
    /// Whether `redis_url` names one Redis or a Redis Cluster.
    pub redis_mode: RedisMode,
    pub node_id: String,
    pub key_prefix: String,
    /// The most units one lease takes from the global stock.
    pub lease_block_units: i64,
    /// A refill is asked for once an item's local remaining falls below this.
    pub lease_low_watermark_units: i64,
    /// How long an order that finds the local lease empty waits for the
    /// refill in flight before it is answered 503.
    pub refill_wait_ms: u64,
    /// How often the node reads the sale registry and states from Redis.
    pub poll_interval_ms: u64,
    /// Connect and call time limit of one Redis call.
    pub redis_timeout_ms: u64,
    /// What an order does when Redis cannot check the buyer's limit.
    pub limits_without_redis: LimitsWithoutRedis,
}

/// What `cluster.redis_url` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisMode {
    /// One Redis (or a proxy in front of one): one `redis://` URL.
    #[default]
    Single,
    /// A Redis Cluster: one or more seed nodes, comma-separated `redis://`
    /// URLs; the client learns the other nodes and the slots from them.
    Cluster,
}

/// How a cluster node checks a buyer's per-user limit while Redis, which
/// holds every buyer's count across the nodes, does not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitsWithoutRedis {
    /// Against what the buyer holds on this node only, and the units are
    /// added to the buyer's count in Redis once it answers: the node keeps
    /// selling its lease, and a buyer who reaches several nodes during the
    /// outage may get up to the limit on each.
    Local,
    /// 503 `OVERLOADED`: the limit stays exact and the node sells nothing
    /// until Redis answers.
    Refuse,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub level: String,
}

/// The development credentials of the defaults; start-up warns when in use.
pub const DEV_SESSION_SECRET: &str = "flashgate-dev-session-secret-change-me";

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            requests_in_flight_max: 4096,
            connections_max: 16384,
            body_bytes_max: 16 * 1024,
            retry_after_seconds: 1,
            shutdown_grace_seconds: 10,
            header_read_timeout_seconds: 30,
            sse_streams_max: 1024,
            workers: 0,
            http_thread_policy: ThreadPolicy::Batch,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            session_secret: DEV_SESSION_SECRET.into(),
            admin_tokens: vec![
                "admin:dev-admin-token".into(),
                "host:dev-host-token".into(),
                "ops:dev-ops-token".into(),
            ],
        }
    }
}

impl Default for InventoryConfig {
    fn default() -> Self {
        InventoryConfig { shards: 16 }
    }
}

impl Default for SaleConfig {
    fn default() -> Self {
        SaleConfig {
            sales_max: 1024,
            items_per_sale_max: 100,
            stock_per_item_max: 10_000_000,
            orders_max: 50_000_000,
            hold_tick_ms: 200,
            hold_seconds_min: 60,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::from("data"),
            durability: Durability::Fsync,
            journal_segment_bytes_max: 64 * 1024 * 1024,
            journal_preallocate: true,
            commit_batch_bytes_max: 1024 * 1024,
            commit_gather_us: 0,
            commit_gather_min_records: 8,
            journal_writer_policy: ThreadPolicy::Batch,
            postgres_url: String::new(),
            store_batch_records_max: 1000,
            snapshot_every_records: 1_000_000,
            store_lag_seconds_max: 60,
            store_defer_seconds: 10,
            store_defer_records_max: 1_000_000,
        }
    }
}

impl Default for PayConfig {
    fn default() -> Self {
        PayConfig {
            mchid: String::new(),
            appid: String::new(),
            merchant_serial_no: String::new(),
            merchant_private_key_file: PathBuf::new(),
            apiv3_key: String::new(),
            wechatpay_public_key_id: String::new(),
            wechatpay_public_key_file: PathBuf::new(),
            base_url: "https://api.mch.weixin.qq.com".into(),
            backup_base_url: "https://api2.mch.weixin.qq.com".into(),
            notify_url: String::new(),
            timeout_ms: 5000,
            attempts_max: 3,
            requests_per_second_max: 400,
            paying_query_after_seconds: 60,
            reconcile_interval_seconds: 10,
            simulator_listen: "127.0.0.1:8090".into(),
        }
    }
}

impl PayConfig {
    /// True when merchant credentials are configured (real WeChat Pay or an
    /// external simulator); false runs the embedded simulator.
    pub fn has_merchant(&self) -> bool {
        !self.mchid.is_empty()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if !(100..=60_000).contains(&self.timeout_ms) {
            return Err(key_error("pay.timeout_ms", "must be within 100..=60000"));
        }
        if !(1..=10).contains(&self.attempts_max) {
            return Err(key_error("pay.attempts_max", "must be within 1..=10"));
        }
        if !(1..=10_000).contains(&self.requests_per_second_max) {
            let message = "must be within 1..=10000";
            return Err(key_error("pay.requests_per_second_max", message));
        }
        if !(1..=86_400).contains(&self.paying_query_after_seconds) {
            let message = "must be within 1..=86400";
            return Err(key_error("pay.paying_query_after_seconds", message));
        }
        if !(1..=3600).contains(&self.reconcile_interval_seconds) {
            let message = "must be within 1..=3600";
            return Err(key_error("pay.reconcile_interval_seconds", message));
        }
        if self.simulator_listen.parse::<SocketAddr>().is_err() {
            let message = "expected an address like 127.0.0.1:8090";
            return Err(key_error("pay.simulator_listen", message));
        }
        if !self.has_merchant() {
            return Ok(());
        }
        let required = [
            ("pay.appid", self.appid.is_empty()),
            ("pay.merchant_serial_no", self.merchant_serial_no.is_empty()),
            (
                "pay.merchant_private_key_file",
                self.merchant_private_key_file.as_os_str().is_empty(),
            ),
            (
                "pay.wechatpay_public_key_file",
                self.wechatpay_public_key_file.as_os_str().is_empty(),
            ),
        ];
        for (key, missing) in required {
            if missing {
                return Err(key_error(key, "is required when pay.mchid is set"));
            }
        }
        if self.apiv3_key.len() != 32 {
            let message =
                "must be the 32-byte APIv3 key (set it through FLASHGATE__PAY__APIV3_KEY)";
            return Err(key_error("pay.apiv3_key", message));
        }
        if !self.wechatpay_public_key_id.starts_with("PUB_KEY_ID_") {
            let message = "must be the WeChat Pay public key id, PUB_KEY_ID_...";
            return Err(key_error("pay.wechatpay_public_key_id", message));
        }
        for (key, url) in [
            ("pay.base_url", &self.base_url),
            ("pay.backup_base_url", &self.backup_base_url),
        ] {
            let empty_backup = key == "pay.backup_base_url" && url.is_empty();
            if !(empty_backup || url.starts_with("https://") || url.starts_with("http://")) {
                return Err(key_error(key, "must be an http:// or https:// URL"));
            }
        }
        let notify = &self.notify_url;
        if !(notify.starts_with("https://") || notify.starts_with("http://"))
            || notify.contains('?')
        {
            let message = "must be an absolute http(s) URL without a query string \
                           ending in /v1/payments/wechat/notify";
            return Err(key_error("pay.notify_url", message));
        }
        Ok(())
    }
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            redis_url: String::new(),
            redis_mode: RedisMode::Single,
            node_id: String::new(),
            key_prefix: "flashgate".into(),
            lease_block_units: 100,
            lease_low_watermark_units: 20,
            refill_wait_ms: 50,
            poll_interval_ms: 100,
            redis_timeout_ms: 1000,
            limits_without_redis: LimitsWithoutRedis::Local,
        }
    }
}

impl ClusterConfig {
    /// True when `[cluster]` names a Redis: the node sells leased stock.
    pub fn enabled(&self) -> bool {
        !self.redis_url.is_empty()
    }

    /// The URLs of `redis_url`: the one Redis, or a Redis Cluster's seeds.
    pub fn redis_urls(&self) -> Vec<&str> {
        self.redis_url
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .collect()
    }

    fn validate_redis_url(&self) -> Result<(), ConfigError> {
        let urls = self.redis_urls();
        let is_url = |url: &&str| url.starts_with("redis://") || url.starts_with("rediss://");
        match self.redis_mode {
            RedisMode::Single if urls.len() != 1 || self.redis_url.contains(',') => Err(key_error(
                "cluster.redis_url",
                "must be empty or one redis:// URL (several seed nodes, comma-separated, \
                 need cluster.redis_mode = \"cluster\")",
            )),
            RedisMode::Cluster if urls.is_empty() => Err(key_error(
                "cluster.redis_url",
                "must name one or more seed nodes of the Redis Cluster: redis:// URLs, \
                 comma-separated",
            )),
            _ => match urls.iter().find(|url| !is_url(url)) {
                Some(bad) => Err(key_error(
                    "cluster.redis_url",
                    format!("`{bad}` is not a redis:// URL"),
                )),
                None => Ok(()),
            },
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let prefix_ok = (1..=64).contains(&self.key_prefix.len())
            && self
                .key_prefix
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b':'));
        if !prefix_ok {
            let message = "must be 1-64 characters of [A-Za-z0-9_:-]";
            return Err(key_error("cluster.key_prefix", message));
        }
        if !(1..=1_000_000).contains(&self.lease_block_units) {
            let message = "must be within 1..=1000000";
            return Err(key_error("cluster.lease_block_units", message));
        }
        if !(0..self.lease_block_units).contains(&self.lease_low_watermark_units) {
            let message = "must be within 0..cluster.lease_block_units";
            return Err(key_error("cluster.lease_low_watermark_units", message));
        }
        if !(1..=5000).contains(&self.refill_wait_ms) {
            return Err(key_error(
                "cluster.refill_wait_ms",
                "must be within 1..=5000",
            ));
        }
        if !(10..=10_000).contains(&self.poll_interval_ms) {
            let message = "must be within 10..=10000";
            return Err(key_error("cluster.poll_interval_ms", message));
        }
        if !(10..=60_000).contains(&self.redis_timeout_ms) {
            let message = "must be within 10..=60000";
            return Err(key_error("cluster.redis_timeout_ms", message));
        }
        if !self.enabled() {
            if !self.node_id.is_empty() {
                let message = "is set but cluster.redis_url is empty (a node alone has no id)";
                return Err(key_error("cluster.node_id", message));
            }
            if self.redis_mode == RedisMode::Cluster {
                let message = "is \"cluster\" but cluster.redis_url is empty (name the seed nodes)";
                return Err(key_error("cluster.redis_mode", message));
            }
            return Ok(());
        }
        self.validate_redis_url()?;
        if !crate::ids::is_valid_host_id(&self.node_id) {
            let message = "is required with cluster.redis_url: 1-32 characters of [A-Za-z0-9_-]";
            return Err(key_error("cluster.node_id", message));
        }
        Ok(())
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("config key `{key}`: {message}")]
    Key { key: String, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
}

fn key_error(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Key {
        key: key.into(),
        message: message.into(),
    }
}

impl Config {
    /// Defaults, then `path` if given, then the process environment.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load_from(path, std::env::vars())
    }

    pub fn load_from(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut merged = toml::Value::try_from(Config::default())
            .map_err(|error| key_error("(defaults)", error.to_string()))?;
        if let Some(path) = path {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            let file: toml::Value = toml::from_str(&text).map_err(|error| ConfigError::Syntax {
                path: path.to_owned(),
                message: error.message().to_owned(),
            })?;
            merge_file(&mut merged, file, "")?;
        }
        for (var, value) in env {
            if let Some(rest) = var.strip_prefix(ENV_PREFIX) {
                apply_env(&mut merged, &var, rest, &value)?;
            }
        }
        let config: Config = serde_path_to_error::deserialize(merged)
            .map_err(|error| key_error(&error.path().to_string(), error.inner().to_string()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn listen_addr(&self) -> SocketAddr {
        // validate() has parsed it already.
        self.server.listen.parse().expect("server.listen validated")
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.server.listen.parse::<SocketAddr>().is_err() {
            return Err(key_error(
                "server.listen",
                "expected an address like 127.0.0.1:8080",
            ));
        }
        positive(
            "server.requests_in_flight_max",
            self.server.requests_in_flight_max,
        )?;
        positive("server.connections_max", self.server.connections_max)?;
        positive("server.sse_streams_max", self.server.sse_streams_max)?;
        if !(1024..=1024 * 1024).contains(&self.server.body_bytes_max) {
            return Err(key_error(
                "server.body_bytes_max",
                "must be within 1024..=1048576",
            ));
        }
        if !(1..=3600).contains(&self.server.retry_after_seconds) {
            return Err(key_error(
                "server.retry_after_seconds",
                "must be within 1..=3600",
            ));
        }
        if !(1..=3600).contains(&self.server.header_read_timeout_seconds) {
            return Err(key_error(
                "server.header_read_timeout_seconds",
                "must be within 1..=3600",
            ));
        }
        if self.auth.session_secret.len() < 32 {
            return Err(key_error(
                "auth.session_secret",
                "must be at least 32 bytes",
            ));
        }
        crate::http::auth::AdminTokens::parse(&self.auth.admin_tokens)
            .map_err(|message| key_error("auth.admin_tokens", message))?;
        if !(1..=256).contains(&self.inventory.shards) {
            return Err(key_error("inventory.shards", "must be within 1..=256"));
        }
        positive("sale.sales_max", self.sale.sales_max)?;
        positive("sale.items_per_sale_max", self.sale.items_per_sale_max)?;
        if self.sale.stock_per_item_max < 1 {
            return Err(key_error("sale.stock_per_item_max", "must be at least 1"));
        }
        if self.sale.orders_max < 1 {
            return Err(key_error("sale.orders_max", "must be at least 1"));
        }
        if !(1..=3600).contains(&self.sale.hold_seconds_min) {
            return Err(key_error(
                "sale.hold_seconds_min",
                "must be within 1..=3600",
            ));
        }
        if !(10..=5000).contains(&self.sale.hold_tick_ms) {
            return Err(key_error("sale.hold_tick_ms", "must be within 10..=5000"));
        }
        if self.storage.data_dir.as_os_str().is_empty() {
            return Err(key_error("storage.data_dir", "must not be empty"));
        }
        if !(64 * 1024..=1 << 40).contains(&self.storage.journal_segment_bytes_max) {
            let message = "must be within 65536..=1099511627776";
            return Err(key_error("storage.journal_segment_bytes_max", message));
        }
        let url = &self.storage.postgres_url;
        if !(url.is_empty() || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            let message = "must be empty (SQLite in the data dir) or a postgres:// URL";
            return Err(key_error("storage.postgres_url", message));
        }
        if !(1..=100_000).contains(&self.storage.store_batch_records_max) {
            return Err(key_error(
                "storage.store_batch_records_max",
                "must be within 1..=100000",
            ));
        }
        if self.storage.snapshot_every_records < 1 {
            return Err(key_error(
                "storage.snapshot_every_records",
                "must be at least 1",
            ));
        }
        if self.storage.store_lag_seconds_max < 1 {
            return Err(key_error(
                "storage.store_lag_seconds_max",
                "must be at least 1",
            ));
        }
        if self.storage.store_defer_seconds >= self.storage.store_lag_seconds_max {
            return Err(key_error(
                "storage.store_defer_seconds",
                "must be below storage.store_lag_seconds_max, or /readyz would fail in every burst",
            ));
        }
        if !(64 * 1024..=256 * 1024 * 1024).contains(&self.storage.commit_batch_bytes_max) {
            let message = "must be within 65536..=268435456";
            return Err(key_error("storage.commit_batch_bytes_max", message));
        }
        if self.storage.commit_gather_us > 10_000 {
            let message = "must be at most 10000 (10 ms): every busy commit waits this long";
            return Err(key_error("storage.commit_gather_us", message));
        }
        self.pay.validate()?;
        self.cluster.validate()?;
        self.log
            .level
            .parse::<tracing_subscriber::filter::Targets>()
            .map_err(|error| key_error("log.level", error.to_string()))?;
        Ok(())
    }

    /// True while the built-in development credentials are in use.
    pub fn uses_dev_credentials(&self) -> bool {
        let defaults = AuthConfig::default();
        self.auth.session_secret == DEV_SESSION_SECRET
            || self
                .auth
                .admin_tokens
                .iter()
                .any(|token| defaults.admin_tokens.contains(token))
    }
}

fn positive(key: &str, value: usize) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(key_error(key, "must be at least 1"));
    }
    Ok(())
}

/// Overlays a parsed file on the defaults, refusing keys the defaults lack.
fn merge_file(
    base: &mut toml::Value,
    overlay: toml::Value,
    prefix: &str,
) -> Result<(), ConfigError> {
    let (toml::Value::Table(base), toml::Value::Table(overlay)) = (base, overlay) else {
        return Err(key_error(prefix, "expected a table"));
    };
    for (key, value) in overlay {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match base.get_mut(&key) {
            None => return Err(key_error(&path, "unknown key")),
            Some(slot @ toml::Value::Table(_)) => merge_file(slot, value, &path)?,
            Some(slot) => *slot = value,
        }
    }
    Ok(())
}

fn apply_env(
    merged: &mut toml::Value,
    var: &str,
    rest: &str,
    raw: &str,
) -> Result<(), ConfigError> {
    let env_error = |message: &str| ConfigError::Env {
        var: var.into(),
        message: message.into(),
    };
    let mut parts = rest.split("__");
    let (Some(section), Some(key), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(env_error("expected FLASHGATE__<SECTION>__<KEY>"));
    };
    let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
    let slot = merged
        .get_mut(&section)
        .and_then(|table| table.get_mut(&key))
        .ok_or_else(|| env_error(&format!("unknown key `{section}.{key}`")))?;
    let value = match slot {
        toml::Value::String(_) => toml::Value::String(raw.to_owned()),
        toml::Value::Integer(_) => toml::Value::Integer(
            raw.trim()
                .parse()
                .map_err(|_| env_error(&format!("`{section}.{key}` expects an integer")))?,
        ),
        toml::Value::Boolean(_) => toml::Value::Boolean(
            raw.trim()
                .parse()
                .map_err(|_| env_error(&format!("`{section}.{key}` expects true or false")))?,
        ),
        toml::Value::Array(_) => toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| toml::Value::String(item.to_owned()))
                .collect(),
        ),
        _ => {
            return Err(env_error(&format!(
                "`{section}.{key}` cannot be set from the environment"
            )))
        }
    };
    *slot = value;
    Ok(())
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
