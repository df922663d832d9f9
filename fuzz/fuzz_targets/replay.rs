//! Arbitrary bytes as a journal directory, replayed into a fresh engine.
//!
//! The first input byte picks the segment layout, the rest becomes segment
//! files, and every record is parsed as a `sale::Event` and applied with
//! `Engine::apply`: see `replay_input.rs` (shared with `examples/check.rs`).
//! Any outcome (Ok, or an error) is fine; a panic, a hang or an abort is a
//! bug.
//!
//! The directory is per process, under `std::env::temp_dir()` (so `TMPDIR`
//! moves it: `/dev/shm` keeps the truncation's fsync cheap), emptied and
//! removed after every run.

#![no_main]

mod replay_input;

use libfuzzer_sys::fuzz_target;
use std::fs;
use std::path::PathBuf;
use std::sync::OnceLock;

fn run_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        std::env::temp_dir().join(format!("flashgate-fuzz-replay-{}", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let dir = run_dir();
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).expect("create the fuzz temp dir");
    let _outcome = replay_input::replay_input(dir, data);
    let _ = fs::remove_dir_all(dir);
});
