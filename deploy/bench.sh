#!/usr/bin/env bash
# Benchmark: builds in release mode and runs the bench tool (tests/src/bin/bench.rs),
# which starts the real scheduler and two drone workers against a vhost and SQLite
# database of its own and prints throughput, latencies, the naive ceiling measured in
# the same run, and memory. Record the figures in BENCHMARKS.md.
#
# usage: deploy/bench.sh [--jobs N] [--idle-jobs N] [--hosts N] [--capacity N]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=deploy/lib.sh
. "$here/lib.sh"
root=$(cd "$here/.." && pwd)
cd "$root"
ensure_rust
ensure_rsync
ensure_rabbitmq
say "building in release mode"
cargo build --release --workspace --bins
say "running the benchmark (this takes a minute or two)"
exec "$root/target/release/bench" "$@"
