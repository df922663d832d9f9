//! The HTTP threads: placement, counting, stopping.

use super::*;
use std::sync::Mutex;

/// Runs `count` connections that report their thread's name and then
/// wait for `release`; returns the names in the order they ran.
fn names_of(
    threads: &HttpThreads,
    count: usize,
    release: &tokio::sync::watch::Receiver<bool>,
) -> Vec<String> {
    let names = Arc::new(Mutex::new(Vec::new()));
    let (ran, mut ran_all) = tokio::sync::mpsc::unbounded_channel::<()>();
    for _ in 0..count {
        let (names, ran, mut release) = (Arc::clone(&names), ran.clone(), release.clone());
        threads.spawn_connection(async move {
            let name = std::thread::current().name().unwrap_or("").to_string();
            names.lock().unwrap().push(name);
            let _ = ran.send(());
            let _ = release.wait_for(|released| *released).await;
        });
    }
    for _ in 0..count {
        ran_all.blocking_recv().expect("every connection runs");
    }
    let names = names.lock().unwrap().clone();
    names
}

fn serving(threads: &HttpThreads) -> Vec<usize> {
    threads
        .threads
        .iter()
        .map(|thread| thread.serving.load(Ordering::Acquire))
        .collect()
}

#[test]
fn connections_go_to_the_thread_serving_the_fewest_and_run_there() {
    let threads = HttpThreads::start(3, ThreadPolicy::Batch).unwrap();
    let (release, released) = tokio::sync::watch::channel(false);
    let mut names = names_of(&threads, 6, &released);
    names.sort();
    assert_eq!(
        names,
        ["http-0", "http-0", "http-1", "http-1", "http-2", "http-2"]
    );
    assert_eq!(serving(&threads), [2, 2, 2]);
    release.send(true).unwrap();
    while serving(&threads) != [0, 0, 0] {
        std::thread::sleep(Duration::from_millis(1));
    }
    // A thread left with fewer connections gets the next ones.
    let (_hold, held) = tokio::sync::watch::channel(false);
    let first = names_of(&threads, 2, &held);
    let next = names_of(&threads, 1, &held);
    let all = ["http-0", "http-1", "http-2"];
    let idle: Vec<_> = all
        .iter()
        .filter(|name| !first.contains(&name.to_string()))
        .collect();
    assert_eq!(idle.len(), 1);
    assert_eq!(&next[0], *idle[0]);
}

#[test]
fn zero_threads_means_one_per_core() {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    assert_eq!(
        HttpThreads::start(0, ThreadPolicy::Batch)
            .unwrap()
            .threads
            .len(),
        cores
    );
}

#[test]
fn stopping_ends_the_threads_and_drops_open_connections() {
    let threads = HttpThreads::start(2, ThreadPolicy::Normal).unwrap();
    let (_never, never_released) = tokio::sync::watch::channel(false);
    names_of(&threads, 4, &never_released);
    // Each connection holds a clone of this; dropping them all drops it.
    let dropped = Arc::new(());
    for _ in 0..2 {
        let dropped = Arc::clone(&dropped);
        threads.spawn_connection(async move {
            let _dropped = dropped;
            std::future::pending::<()>().await;
        });
    }
    assert_eq!(Arc::strong_count(&dropped), 3);
    threads.stop();
    assert_eq!(Arc::strong_count(&dropped), 1);
}

#[test]
fn a_connection_that_panics_still_gives_its_place_back() {
    let threads = HttpThreads::start(1, ThreadPolicy::Batch).unwrap();
    threads.spawn_connection(async { panic!("a handler bug") });
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while serving(&threads) != [0] {
        assert!(std::time::Instant::now() < deadline, "still counted");
        std::thread::sleep(Duration::from_millis(1));
    }
    // And the thread still serves.
    let (_hold, held) = tokio::sync::watch::channel(false);
    assert_eq!(names_of(&threads, 1, &held), ["http-0"]);
}

#[test]
fn the_connection_bound_refuses_past_its_max_and_counts_back_down() {
    let count = Arc::new(AtomicUsize::new(0));
    let first = Counted::within(&count, 2).expect("room");
    let second = Counted::within(&count, 2).expect("room");
    assert!(Counted::within(&count, 2).is_none(), "full");
    assert_eq!(count.load(Ordering::Acquire), 2, "a refusal takes nothing");
    drop(first);
    assert!(Counted::within(&count, 2).is_some(), "room again");
    drop(second);
    assert_eq!(count.load(Ordering::Acquire), 0);
}

#[test]
fn connections_run_under_the_configured_scheduling_policy() {
    for policy in [ThreadPolicy::Batch, ThreadPolicy::Normal] {
        let threads = HttpThreads::start(2, policy).unwrap();
        let (seen, mut seen_all) = tokio::sync::mpsc::unbounded_channel();
        for _ in 0..2 {
            let seen = seen.clone();
            threads.spawn_connection(async move {
                let _ = seen.send(ThreadPolicy::of_this_thread());
            });
        }
        for _ in 0..2 {
            let reported = seen_all.blocking_recv().expect("every connection runs");
            assert_eq!(reported, Some(policy));
        }
    }
}
