#!/usr/bin/env bash
# The whole test suite: unit tests, the loom and proptest models, the
# multi-threaded stress tests and the black-box HTTP tests, which start
# gateways on loopback (and the real binary) by themselves; the console's
# browser test in headless Chromium, promtool on the alert rules and a real
# /metrics scrape, and the schemathesis contract run (tests/contract.rs:
# docs/openapi.yaml validated, then fuzzed against a live gateway; `st` from
# the venv put on PATH below); and, across the
# workspace, the load generator's own tests (loadtest/: arguments, the
# verification, a small in-process run). Heavy load runs are never part of it.
# Nothing is skipped: a test that needs something absent fails.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
export PATH="${FLASHGATE_TEST_TOOLS:-$HOME/.cache/flashgate-test-tools}/venv/bin:$PATH"
cargo test --locked --workspace --all-features "$@"
