//! Journal tests on real files: group commit, replay, rotation, torn tails
//! and damage inside the log.

use super::record::{decode, encode, Decoded, HEADER_BYTES};
use super::segment::list_segments;
use super::*;
use std::fs;
use std::sync::Arc;

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("fg-journal-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn options(dir: &Path, segment_bytes_max: u64) -> JournalOptions {
    JournalOptions {
        dir: dir.to_owned(),
        durability: Durability::Fsync,
        segment_bytes_max,
        commit_batch_bytes_max: 64 * 1024,
        preallocate: false,
        // Off unless a test turns it on: the others count commits.
        commit_gather_min_records: 0,
        commit_gather: std::time::Duration::ZERO,
        writer_policy: ThreadPolicy::Batch,
    }
}

/// The records of a journal, as `(seq, payload)`.
type Records = Vec<(u64, Vec<u8>)>;

fn collect(dir: &Path) -> Result<(ReplayOutcome, Records), JournalError> {
    collect_within(dir, 64 * 1024)
}

/// [`collect`], cutting a torn tail only within `tail_window_bytes` of the end.
fn collect_within(
    dir: &Path,
    tail_window_bytes: usize,
) -> Result<(ReplayOutcome, Records), JournalError> {
    let mut records = Vec::new();
    let outcome = replay(dir, 0, tail_window_bytes, |seq, payload| {
        records.push((seq, payload.to_vec()));
        Ok(())
    })?;
    Ok((outcome, records))
}

fn write_records(dir: &Path, segment_bytes_max: u64, count: usize) {
    let (outcome, _) = collect(dir).unwrap();
    let journal = Journal::start(options(dir, segment_bytes_max), &outcome).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let commits: Vec<_> = (0..count)
        .map(|i| journal.submit(format!("record {i}").into_bytes()))
        .collect();
    runtime.block_on(async {
        for commit in commits {
            commit.durable().await.unwrap();
        }
    });
    journal.shutdown();
}

#[test]
fn concurrent_submits_share_commits_and_replay_in_order() {
    let dir = TempDir::new("group");
    let (outcome, _) = collect(&dir.0).unwrap();
    let journal = Arc::new(Journal::start(options(&dir.0, 1 << 30), &outcome).unwrap());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let seqs = runtime.block_on(async {
        let tasks: Vec<_> = (0..500)
            .map(|i| {
                let journal = Arc::clone(&journal);
                tokio::spawn(async move { journal.submit(vec![i as u8; 10]).durable().await })
            })
            .collect();
        let mut seqs = Vec::new();
        for task in tasks {
            seqs.push(task.await.unwrap().unwrap());
        }
        seqs
    });
    let mut sorted = seqs.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        (1..=500).collect::<Vec<u64>>(),
        "every record got its own seq"
    );
    assert_eq!(journal.durable_seq(), 500);
    journal.shutdown();
    let (outcome, records) = collect(&dir.0).unwrap();
    assert_eq!(outcome.last_seq, 500);
    assert_eq!(records.len(), 500);
    assert!(records.windows(2).all(|pair| pair[0].0 + 1 == pair[1].0));
}

#[test]
fn segments_rotate_and_a_restart_appends_after_the_last_record() {
    let dir = TempDir::new("rotate");
    write_records(&dir.0, 200, 40);
    assert!(
        list_segments(&dir.0).unwrap().len() > 1,
        "small segments rotate"
    );
    write_records(&dir.0, 200, 10);
    let (outcome, records) = collect(&dir.0).unwrap();
    assert_eq!(outcome.last_seq, 50);
    assert_eq!(records.last().unwrap().1, b"record 9");
}

#[test]
fn a_torn_tail_is_truncated_and_the_log_continues() {
    let dir = TempDir::new("torn");
    write_records(&dir.0, 1 << 30, 5);
    let (_, path) = list_segments(&dir.0).unwrap().pop().unwrap();
    let intact = fs::metadata(&path).unwrap().len();
    // A crash in the middle of the next commit: half a record reached disk.
    let mut torn = Vec::new();
    encode(6, b"a record that never finished", &mut torn);
    let mut bytes = fs::read(&path).unwrap();
    bytes.extend_from_slice(&torn[..HEADER_BYTES + 4]);
    fs::write(&path, &bytes).unwrap();

    let (outcome, records) = collect(&dir.0).unwrap();
    assert_eq!((outcome.last_seq, records.len()), (5, 5));
    assert_eq!(outcome.truncated_bytes, (HEADER_BYTES + 4) as u64);
    assert_eq!(
        fs::metadata(&path).unwrap().len(),
        intact,
        "the tail was cut off"
    );
    write_records(&dir.0, 1 << 30, 1);
    assert_eq!(collect(&dir.0).unwrap().0.last_seq, 6);
}

#[test]
fn a_lost_page_of_an_unfinished_commit_with_records_after_it_is_a_torn_tail() {
    let dir = TempDir::new("torn-hole");
    write_records(&dir.0, 1 << 30, 200);
    let (_, path) = list_segments(&dir.0).unwrap().pop().unwrap();
    let intact = fs::read(&path).unwrap();
    // The crash kept a later page of the unfinished commit but not this
    // sector: records before it, a hole, intact records after it.
    let mut bytes = intact.clone();
    bytes[1024..1536].fill(0);
    fs::write(&path, &bytes).unwrap();
    // Where the record that reaches into the hole starts.
    let (mut offset, mut seq) = (0, 0);
    while let Decoded::Record { bytes: length, .. } = decode(&bytes[offset..]) {
        offset += length;
        seq += 1;
    }
    assert!(offset <= 1024 && seq > 0, "{offset} {seq}");

    // Further from the end than one commit reaches: damage.
    match collect_within(&dir.0, intact.len() - offset - 1).unwrap_err() {
        JournalError::Corrupt {
            segment,
            offset: at,
            ..
        } => assert_eq!((&segment, at), (&path, offset as u64)),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(fs::read(&path).unwrap(), bytes, "nothing was cut");

    // Within its reach: a torn tail, cut where the damage begins.
    let (outcome, records) = collect(&dir.0).unwrap();
    assert_eq!((outcome.last_seq, records.len()), (seq, seq as usize));
    assert_eq!(outcome.truncated_bytes, (intact.len() - offset) as u64);
    assert_eq!(fs::read(&path).unwrap(), &intact[..offset]);
    write_records(&dir.0, 1 << 30, 1);
    assert_eq!(collect(&dir.0).unwrap().0.last_seq, seq + 1);
}

#[test]
fn damage_inside_the_log_refuses_to_start_and_names_segment_and_offset() {
    let dir = TempDir::new("corrupt");
    write_records(&dir.0, 1 << 30, 5);
    let (_, path) = list_segments(&dir.0).unwrap().pop().unwrap();
    let mut bytes = fs::read(&path).unwrap();
    let second_record = HEADER_BYTES + "record 0".len();
    bytes[second_record + HEADER_BYTES] ^= 0x40; // a bit flip in record 2's payload
    fs::write(&path, &bytes).unwrap();
    let error = collect(&dir.0).unwrap_err();
    match &error {
        JournalError::Corrupt {
            segment, offset, ..
        } => {
            assert_eq!((segment, *offset), (&path, second_record as u64));
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()) && message.contains("offset"));
    assert_eq!(fs::read(&path).unwrap(), bytes, "nothing was truncated");
}

#[test]
fn a_replay_error_names_where_the_record_is() {
    let dir = TempDir::new("apply");
    write_records(&dir.0, 1 << 30, 3);
    let error = replay(&dir.0, 0, 1024, |seq, _| {
        if seq == 2 {
            Err("no".into())
        } else {
            Ok(())
        }
    })
    .unwrap_err();
    assert!(
        matches!(error, JournalError::Replay { offset, .. } if offset > 0),
        "{error:?}"
    );
}

#[test]
fn a_barrier_resolves_after_what_was_queued_before_it_and_writes_nothing() {
    let dir = TempDir::new("barrier");
    let (outcome, _) = collect(&dir.0).unwrap();
    let journal = Journal::start(options(&dir.0, 1 << 30), &outcome).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let first = journal.submit(b"one".to_vec());
    let barrier = journal.barrier();
    runtime.block_on(async {
        assert_eq!(barrier.durable().await.unwrap(), 1);
        assert_eq!(first.durable().await.unwrap(), 1);
        assert_eq!(
            journal.barrier().durable().await.unwrap(),
            1,
            "an idle barrier"
        );
    });
    journal.shutdown();
    assert_eq!(collect(&dir.0).unwrap().1.len(), 1);
}

#[test]
fn a_tail_reads_durable_records_in_order_across_segments_and_resumes() {
    let dir = TempDir::new("tail");
    write_records(&dir.0, 300, 30);
    assert!(list_segments(&dir.0).unwrap().len() > 1);
    let mut tail = tail::Tail::new(&dir.0, 0);
    let first = tail.read(DurableEnd::unbounded(30), 7).unwrap();
    assert_eq!(
        first.iter().map(|r| r.0).collect::<Vec<_>>(),
        (1..=7).collect::<Vec<u64>>()
    );
    assert_eq!(first[0].1, b"record 0");
    let mut seen = first.len();
    loop {
        let batch = tail.read(DurableEnd::unbounded(20), 7).unwrap();
        if batch.is_empty() {
            break;
        }
        seen += batch.len();
    }
    assert_eq!(seen, 20, "nothing past the durable sequence number");
    let rest = tail.read(DurableEnd::unbounded(30), 100).unwrap();
    assert_eq!(rest.first().map(|r| r.0), Some(21));
    assert_eq!(rest.last().map(|r| r.0), Some(30));
    // A new tail resumes after a recorded position, as the store does.
    let resumed = tail::Tail::new(&dir.0, 25)
        .read(DurableEnd::unbounded(30), 100)
        .unwrap();
    assert_eq!(
        resumed.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![26, 27, 28, 29, 30]
    );
}

#[test]
fn a_tail_far_behind_reads_in_bounded_chunks_and_misses_nothing() {
    let dir = TempDir::new("tail-behind");
    // 3,000 records of 4 KiB (12 MB, three read chunks) in one segment: a
    // tail that read it all at once would hold more than two chunks.
    let (outcome, _) = collect(&dir.0).unwrap();
    let journal = Journal::start(options(&dir.0, 1 << 30), &outcome).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let payload = |i: u64| {
        let mut bytes = format!("record {i} ").into_bytes();
        bytes.resize(4096, b'x');
        bytes
    };
    let commits: Vec<_> = (1..=3_000).map(|i| journal.submit(payload(i))).collect();
    runtime.block_on(async {
        for commit in commits {
            commit.durable().await.unwrap();
        }
    });
    journal.shutdown();
    let log_bytes: u64 = list_segments(&dir.0)
        .unwrap()
        .iter()
        .map(|(_, path)| fs::metadata(path).unwrap().len())
        .sum();
    assert!(log_bytes > 2 * tail::READ_CHUNK_BYTES as u64);
    let mut tail = tail::Tail::new(&dir.0, 0);
    let mut next = 1u64;
    loop {
        let batch = tail.read(DurableEnd::unbounded(3_000), 100).unwrap();
        if batch.is_empty() {
            break;
        }
        for (seq, bytes) in batch {
            assert_eq!((seq, bytes), (next, payload(next)));
            next += 1;
        }
        assert!(
            tail.buffered_bytes() < 2 * tail::READ_CHUNK_BYTES,
            "the tail holds {} bytes",
            tail.buffered_bytes()
        );
    }
    assert_eq!(next, 3_001, "every record, once, in order");
}

#[test]
fn checkpoints_replace_older_ones_and_covered_segments_are_deleted() {
    let dir = TempDir::new("checkpoint");
    let snapshots = dir.0.join("snapshots");
    fs::create_dir_all(&snapshots).unwrap();
    assert_eq!(checkpoint::load_latest(&snapshots).unwrap(), None);
    let engine = crate::sale::Engine::new(
        crate::sale::EngineLimits {
            shard_count: 2,
            sales_max: 1,
            items_per_sale_max: 1,
            stock_per_item_max: 1,
            orders_max: 1,
            hold_seconds_min: crate::sale::engine::HOLD_SECONDS_MIN,
            stock_from_leases: false,
        },
        0,
    );
    checkpoint::write(&snapshots, &engine.snapshot(7)).unwrap();
    checkpoint::write(&snapshots, &engine.snapshot(12)).unwrap();
    assert_eq!(
        checkpoint::load_latest(&snapshots).unwrap().map(|s| s.seq),
        Some(12)
    );
    assert_eq!(
        fs::read_dir(&snapshots).unwrap().count(),
        1,
        "the older one is gone"
    );

    for _ in 0..3 {
        write_records(&dir.0, 150, 10); // a segment (at least) per round
    }
    let before = list_segments(&dir.0).unwrap();
    assert!(before.len() >= 3, "{before:?}");
    let covered = before[2].0 - 1; // the first two segments end here
    assert_eq!(
        checkpoint::delete_covered_segments(&dir.0, covered).unwrap(),
        2
    );
    let after = list_segments(&dir.0).unwrap();
    assert_eq!(after[0].0, before[2].0);
    // Replay from the covered position still reads the rest, in order.
    let mut seqs = Vec::new();
    replay(&dir.0, covered, 1024, |seq, _| {
        seqs.push(seq);
        Ok(())
    })
    .unwrap();
    assert_eq!(seqs, ((covered + 1)..=30).collect::<Vec<u64>>());
    // The newest segment survives whatever the position says.
    assert_eq!(
        checkpoint::delete_covered_segments(&dir.0, 1_000).unwrap(),
        after.len() - 1
    );
    assert_eq!(list_segments(&dir.0).unwrap().len(), 1);
}

#[test]
fn a_submit_after_shutdown_fails_instead_of_hanging() {
    let dir = TempDir::new("after-shutdown");
    let (outcome, _) = collect(&dir.0).unwrap();
    let journal = Journal::start(options(&dir.0, 1 << 30), &outcome).unwrap();
    journal.shutdown();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let result = runtime.block_on(async {
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            journal.submit(b"late".to_vec()).durable(),
        )
        .await
    });
    assert!(
        matches!(result, Ok(Err(JournalError::Unavailable(_)))),
        "{result:?}"
    );
}

#[test]
fn unsynced_mode_still_writes_everything_by_shutdown() {
    let dir = TempDir::new("unsynced");
    let (outcome, _) = collect(&dir.0).unwrap();
    let mut unsynced = options(&dir.0, 4096);
    unsynced.durability = Durability::None;
    let journal = Journal::start(unsynced, &outcome).unwrap();
    for i in 0..1_000 {
        let commit = journal.submit(format!("record {i}").into_bytes());
        assert!(matches!(
            commit,
            writer::Commit::Ready(Ok(0)) | writer::Commit::Waiting(_)
        ));
    }
    journal.shutdown();
    let (outcome, records) = collect(&dir.0).unwrap();
    assert_eq!((outcome.last_seq, records.len()), (1_000, 1_000));
}
#[test]
fn unsynced_records_are_written_without_a_wake_per_submit_and_without_a_shutdown() {
    let dir = TempDir::new("unsynced-gather");
    let (outcome, _) = collect(&dir.0).unwrap();
    let mut unsynced = options(&dir.0, 1 << 30);
    unsynced.durability = Durability::None;
    let journal = Journal::start(unsynced, &outcome).unwrap();
    // A lone record after the writer went idle, then a burst: both reach
    // the file while the journal runs, whatever the writer was doing.
    journal.submit(b"lone".to_vec());
    wait_until("the lone record is written", || journal.durable_seq() == 1);
    // The writer is idle now (parked for IDLE_PARK, 30 s in unit tests):
    // only the submits themselves can wake it within wait_until's 10 s.
    std::thread::sleep(std::time::Duration::from_millis(20));
    for i in 0..5_000 {
        journal.submit(format!("burst {i}").into_bytes());
    }
    wait_until("the burst is written", || journal.durable_seq() == 5_001);
    let (outcome, records) = collect(&dir.0).unwrap();
    assert_eq!((outcome.last_seq, records.len()), (5_001, 5_001));
    journal.shutdown();
}

// ---- group commit against a sync that is slow or fails -------------------

/// Every record in these tests is 10 bytes of payload after the header.
const RECORD_BYTES: u64 = HEADER_BYTES as u64 + 10;

fn start_with_sync(
    dir: &Path,
    sync: impl Fn(&fs::File) -> std::io::Result<()> + Send + Sync + 'static,
) -> Journal {
    let (outcome, _) = collect(dir).unwrap();
    Journal::start_with_sync(options(dir, 1 << 30), &outcome, Box::new(sync)).unwrap()
}

fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !condition() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// How long a held sync waits for its release: bounded, so a failing test
/// ends instead of waiting for a release its unwinding never sends.
const RELEASE_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(10);

/// A sync that waits for a token each time (dropping the sender lets the
/// rest through), with the count of syncs begun.
fn gated_sync() -> (
    impl Fn(&fs::File) -> std::io::Result<()> + Send + Sync + 'static,
    std::sync::mpsc::Sender<()>,
    impl Fn() -> usize,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (tokens, gate) = std::sync::mpsc::channel::<()>();
    let gate = std::sync::Mutex::new(gate);
    let syncs_started = Arc::new(AtomicUsize::new(0));
    let sync = {
        let syncs_started = Arc::clone(&syncs_started);
        move |file: &fs::File| {
            syncs_started.fetch_add(1, Ordering::SeqCst);
            let _ = gate.lock().unwrap().recv_timeout(RELEASE_WAIT_MAX);
            file.sync_data()
        }
    };
    (sync, tokens, move || syncs_started.load(Ordering::SeqCst))
}

#[test]
fn a_record_is_reported_durable_only_after_a_sync_that_covers_it() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let dir = TempDir::new("covered");
    // The bytes a finished sync vouches for: the file's length when it began.
    let covered = Arc::new(AtomicU64::new(0));
    let journal = Arc::new(start_with_sync(&dir.0, {
        let covered = Arc::clone(&covered);
        move |file| {
            let length = file.metadata()?.len();
            std::thread::sleep(std::time::Duration::from_micros(300));
            file.sync_data()?;
            covered.fetch_max(length, Ordering::SeqCst);
            Ok(())
        }
    }));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    runtime.block_on(async {
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let (journal, covered) = (Arc::clone(&journal), Arc::clone(&covered));
                tokio::spawn(async move {
                    for _ in 0..20 {
                        let seq = journal.submit(vec![7; 10]).durable().await.unwrap();
                        let synced = covered.load(Ordering::SeqCst);
                        assert!(
                            synced >= seq * RECORD_BYTES,
                            "{seq} acknowledged, {synced} B synced"
                        );
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    journal.shutdown();
    assert_eq!(collect(&dir.0).unwrap().1.len(), 64 * 20);
}

#[test]
fn records_arriving_during_a_sync_share_the_next_write_and_sync() {
    let dir = TempDir::new("overlap");
    let (sync, tokens, started) = gated_sync();
    let journal = start_with_sync(&dir.0, sync);
    let file_bytes = || {
        fs::metadata(&list_segments(&dir.0).unwrap()[0].1)
            .unwrap()
            .len()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();

    let first = journal.submit(vec![1; 10]);
    wait_until("the first sync starts", || started() == 1);
    let second = journal.submit(vec![2; 10]);
    let third = journal.submit(vec![3; 10]);
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(file_bytes(), RECORD_BYTES, "one write per sync");
    assert_eq!(journal.durable_seq(), 0, "nothing is durable mid-sync");

    tokens.send(()).unwrap();
    assert_eq!(runtime.block_on(first.durable()).unwrap(), 1);
    wait_until("the second sync starts", || started() == 2);
    assert_eq!(
        file_bytes(),
        3 * RECORD_BYTES,
        "both latecomers in one write"
    );
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(
        journal.durable_seq(),
        1,
        "the first sync began before the second write: it does not cover it"
    );

    tokens.send(()).unwrap();
    assert_eq!(runtime.block_on(second.durable()).unwrap(), 2);
    assert_eq!(runtime.block_on(third.durable()).unwrap(), 3);
    assert_eq!(started(), 2, "the latecomers shared one sync");
    drop(tokens);
    journal.shutdown();
}

#[test]
fn a_failed_sync_fails_its_records_and_everything_after() {
    let dir = TempDir::new("sync-fails");
    let syncs = std::sync::atomic::AtomicUsize::new(0);
    let journal = start_with_sync(&dir.0, move |file| {
        if syncs.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 1 {
            return Err(std::io::Error::other("injected: disk gone"));
        }
        file.sync_data()
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert_eq!(journal.submit(vec![1; 10]).durable().await.unwrap(), 1);
        let lost = journal.submit(vec![2; 10]).durable().await;
        assert!(matches!(lost, Err(JournalError::Io { .. })), "{lost:?}");
        assert!(!journal.is_healthy());
        let later = journal.submit(vec![3; 10]).durable().await;
        assert!(
            matches!(later, Err(JournalError::Unavailable(_))),
            "{later:?}"
        );
        let barrier = journal.barrier().durable().await;
        assert!(barrier.is_err(), "{barrier:?}");
    });
    assert_eq!(journal.durable_seq(), 1);
    journal.shutdown();
}

#[test]
fn shutdown_makes_every_queued_record_durable() {
    let dir = TempDir::new("shutdown-flush");
    let journal = start_with_sync(&dir.0, |file| {
        std::thread::sleep(std::time::Duration::from_millis(1));
        file.sync_data()
    });
    let commits: Vec<_> = (0..2_000).map(|_| journal.submit(vec![5; 10])).collect();
    journal.shutdown();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let seqs: Vec<u64> = runtime.block_on(async {
        let mut seqs = Vec::new();
        for commit in commits {
            seqs.push(commit.durable().await.unwrap());
        }
        seqs
    });
    assert_eq!(seqs, (1..=2_000).collect::<Vec<u64>>());
    assert_eq!(journal.durable_seq(), 2_000);
    assert_eq!(collect(&dir.0).unwrap().1.len(), 2_000);
}

/// Options for preallocated segments of `segment_bytes_max`.
fn preallocated(dir: &Path, segment_bytes_max: u64) -> JournalOptions {
    JournalOptions {
        preallocate: true,
        ..options(dir, segment_bytes_max)
    }
}

/// Writes records `first..first + count` ("record <i>;", the last padded
/// to `last_bytes` if longer) after a replay, and returns where the journal
/// said its durable bytes end.
fn write_numbered(
    options: JournalOptions,
    first: usize,
    count: usize,
    last_bytes: usize,
) -> DurableEnd {
    let (outcome, _) = collect(&options.dir).unwrap();
    let journal = Journal::start(options, &outcome).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let payload = |i: usize| {
        let mut bytes = format!("record {i};").into_bytes();
        if i + 1 == first + count {
            bytes.resize(bytes.len().max(last_bytes), b' ');
        }
        bytes
    };
    for chunk in (first..first + count).collect::<Vec<_>>().chunks(100) {
        let commits: Vec<_> = chunk.iter().map(|i| journal.submit(payload(*i))).collect();
        runtime.block_on(async {
            for commit in commits {
                commit.durable().await.unwrap();
            }
        });
    }
    let end = journal.durable_end();
    journal.shutdown();
    end
}

fn assert_numbered(records: &Records, count: usize) {
    assert_eq!(records.len(), count);
    for (index, (seq, payload)) in records.iter().enumerate() {
        assert_eq!(*seq, index as u64 + 1);
        assert!(payload.starts_with(format!("record {index};").as_bytes()));
    }
}

const SPARE_TEST_SEGMENT_BYTES: u64 = 64 * 1024;

/// Two runs on preallocated segments. The first grows its segment past half
/// of it only with its last record (one commit), so the spare it then makes
/// is still unused at shutdown, which keeps it; the second run moves on to
/// that spare after its first commit.
fn two_runs_onto_a_spare(dir: &Path) -> (DurableEnd, Vec<(u64, PathBuf)>) {
    let options = || preallocated(dir, SPARE_TEST_SEGMENT_BYTES);
    write_numbered(options(), 0, 100, SPARE_TEST_SEGMENT_BYTES as usize / 2);
    assert!(
        dir.join(segment::SPARE_NAME).exists(),
        "past half a segment a spare is made, and kept for the next start"
    );
    let end = write_numbered(options(), 100, 900, 0);
    (end, list_segments(dir).unwrap())
}
#[test]
fn without_fdatasync_no_spare_is_made() {
    let dir = TempDir::new("prealloc-none");
    let options = JournalOptions {
        durability: Durability::None,
        ..preallocated(&dir.0, SPARE_TEST_SEGMENT_BYTES)
    };
    write_numbered(options, 0, 100, SPARE_TEST_SEGMENT_BYTES as usize / 2);
    assert!(
        !dir.0.join(segment::SPARE_NAME).exists(),
        "a spare only helps a commit that syncs"
    );
    let (_, records) = collect(&dir.0).unwrap();
    assert_numbered(&records, 100);
}

#[test]
fn preallocated_segments_are_overwritten_in_place_and_replay_stops_at_their_zeros() {
    let dir = TempDir::new("prealloc");
    let (end, segments) = two_runs_onto_a_spare(&dir.0);
    assert_eq!(segments.len(), 2, "{segments:?}");
    let first = fs::read(&segments[0].1).unwrap();
    assert_eq!(
        segment::written_len(&first),
        first.len(),
        "the first segment grew with its records: no zeros"
    );
    let second_length = fs::metadata(&segments[1].1).unwrap().len();
    assert_eq!(
        second_length, SPARE_TEST_SEGMENT_BYTES,
        "the second is the spare, moved to at the next start's first commit"
    );
    assert_eq!(
        (end.seq, end.segment_first_seq),
        (1_000, segments[1].0),
        "the journal says where its records end"
    );
    assert!(end.segment_bytes < second_length);
    let (outcome, records) = collect(&dir.0).unwrap();
    assert_numbered(&records, 1_000);
    assert_eq!(
        outcome.tail,
        Some((segments[1].1.clone(), end.segment_bytes)),
        "replay stops where the zeros begin"
    );
    assert_eq!(outcome.truncated_bytes, 0, "zeros are room, not damage");

    // A third run writes on after the records, not after the zeros, and
    // fills the spare segment: it rotates.
    write_numbered(
        preallocated(&dir.0, SPARE_TEST_SEGMENT_BYTES),
        1_000,
        3_000,
        0,
    );
    let (outcome, records) = collect(&dir.0).unwrap();
    assert_numbered(&records, 4_000);
    assert_eq!(outcome.last_seq, 4_000);
    assert!(list_segments(&dir.0).unwrap().len() >= 3);
}

#[test]
fn a_torn_tail_in_a_preallocated_segment_is_zeroed_and_the_segment_keeps_its_room() {
    let dir = TempDir::new("prealloc-torn");
    let (end, segments) = two_runs_onto_a_spare(&dir.0);
    let path = &segments[1].1;
    let mut torn = Vec::new();
    encode(1_001, b"a record that never finished", &mut torn);
    let mut bytes = fs::read(path).unwrap();
    let at = end.segment_bytes as usize;
    bytes[at..at + HEADER_BYTES + 4].copy_from_slice(&torn[..HEADER_BYTES + 4]);
    fs::write(path, &bytes).unwrap();

    let (outcome, records) = collect(&dir.0).unwrap();
    assert_numbered(&records, 1_000);
    assert_eq!(outcome.truncated_bytes, (HEADER_BYTES + 4) as u64);
    let after = fs::read(path).unwrap();
    assert_eq!(
        after.len() as u64,
        SPARE_TEST_SEGMENT_BYTES,
        "still preallocated"
    );
    assert_eq!(
        segment::written_len(&after),
        at,
        "the torn bytes are zeros again"
    );
    write_numbered(preallocated(&dir.0, SPARE_TEST_SEGMENT_BYTES), 1_000, 10, 0);
    assert_numbered(&collect(&dir.0).unwrap().1, 1_010);
}

#[test]
fn zeros_with_records_after_them_are_damage_not_room() {
    let dir = TempDir::new("prealloc-zeroed");
    let (_, segments) = two_runs_onto_a_spare(&dir.0);
    let path = &segments[1].1;
    let mut bytes = fs::read(path).unwrap();
    // A zeroed sector at the start of the segment, records after it, and
    // more bytes of them than a torn tail could hold.
    bytes[..512].fill(0);
    fs::write(path, &bytes).unwrap();
    match collect_within(&dir.0, 1024).unwrap_err() {
        JournalError::Corrupt {
            segment, offset, ..
        } => assert_eq!((&segment, offset), (path, 0)),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn a_tail_reads_no_further_than_the_durable_end_of_the_segment_being_written() {
    let dir = TempDir::new("prealloc-tail");
    let (end, _) = two_runs_onto_a_spare(&dir.0);
    let mut tail = tail::Tail::new(&dir.0, 0);
    let mut read = Vec::new();
    loop {
        let batch = tail.read(end, 1_000).unwrap();
        if batch.is_empty() {
            break;
        }
        read.extend(batch);
    }
    assert_numbered(&read, 1_000);
    assert_eq!(tail.buffered_bytes(), 0, "not a byte of the zeros was read");
    // The same read without the bound takes in the zeros.
    let mut unbounded = tail::Tail::new(&dir.0, 500);
    while !unbounded
        .read(DurableEnd::unbounded(1_000), 1_000)
        .unwrap()
        .is_empty()
    {}
    assert!(unbounded.buffered_bytes() > 0);
}

/// A journal that gathers for `gather` once a batch holds two records,
/// its syncs gated as by [`gated_sync`].
fn gathering(
    dir: &Path,
    gather: std::time::Duration,
) -> (Journal, std::sync::mpsc::Sender<()>, impl Fn() -> usize) {
    let (sync, tokens, started) = gated_sync();
    let options = JournalOptions {
        commit_gather_min_records: 2,
        commit_gather: gather,
        ..options(dir, 1 << 30)
    };
    let (outcome, _) = collect(dir).unwrap();
    let journal = Journal::start_with_sync(options, &outcome, Box::new(sync)).unwrap();
    (journal, tokens, started)
}

#[test]
fn a_busy_batch_waits_for_the_records_behind_it_and_they_share_its_sync() {
    let dir = TempDir::new("gather");
    let (journal, tokens, started) = gathering(&dir.0, std::time::Duration::from_millis(300));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // A lone record: below the threshold, written at once.
    let first = journal.submit(vec![1; 10]);
    wait_until("the first sync starts", || started() == 1);
    // Two arrive during that sync: together they make a busy batch, which
    // waits; a third arriving during the wait joins it.
    let second = journal.submit(vec![2; 10]);
    let third = journal.submit(vec![3; 10]);
    tokens.send(()).unwrap();
    assert_eq!(runtime.block_on(first.durable()).unwrap(), 1);
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!(started(), 1, "the busy batch is still gathering");
    let fourth = journal.submit(vec![4; 10]);
    wait_until("the second sync starts", || started() == 2);
    let file_bytes = fs::metadata(&list_segments(&dir.0).unwrap()[0].1)
        .unwrap()
        .len();
    assert_eq!(
        file_bytes,
        4 * RECORD_BYTES,
        "the latecomer is in the gathered write"
    );
    drop(tokens);
    for (commit, seq) in [(second, 2), (third, 3), (fourth, 4)] {
        assert_eq!(runtime.block_on(commit.durable()).unwrap(), seq);
    }
    assert_eq!(started(), 2, "three records, one sync");
    journal.shutdown();
}

#[test]
fn a_lone_record_is_not_held_back_by_the_gathering_wait() {
    let dir = TempDir::new("gather-lone");
    let (journal, tokens, started) = gathering(&dir.0, std::time::Duration::from_secs(30));
    drop(tokens);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let durable = runtime.block_on(async {
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            journal.submit(vec![1; 10]).durable(),
        )
        .await
    });
    assert_eq!(durable.expect("not held for the 30 s wait").unwrap(), 1);
    assert_eq!(started(), 1);
    journal.shutdown();
}

/// The writer thread asks the kernel for its policy and reads it back:
/// `SCHED_BATCH` by default, `SCHED_OTHER` when configured so.
#[test]
fn the_writer_runs_under_the_scheduling_policy_it_was_given() {
    for policy in [ThreadPolicy::Batch, ThreadPolicy::Normal] {
        let dir = TempDir::new("writer-policy");
        let options = JournalOptions {
            writer_policy: policy,
            ..options(&dir.0, 1 << 20)
        };
        let (outcome, _) = collect(&dir.0).expect("empty journal");
        let journal = Journal::start(options, &outcome).expect("journal starts");
        // A resolved barrier means the writer is running: its policy is set.
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
            .block_on(journal.barrier().durable())
            .expect("the barrier resolves");
        assert_eq!(journal.writer_policy(), Some(policy));
        journal.shutdown();
    }
}

#[test]
fn a_thread_with_a_relay_gets_every_answer_through_it_failures_included() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = TempDir::new("relay");
    let failing = Arc::new(AtomicBool::new(false));
    let journal = Arc::new(start_with_sync(&dir.0, {
        let failing = Arc::clone(&failing);
        move |file| {
            if failing.load(Ordering::SeqCst) {
                return Err(std::io::Error::other("injected: disk gone"));
            }
            file.sync_data()
        }
    }));
    let submitter = Arc::clone(&journal);
    let (seqs, failed, answered) = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async move {
            relay::install_here();
            let relay = relay::current().expect("installed on this thread");
            let within = |commit: Commit| {
                tokio::time::timeout(std::time::Duration::from_secs(10), commit.durable())
            };
            // Concurrent waiters, so commits answer several at once.
            let waits: Vec<_> = (0..50u8)
                .map(|index| tokio::spawn(within(submitter.submit(vec![index; 10]))))
                .collect();
            let mut seqs = Vec::new();
            for wait in waits {
                seqs.push(wait.await.unwrap().expect("answered").unwrap());
            }
            failing.store(true, Ordering::SeqCst);
            let failed = within(submitter.submit(vec![9; 10]))
                .await
                .expect("a failure is answered too");
            (seqs, failed, relay.answered())
        })
    })
    .join()
    .unwrap();
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (1..=50).collect::<Vec<u64>>());
    assert!(matches!(failed, Err(JournalError::Io { .. })), "{failed:?}");
    assert_eq!(answered, 51, "every answer went through the relay");
    // A thread without a relay is answered directly.
    assert!(relay::current().is_none());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let direct = runtime.block_on(journal.submit(vec![7; 10]).durable());
    assert!(direct.is_err(), "{direct:?}");
    journal.shutdown();
}
