//! `flashgate-loadtest <scenario> [options]`; `--help` lists them.
//! Exit status: 0 the verification passed, 1 it failed, 2 the run could not
//! be made (bad arguments, no gateway, a set-up call refused).

use clap::Parser;
use flashgate_loadtest::cli::Cli;
use flashgate_loadtest::plan::Plan;
use flashgate_loadtest::scenario;
use std::process::ExitCode;

fn main() -> ExitCode {
    let plan = match Plan::from_cli(Cli::parse()) {
        Ok(plan) => plan,
        Err(problem) => {
            eprintln!("flashgate-loadtest: {problem}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(plan.client_threads)
        .thread_name("loadgen")
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("flashgate-loadtest: cannot start the runtime: {error}");
            return ExitCode::from(2);
        }
    };
    let json = plan.json;
    let report = match runtime.block_on(scenario::run(plan)) {
        Ok(report) => report,
        Err(problem) => {
            eprintln!("flashgate-loadtest: {problem}");
            return ExitCode::from(2);
        }
    };
    if json {
        eprint!("{}", report.render());
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(error) => {
                eprintln!("flashgate-loadtest: cannot write the JSON report: {error}");
                return ExitCode::from(2);
            }
        }
    } else {
        print!("{}", report.render());
    }
    if report.verification.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
