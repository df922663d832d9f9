//! The journal's commits over a gateway round, from the gateway's own
//! histograms `flashgate_journal_commit_seconds` (the write, the
//! `fdatasync` and the writer's wait to run again) and
//! `flashgate_journal_records_per_commit`, scraped from `/metrics` before
//! and after the round. How many commits, how full, how long: what a
//! `fsync` round waits on.

use crate::admin::metric_sample;
use flashgate::metrics::{JOURNAL_COMMIT_SECONDS, JOURNAL_RECORDS_PER_COMMIT};
use serde::Serialize;

/// The histograms' running totals in one scrape (0 before the first commit).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CommitTotals {
    pub commits: f64,
    pub seconds: f64,
    pub records: f64,
}

/// The totals in a Prometheus text exposition.
pub fn parse_commit_totals(text: &str) -> CommitTotals {
    let total =
        |name: &str, suffix: &str| metric_sample(text, &format!("{name}{suffix}")).unwrap_or(0.0);
    CommitTotals {
        commits: total(JOURNAL_COMMIT_SECONDS, "_count"),
        seconds: total(JOURNAL_COMMIT_SECONDS, "_sum"),
        records: total(JOURNAL_RECORDS_PER_COMMIT, "_sum"),
    }
}

/// The journal's commits during one round.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JournalRound {
    pub commits: u64,
    pub commits_per_second: f64,
    pub records_per_commit: f64,
    pub mean_commit_us: f64,
    /// Time in commits over the round's time: near 1, the writer is always
    /// in a commit and a record waits for the one under way first.
    pub busy: f64,
}

impl JournalRound {
    /// The commits between two scrapes `round_seconds` apart; `None`
    /// without any.
    pub fn between(
        before: CommitTotals,
        after: CommitTotals,
        round_seconds: f64,
    ) -> Option<JournalRound> {
        let commits = after.commits - before.commits;
        if commits < 1.0 || round_seconds <= 0.0 {
            return None;
        }
        let seconds = after.seconds - before.seconds;
        Some(JournalRound {
            commits: commits as u64,
            commits_per_second: commits / round_seconds,
            records_per_commit: (after.records - before.records) / commits,
            mean_commit_us: seconds * 1e6 / commits,
            busy: seconds / round_seconds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As the gateway's exporter writes them (buckets, sum, count).
    const BEFORE: &str = "\
# TYPE flashgate_journal_commit_seconds histogram
flashgate_journal_commit_seconds_bucket{le=\"0.0001\"} 2
flashgate_journal_commit_seconds_bucket{le=\"+Inf\"} 10
flashgate_journal_commit_seconds_sum 0.002
flashgate_journal_commit_seconds_count 10
# TYPE flashgate_journal_records_per_commit histogram
flashgate_journal_records_per_commit_bucket{le=\"1\"} 10
flashgate_journal_records_per_commit_sum 12
flashgate_journal_records_per_commit_count 10
flashgate_store_lag_records 0
";

    #[test]
    fn totals_are_read_from_the_sum_and_count_lines_only() {
        assert_eq!(
            parse_commit_totals(BEFORE),
            CommitTotals {
                commits: 10.0,
                seconds: 0.002,
                records: 12.0
            }
        );
        assert_eq!(
            parse_commit_totals("flashgate_store_lag_records 3\n"),
            CommitTotals::default()
        );
    }

    #[test]
    fn a_round_is_the_difference_of_two_scrapes() {
        let after = BEFORE
            .replace("seconds_sum 0.002", "seconds_sum 1.002")
            .replace("seconds_count 10", "seconds_count 5010")
            .replace("commit_sum 12", "commit_sum 55012");
        let round = JournalRound::between(
            parse_commit_totals(BEFORE),
            parse_commit_totals(&after),
            2.0,
        )
        .expect("commits in the round");
        assert_eq!(round.commits, 5_000);
        assert_eq!(round.commits_per_second, 2_500.0);
        assert_eq!(round.records_per_commit, 11.0);
        assert!((round.mean_commit_us - 200.0).abs() < 1e-6, "{round:?}");
        assert!((round.busy - 0.5).abs() < 1e-9, "{round:?}");
        let same = parse_commit_totals(BEFORE);
        assert_eq!(
            JournalRound::between(same, same, 2.0),
            None,
            "no commits, no figures"
        );
    }
}
