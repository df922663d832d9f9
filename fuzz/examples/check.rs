//! Replays `replay` inputs outside libFuzzer, exactly as the target does
//! (the same `fuzz_targets/replay_input.rs`), and prints each outcome.
//!
//! Run from `fuzz/`: `cargo run --example check [FILE|DIR]...`; with no
//! argument it replays `corpus/replay/` and `artifacts/replay/`. A panic is
//! caught and reported (the panic message goes to stderr first).

#[path = "../fuzz_targets/replay_input.rs"]
mod replay_input;

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn inputs(args: Vec<PathBuf>) -> Vec<PathBuf> {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let args = if args.is_empty() {
        vec![
            crate_dir.join("corpus/replay"),
            crate_dir.join("artifacts/replay"),
        ]
    } else {
        args
    };
    let mut files = Vec::new();
    for arg in args {
        if arg.is_dir() {
            let mut entries: Vec<_> = fs::read_dir(&arg)
                .unwrap()
                .map(|entry| entry.unwrap().path())
                .filter(|path| path.is_file())
                .collect();
            entries.sort();
            files.extend(entries);
        } else {
            files.push(arg);
        }
    }
    files
}

fn main() {
    let dir = std::env::temp_dir().join(format!("flashgate-fuzz-check-{}", std::process::id()));
    let mut panics = 0;
    for file in inputs(std::env::args_os().skip(1).map(PathBuf::from).collect()) {
        let data = fs::read(&file).unwrap();
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let outcome = catch_unwind(AssertUnwindSafe(|| replay_input::replay_input(&dir, &data)));
        let name = file.file_name().unwrap().to_string_lossy();
        match outcome {
            Ok(Ok(outcome)) => println!(
                "{name}: Ok, {} records applied, last seq {}, {} bytes truncated",
                outcome.records_applied, outcome.last_seq, outcome.truncated_bytes
            ),
            Ok(Err(error)) => {
                let error = error.to_string().replace(&*dir.to_string_lossy(), "<dir>");
                println!("{name}: Err({error})");
            }
            Err(_) => {
                panics += 1;
                println!("{name}: PANIC");
            }
        }
    }
    let _ = fs::remove_dir_all(&dir);
    if panics > 0 {
        std::process::exit(1);
    }
}
