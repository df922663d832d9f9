#!/usr/bin/env bash
# The reference runs of docs/PERFORMANCE.md: every scenario against a
# gateway this tool starts (release build), fsync and none, 64 and 512
# connections, the flash scenario on a 3-node cluster beside one node,
# then memory per open hold. One JSON report per run in OUTDIR
# (default <target dir>/loadtest-results), the tables on stderr. Minutes of full load on
# every core: run it on a quiet machine, by hand, never in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir="${CARGO_TARGET_DIR:-target}"
out="${1:-$target_dir/loadtest-results}"
mkdir -p "$out"
cargo build --locked --release -p flashgate -p flashgate-loadtest
tool="$target_dir/release/flashgate-loadtest"
gateway="$target_dir/release/flashgate"

echo "== machine"
nproc
lscpu | head -15
free -m | head -2
df -hT "${TMPDIR:-/tmp}" | tail -1
uptime

run() {
    local name="$1"
    shift
    echo
    echo "== $name: flashgate-loadtest $*   (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
    # A failed verification is reported and the remaining runs go on.
    "$tool" "$@" --spawn "$gateway" --json >"$out/$name.json" || echo "!! $name exited $?"
}

for durability in fsync none; do
    for connections in 64 512; do
        run "flash-$connections-$durability" flash --connections "$connections" --durability "$durability"
        run "spread-$connections-$durability" spread --connections "$connections" --durability "$durability"
        run "soldout-$connections-$durability" soldout --connections "$connections" --durability "$durability"
        run "pay-$connections-$durability" pay --connections "$connections" --durability "$durability"
    done
done
# Cluster mode (needs the Redis of --redis-url, default 127.0.0.1:6379): three
# nodes after the single node in each round, Redis calls per order.
for durability in fsync none; do
    run "flash-cluster3-64-$durability" flash --cluster 3 --connections 64 --durability "$durability" \
        --rounds 2 --seconds 5
done
# The conventional design (hyper + one Redis Lua reservation per order, no
# token check, no durable write) on the same stream, beside flashgate and
# the ceiling (needs the Redis of --redis-url, default 127.0.0.1:6379).
for durability in fsync none; do
    for connections in 64 512; do
        run "flash-conventional-$connections-$durability" flash --conventional \
            --connections "$connections" --durability "$durability" --rounds 2 --seconds 5
    done
done
# Open loop at a fixed rate: latency from each request's due time.
run "flash-64-fsync-rate5000" flash --connections 64 --durability fsync --rate 5000
run "holds-1m-fsync" holds --requests 1000000 --connections 64 --durability fsync
# The same without a snapshot during the measurement, settled longer.
run "holds-1m-none-nosnapshot" holds --requests 1000000 --connections 64 --durability none \
    --settle-seconds 20 --gateway-env FLASHGATE__STORAGE__SNAPSHOT_EVERY_RECORDS=100000000
# One HTTP thread against a one-thread ceiling: rejections and orders with
# the generator's thread not competing for a core (docs/PERFORMANCE.md, run G).
run "soldout-64-fsync-1thread" soldout --connections 64 --durability fsync --ceiling-threads 1 \
    --gateway-env FLASHGATE__SERVER__WORKERS=1
run "flash-64-none-1thread" flash --connections 64 --durability none --ceiling-threads 1 \
    --gateway-env FLASHGATE__SERVER__WORKERS=1
# fsync at 512 connections with the gathering sleep on (off by default).
run "flash-512-fsync-gather300" flash --connections 512 --durability fsync \
    --gateway-env FLASHGATE__STORAGE__COMMIT_GATHER_US=300
