//! `flashgate sale stats`: the stats as a table, and `--watch`, which
//! redraws it in place with the order rate since the last update.

use crate::cli::client::{AdminClient, Failure};
use serde_json::Value;
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{Duration, Instant};

/// Clears the terminal and moves the cursor home (ANSI).
const CLEAR: &str = "\x1b[2J\x1b[H";

/// Renders `GET /admin/v1/sales/{id}/stats`. `rate`: orders per second
/// since the previous update, when watching.
pub fn render(stats: &Value, rate: Option<f64>) -> String {
    let count = |value: &Value| value.as_i64().unwrap_or(0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "sale {}  {}",
        stats["sale_id"].as_str().unwrap_or("?"),
        stats["status"].as_str().unwrap_or("?")
    );
    let _ = writeln!(
        out,
        "{:<24} {:>9} {:>9} {:>9} {:>9}  sold",
        "sku", "stock", "reserved", "paid", "remaining"
    );
    for item in stats["items"].as_array().into_iter().flatten() {
        let stock = count(&item["stock"]);
        let sold = count(&item["reserved"]) + count(&item["paid"]);
        let _ = writeln!(
            out,
            "{:<24} {:>9} {:>9} {:>9} {:>9}  {}",
            item["sku_id"].as_str().unwrap_or("?"),
            stock,
            count(&item["reserved"]),
            count(&item["paid"]),
            count(&item["remaining"]),
            bar(sold, stock, 20)
        );
    }
    let orders = &stats["orders"];
    let mut line = String::from("orders:");
    for (name, value) in orders.as_object().into_iter().flatten() {
        let _ = write!(line, " {name} {}", count(value));
    }
    let _ = writeln!(out, "{line}");
    let rejects = stats["rejects"].as_object();
    if let Some(rejects) = rejects.filter(|rejects| !rejects.is_empty()) {
        let mut line = String::from("rejects:");
        for (name, value) in rejects {
            let _ = write!(line, " {name} {}", count(value));
        }
        let _ = writeln!(out, "{line}");
    }
    if let Some(rate) = rate {
        let _ = writeln!(out, "order rate: {rate:.1}/s");
    }
    out
}

/// `[#####.....] 50%` of `part` in `whole`.
fn bar(part: i64, whole: i64, width: usize) -> String {
    let ratio = if whole > 0 {
        (part as f64 / whole as f64).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let filled = (ratio * width as f64).round() as usize;
    format!(
        "[{}{}] {:>3.0}%",
        "#".repeat(filled),
        ".".repeat(width - filled),
        ratio * 100.0
    )
}

/// Redraws the stats every `interval` until the sale ends or `updates`
/// renders were shown. A refused read (the sale is gone) ends the watch
/// with that failure; a dropped connection is retried on the next tick.
pub async fn watch(
    client: &AdminClient,
    sale_id: &str,
    interval: Duration,
    updates: Option<u64>,
    json: bool,
) -> Result<(), Failure> {
    let path = format!("/admin/v1/sales/{}/stats", super::segment(sale_id));
    let mut previous: Option<(Instant, i64)> = None;
    let mut shown = 0u64;
    let mut ticker = tokio::time::interval(interval);
    loop {
        ticker.tick().await;
        let stats = match client.get(&path).await {
            Ok(stats) => stats,
            Err(Failure::Unreachable(message)) => {
                eprintln!("flashgate: {message}; retrying");
                continue;
            }
            Err(refused) => return Err(refused),
        };
        let created = stats["orders"]["created"].as_i64().unwrap_or(0);
        let now = Instant::now();
        let rate = previous.map(|(at, count)| {
            (created - count) as f64 / now.duration_since(at).as_secs_f64().max(0.001)
        });
        previous = Some((now, created));
        let mut stdout = std::io::stdout().lock();
        let frame = if json {
            format!("{stats}\n")
        } else {
            format!("{CLEAR}{}", render(&stats, rate))
        };
        let _ = stdout.write_all(frame.as_bytes());
        let _ = stdout.flush();
        shown += 1;
        if stats["status"] == "ended" || updates.is_some_and(|limit| shown >= limit) {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_items_with_a_bar_and_the_counts() {
        let stats = serde_json::json!({
            "sale_id": "s1", "status": "live",
            "items": [{"sku_id": "k1", "stock": 10, "reserved": 3, "paid": 2, "released": 0, "remaining": 5}],
            "orders": {"created": 6, "cancelled": 1},
            "rejects": {"sold_out": 4}
        });
        let text = render(&stats, Some(12.5));
        assert!(text.starts_with("sale s1  live\n"), "{text}");
        assert!(text.contains("[##########..........]  50%"), "{text}");
        assert!(text.contains("orders: cancelled 1 created 6"), "{text}");
        assert!(text.contains("rejects: sold_out 4"), "{text}");
        assert!(text.contains("order rate: 12.5/s"), "{text}");
        assert_eq!(bar(0, 0, 4), "[....]   0%");
        assert_eq!(bar(9, 3, 4), "[####] 100%");
    }
}
