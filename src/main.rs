//! The `flashgate` command: `serve` runs the gateway; `sale` and `order`
//! steer and read a running one; `cluster leases` reads who holds what in
//! a cluster's Redis; `reconcile` checks a
//! day's WeChat Pay trade bill against the store; `session-token` mints a
//! storefront token with the configured secret, for trying the API by hand;
//! `wxpay-sim` runs the WeChat Pay simulator as its own process.

/// jemalloc, not glibc's malloc: an order's blocks are made on an HTTP
/// thread and are either kept for good by the tables or freed on the
/// journal writer's thread, and glibc's per-thread cache runs dry on that
/// pattern (docs/PROFILE.md, "the
/// allocator": `flash` fsync at 64 connections +16%, `none` +6%).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's start-up options (read before `main`; `_RJEM_MALLOC_CONF` in
/// the environment overrides them). A background thread returns freed
/// pages to the system after a second, so the memory a snapshot needs only
/// while it is written does not stay resident (`flashgate-loadtest holds`
/// measures it); without it the freed pages stay until the arena is busy again.
#[cfg(not(target_env = "msvc"))]
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static _rjem_malloc_conf: &[u8] =
    b"background_thread:true,max_background_threads:1,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

use clap::{Parser, Subcommand};
use flashgate::app::Gateway;
use flashgate::config::Config;
use flashgate::http::auth::SessionKeys;
use flashgate::pay::sim::{Faults, SimConfig, Simulator, DEFAULT_PUBLIC_KEY_ID};
use flashgate::pay::RsaSigner;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "flashgate",
    version,
    about = "Order gateway for livestream flash sales"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway until SIGTERM or SIGINT.
    Serve {
        /// TOML config file; FLASHGATE__<SECTION>__<KEY> variables override it.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Compare one day's WeChat Pay trade bill with the store; print every
    /// discrepancy. Exit 0: they agree; 1: discrepancies; 2: could not run.
    Reconcile {
        /// The Beijing day, YYYY-MM-DD (bills exist from 10:00 the next day).
        #[arg(long)]
        date: String,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print a storefront session token (HS256 JWT) for a buyer.
    SessionToken {
        /// The buyer's openid (the token's `sub`).
        #[arg(long)]
        openid: String,
        /// How long the token is valid.
        #[arg(long, default_value_t = 3600)]
        ttl_seconds: i64,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Steer a sale on a running gateway (admin API; --url, --token or
    /// FLASHGATE_URL, FLASHGATE_TOKEN). Exit 1: refused; 2: usage; 3: unreachable.
    Sale(flashgate::cli::SaleArgs),
    /// Read any order on a running gateway (admin API).
    Order(flashgate::cli::OrderArgs),
    /// The cluster's Redis: `leases` prints who holds what; `reclaim`
    /// gives back what a stopped node holds unsold. Exit 1: the node is
    /// running; 2: no [cluster] configured; 3: Redis unreachable.
    Cluster(flashgate::cli::ClusterArgs),
    /// Run the WeChat Pay API v3 simulator until SIGTERM or SIGINT; prints
    /// `wxpay-sim listening on http://ADDR public_key_id=...` when ready.
    WxpaySim(WxpaySimArgs),
}

#[derive(clap::Args)]
struct WxpaySimArgs {
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    #[arg(long)]
    mchid: String,
    #[arg(long)]
    appid: String,
    /// The 32-byte APIv3 key; FLASHGATE_SIM_APIV3_KEY when absent.
    #[arg(long)]
    apiv3_key: Option<String>,
    /// The serial requests must name in their Authorization header.
    #[arg(long)]
    merchant_serial_no: String,
    /// The merchant's public key (PEM, BEGIN PUBLIC KEY) that verifies requests.
    #[arg(long)]
    merchant_public_key: PathBuf,
    /// Sent as Wechatpay-Serial on answers and notifications.
    #[arg(long, default_value = DEFAULT_PUBLIC_KEY_ID)]
    public_key_id: String,
    /// The platform key (PKCS#8 PEM) that signs; a fresh one when absent.
    #[arg(long)]
    platform_private_key: Option<PathBuf>,
    /// Write the platform public key (PEM) here, for the gateway's config.
    #[arg(long)]
    platform_public_key_out: Option<PathBuf>,
    /// Multiplies the notification retry schedule and the refund delay.
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
    /// Log filter (to stderr), e.g. `debug`.
    #[arg(long, default_value = "info")]
    log_level: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Reconcile { date, config } => return reconcile(config.as_deref(), &date),
        Command::Sale(args) => return flashgate::cli::run_sale(args),
        Command::Order(args) => return flashgate::cli::run_order(args),
        Command::Cluster(args) => return flashgate::cli::run_cluster(args),
        Command::Serve { config } => load(config.as_deref()).and_then(serve),
        Command::SessionToken {
            openid,
            ttl_seconds,
            config,
        } => load(config.as_deref()).map(|config| {
            let keys = SessionKeys::new(config.auth.session_secret.as_bytes());
            let exp = flashgate::clock::now_ms() / 1000 + ttl_seconds;
            println!("{}", keys.issue(&openid, exp));
        }),
        Command::WxpaySim(args) => wxpay_sim(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("flashgate: {message}");
            ExitCode::FAILURE
        }
    }
}

fn reconcile(config: Option<&std::path::Path>, date: &str) -> ExitCode {
    let found =
        load(config).and_then(|config| flashgate::payments::daily::reconcile_day(&config, date));
    match found {
        Ok(discrepancies) if discrepancies.is_empty() => {
            println!("{date}: the trade bill and the store agree");
            ExitCode::SUCCESS
        }
        Ok(discrepancies) => {
            for discrepancy in &discrepancies {
                println!("{date}: {discrepancy}");
            }
            println!("{date}: {} discrepancies", discrepancies.len());
            ExitCode::from(1)
        }
        Err(message) => {
            eprintln!("flashgate reconcile: {message}");
            ExitCode::from(2)
        }
    }
}

fn load(path: Option<&std::path::Path>) -> Result<Config, String> {
    Config::load(path).map_err(|error| error.to_string())
}

fn serve(config: Config) -> Result<(), String> {
    init_logging(&config.log.level);
    if config.uses_dev_credentials() {
        tracing::warn!(
            "using the built-in development session secret or admin tokens; \
             set auth.session_secret and auth.admin_tokens before going live"
        );
    }
    // The background tasks' runtime (timers, sweeps, the accept loop); the
    // connections run on `server.workers` HTTP threads of their own
    // (http::server).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| error.to_string())?;
    runtime.block_on(async {
        // Listen for signals before serving: a SIGTERM that arrives as soon
        // as /healthz answers must still shut down gracefully.
        let signals = Signals::install()?;
        let gateway = Gateway::start(config)
            .await
            .map_err(|error| error.to_string())?;
        signals.wait().await;
        tracing::info!("shutting down: finishing in-flight requests");
        gateway.shutdown().await;
        tracing::info!("stopped");
        Ok(())
    })
}

/// SIGTERM and SIGINT, caught from the moment they are installed.
struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals, String> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            terminate: signal(SignalKind::terminate()).map_err(|error| error.to_string())?,
            interrupt: signal(SignalKind::interrupt()).map_err(|error| error.to_string())?,
        })
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
    }
}

fn init_logging(level: &str) {
    use tracing_subscriber::prelude::*;
    // Config validation has parsed the filter already.
    let filter: tracing_subscriber::filter::Targets = level
        .parse()
        .unwrap_or_else(|_| tracing_subscriber::filter::Targets::new());
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_filter(filter))
        .init();
}

fn wxpay_sim(args: WxpaySimArgs) -> Result<(), String> {
    init_stderr_logging(&args.log_level);
    let config = sim_config(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| error.to_string())?;
    runtime.block_on(async {
        let signals = Signals::install()?;
        let handle = Simulator::start(config)
            .await
            .map_err(|error| error.to_string())?;
        if let Some(path) = &args.platform_public_key_out {
            std::fs::write(path, handle.public_key_pem())
                .map_err(|error| format!("writing {}: {error}", path.display()))?;
        }
        let mut stdout = std::io::stdout().lock();
        writeln!(
            stdout,
            "wxpay-sim listening on {} public_key_id={}",
            handle.base_url(),
            handle.public_key_id()
        )
        .and_then(|()| stdout.flush())
        .map_err(|error| format!("stdout: {error}"))?;
        drop(stdout);
        signals.wait().await;
        handle.shutdown().await;
        Ok(())
    })
}

fn sim_config(args: &WxpaySimArgs) -> Result<SimConfig, String> {
    let apiv3_key = match &args.apiv3_key {
        Some(key) => key.clone(),
        None => std::env::var("FLASHGATE_SIM_APIV3_KEY")
            .map_err(|_| "give --apiv3-key or set FLASHGATE_SIM_APIV3_KEY".to_owned())?,
    };
    let platform_signer = match &args.platform_private_key {
        Some(path) => RsaSigner::from_pkcs8_pem(&read_text(path)?)
            .map_err(|error| format!("{}: {error}", path.display()))?,
        None => RsaSigner::generate().map_err(|error| error.to_string())?,
    };
    Ok(SimConfig {
        listen: args.listen,
        mchid: args.mchid.clone(),
        appid: args.appid.clone(),
        apiv3_key,
        merchant_serial_no: args.merchant_serial_no.clone(),
        merchant_public_key_pem: read_text(&args.merchant_public_key)?,
        platform_signer,
        public_key_id: args.public_key_id.clone(),
        time_scale: args.time_scale,
        faults: Faults::default(),
    })
}

fn read_text(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|error| format!("reading {}: {error}", path.display()))
}

/// Logs go to stderr: stdout carries the ready line a parent process waits for.
fn init_stderr_logging(level: &str) {
    use tracing_subscriber::prelude::*;
    let filter: tracing_subscriber::filter::Targets = level
        .parse()
        .unwrap_or_else(|_| tracing_subscriber::filter::Targets::new());
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(filter),
        )
        .init();
}
