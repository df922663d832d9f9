//! The `flashgate` command: `serve` runs the gateway; `session-token` mints a
//! storefront token with the configured secret, for trying the API by hand.

use clap::{Parser, Subcommand};
use flashgate::app::Gateway;
use flashgate::config::Config;
use flashgate::http::auth::SessionKeys;
use std::path::PathBuf;
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
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
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("flashgate: {message}");
            ExitCode::FAILURE
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
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if config.server.workers > 0 {
        runtime.worker_threads(config.server.workers);
    }
    let runtime = runtime
        .enable_all()
        .build()
        .map_err(|error| error.to_string())?;
    runtime.block_on(async {
        let gateway = Gateway::start(config)
            .await
            .map_err(|error| error.to_string())?;
        wait_for_signal().await?;
        tracing::info!("shutting down: finishing in-flight requests");
        gateway.shutdown().await;
        tracing::info!("stopped");
        Ok(())
    })
}

async fn wait_for_signal() -> Result<(), String> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).map_err(|error| error.to_string())?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(|error| error.to_string())?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    Ok(())
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
