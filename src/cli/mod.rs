//! `flashgate sale …` and `flashgate order …`: the host's and operator's
//! command line, a client of a running gateway's admin API (`/admin/v1`).
//!
//! The gateway decides everything; the CLI sends the request, prints the
//! answer, and turns the outcome into an exit code a script can branch on:
//!
//! | exit | meaning |
//! | --- | --- |
//! | 0 | done |
//! | 1 | the gateway refused (its status, code and message are printed) |
//! | 2 | bad usage: arguments, a sale file that cannot be read, no token |
//! | 3 | the gateway could not be reached or did not answer sensibly |

mod client;
pub mod cluster;
mod stats;

pub use cluster::{run_cluster, ClusterArgs};

use crate::cli::client::{AdminClient, Failure};
use clap::{Args, Subcommand};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

pub const EXIT_REFUSED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_UNREACHABLE: u8 = 3;

/// Which gateway, as whom.
#[derive(Args, Debug, Clone)]
pub struct Target {
    /// The gateway's base URL (http only).
    #[arg(
        long,
        global = true,
        env = "FLASHGATE_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,
    /// An admin token (role host for changes, ops for reading).
    #[arg(long, global = true, env = "FLASHGATE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the gateway's JSON answer instead of a summary.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct SaleArgs {
    #[command(subcommand)]
    pub command: SaleCommand,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Subcommand, Debug)]
pub enum SaleCommand {
    /// Create a sale from a TOML or JSON file (the body of POST /admin/v1/sales).
    Create {
        #[arg(long)]
        file: PathBuf,
    },
    /// Go live now.
    Start { sale_id: String },
    /// Stop taking orders for a while.
    Pause { sale_id: String },
    /// End the sale (open holds may still be paid until they expire).
    End { sale_id: String },
    /// Add units to an item.
    Restock {
        sale_id: String,
        sku_id: String,
        add: i64,
    },
    /// Stock, holds, payments and rejects; `--watch` redraws it live.
    Stats {
        sale_id: String,
        #[arg(long)]
        watch: bool,
        /// With --watch: milliseconds between updates.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
        interval_ms: u64,
        /// With --watch: stop after this many updates (default: until the sale ends).
        #[arg(long)]
        updates: Option<u64>,
    },
}

#[derive(Args, Debug)]
pub struct OrderArgs {
    #[command(subcommand)]
    pub command: OrderCommand,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Subcommand, Debug)]
pub enum OrderCommand {
    /// Any order, with its buyer, payment and history.
    Show { order_id: String },
}

/// What a command ends in, before it becomes an exit code.
#[derive(Debug)]
pub enum Outcome {
    Done,
    Usage(String),
    Failed(Failure),
}

impl From<Failure> for Outcome {
    fn from(failure: Failure) -> Outcome {
        Outcome::Failed(failure)
    }
}

pub fn run_sale(args: SaleArgs) -> ExitCode {
    finish(with_runtime(|| async move { sale(args).await }))
}

pub fn run_order(args: OrderArgs) -> ExitCode {
    finish(with_runtime(|| async move { order(args).await }))
}

pub(crate) fn with_runtime<F, Fut>(body: F) -> Outcome
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Outcome>,
{
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(body()),
        Err(error) => Outcome::Failed(Failure::Unreachable(format!("no runtime: {error}"))),
    }
}

pub(crate) fn finish(outcome: Outcome) -> ExitCode {
    match outcome {
        Outcome::Done => ExitCode::SUCCESS,
        Outcome::Usage(message) => {
            eprintln!("flashgate: {message}");
            ExitCode::from(EXIT_USAGE)
        }
        Outcome::Failed(failure) => {
            eprintln!("flashgate: {failure}");
            ExitCode::from(match failure {
                Failure::Refused { .. } => EXIT_REFUSED,
                Failure::Unreachable(_) => EXIT_UNREACHABLE,
            })
        }
    }
}

fn client(target: &Target) -> Result<AdminClient, Outcome> {
    let Some(token) = target.token.clone().filter(|token| !token.is_empty()) else {
        return Err(Outcome::Usage(
            "no admin token: pass --token or set FLASHGATE_TOKEN".into(),
        ));
    };
    AdminClient::new(&target.url, token).map_err(Outcome::Usage)
}

async fn sale(args: SaleArgs) -> Outcome {
    let client = match client(&args.target) {
        Ok(client) => client,
        Err(outcome) => return outcome,
    };
    let json = args.target.json;
    let answer = match args.command {
        SaleCommand::Create { file } => {
            let body = match read_sale_file(&file) {
                Ok(body) => body,
                Err(message) => return Outcome::Usage(message),
            };
            client.post("/admin/v1/sales", Some(&body)).await
        }
        SaleCommand::Start { sale_id } => action(&client, &sale_id, "start").await,
        SaleCommand::Pause { sale_id } => action(&client, &sale_id, "pause").await,
        SaleCommand::End { sale_id } => action(&client, &sale_id, "end").await,
        SaleCommand::Restock {
            sale_id,
            sku_id,
            add,
        } => {
            let path = format!(
                "/admin/v1/sales/{}/items/{}/restock",
                segment(&sale_id),
                segment(&sku_id)
            );
            client
                .post(&path, Some(&serde_json::json!({ "add": add })))
                .await
        }
        SaleCommand::Stats {
            sale_id,
            watch: true,
            interval_ms,
            updates,
        } => {
            let interval = Duration::from_millis(interval_ms);
            return stats::watch(&client, &sale_id, interval, updates, json)
                .await
                .map_or_else(Outcome::from, |()| Outcome::Done);
        }
        SaleCommand::Stats { sale_id, .. } => {
            let answer = client
                .get(&format!("/admin/v1/sales/{}/stats", segment(&sale_id)))
                .await;
            return match answer {
                Ok(stats) if !json => {
                    print!("{}", stats::render(&stats, None));
                    Outcome::Done
                }
                Ok(stats) => print_json(&stats),
                Err(failure) => failure.into(),
            };
        }
    };
    match answer {
        Ok(value) if json => print_json(&value),
        Ok(value) => {
            println!("{}", summary(&value));
            Outcome::Done
        }
        Err(failure) => failure.into(),
    }
}

async fn order(args: OrderArgs) -> Outcome {
    let client = match client(&args.target) {
        Ok(client) => client,
        Err(outcome) => return outcome,
    };
    let OrderCommand::Show { order_id } = args.command;
    match client
        .get(&format!("/admin/v1/orders/{}", segment(&order_id)))
        .await
    {
        Ok(order) => print_json(&order),
        Err(failure) => failure.into(),
    }
}

async fn action(client: &AdminClient, sale_id: &str, action: &str) -> Result<Value, Failure> {
    let path = format!("/admin/v1/sales/{}/{action}", segment(sale_id));
    client.post(&path, None).await
}

fn print_json(value: &Value) -> Outcome {
    match serde_json::to_string_pretty(value) {
        Ok(text) => {
            println!("{text}");
            Outcome::Done
        }
        Err(error) => Outcome::Failed(Failure::Unreachable(error.to_string())),
    }
}

/// One line for a sale view or restock answer.
fn summary(value: &Value) -> String {
    let sale_id = value["sale_id"].as_str().unwrap_or("?");
    let status = value["status"].as_str().unwrap_or("?");
    let items = value["items"].as_array().map_or(0, Vec::len);
    format!("sale {sale_id}: {status}, {items} item(s)")
}

/// A path segment as typed: ids are `[A-Za-z0-9_-]`, anything else is
/// percent-encoded so the gateway answers 400 for it rather than routing
/// it somewhere else.
fn segment(id: &str) -> String {
    id.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => (byte as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// The sale body from a `.toml` or `.json` file (by extension; TOML
/// otherwise), as the JSON the API takes. The gateway validates it.
pub fn read_sale_file(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let is_json = path
        .extension()
        .is_some_and(|extension| extension.eq_ignore_ascii_case("json"));
    if is_json {
        return serde_json::from_str(&text)
            .map_err(|error| format!("{} is not valid JSON: {error}", path.display()));
    }
    let value: toml::Value = toml::from_str(&text)
        .map_err(|error| format!("{} is not valid TOML: {}", path.display(), error.message()))?;
    serde_json::to_value(value).map_err(|error| format!("{}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_sent_as_one_path_segment() {
        assert_eq!(segment("live-1125_a"), "live-1125_a");
        assert_eq!(segment("a/../b"), "a%2F%2E%2E%2Fb");
        assert_eq!(segment("有"), "%E6%9C%89");
    }

    #[test]
    fn sale_files_are_toml_or_json() {
        let dir = std::env::temp_dir().join(format!("fg-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let toml_path = dir.join("sale.toml");
        std::fs::write(
            &toml_path,
            "sale_id = \"s1\"\ntitle = \"t\"\n[[items]]\nsku_id = \"k\"\nprice = \"9.90\"\nstock = 5\n",
        )
        .unwrap();
        let value = read_sale_file(&toml_path).unwrap();
        assert_eq!(value["items"][0]["price"], "9.90");
        assert_eq!(value["items"][0]["stock"], 5);
        let json_path = dir.join("sale.json");
        std::fs::write(&json_path, "{\"sale_id\": \"s1\"}").unwrap();
        assert_eq!(read_sale_file(&json_path).unwrap()["sale_id"], "s1");
        std::fs::write(&json_path, "{nope").unwrap();
        assert!(read_sale_file(&json_path)
            .unwrap_err()
            .contains("not valid JSON"));
        std::fs::write(&toml_path, "title = ").unwrap();
        assert!(read_sale_file(&toml_path)
            .unwrap_err()
            .contains("not valid TOML"));
        assert!(read_sale_file(&dir.join("missing.toml"))
            .unwrap_err()
            .contains("cannot read"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
