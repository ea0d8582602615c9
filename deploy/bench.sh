#!/usr/bin/env bash
# Benchmark: builds in release mode and runs the bench tool (tools/src/bench/),
# which starts the real scheduler and two drone workers against a vhost and SQLite
# database of its own and prints throughput, latencies, the naive ceiling measured in
# the same run, and memory. Record the figures in BENCHMARKS.md.
#
# usage: deploy/bench.sh [--jobs N] [--idle-jobs N] [--hosts N] [--capacity N]
#        deploy/bench.sh --scale [--hosts N] [--entries N] [--capacity N] [--seconds N]
#        deploy/bench.sh --parse [--repeat N]
#        deploy/bench.sh --pages [--jobs N] [--requests N]
#        deploy/bench.sh --lab [--drones N] [--capacity N] [--queued N] [--seconds N] ...
#   --lab     a big lab on this machine (tools/src/lab/): 100 drone-worker processes of
#             capacity 50 against one scheduler on MariaDB, jobs sleeping 30 to 120 s
#             kept topped up (every slot busy, 20,000 entries queued) for ten minutes;
#             prints the wait from a freed slot to the next entry Running, the status
#             report lag, CPU, memory, queue depths and load. Run it as root on a quiet
#             machine: it starts about 10,000 processes.
#        deploy/bench.sh --lists [--jobs N] [--entries-per-job N] [--requests N]
#   --lists   how fast GET /api/jobs pages with 1,000,000 jobs and 10,000,000 entries
#             in MariaDB (tools/src/lists_bench.rs): each filter's first and next page;
#             needs a MariaDB server (root@127.0.0.1, or $AUTOTEST_BENCH_MYSQL_URL) and
#             the mysql client; it creates and drops its own database
#   --pages   how fast the scheduler serves its pages (tools/src/pages_bench.rs) with
#             100,000 jobs of history in SQLite: /jobs, filters, /results for a week
#   --parse   what parsing an entry's results costs the drone (tools/src/bin/parse_bench.rs):
#             a 10-test and a 10,000-test status log, a 10,000-case JUnit file
#   --scale   the scale benchmark instead (tools/src/scale.rs): 10,000 hosts
#             and 100,000 queued entries by default, and the time from a job's end to
#             the next entry Running, with the scheduler's memory
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
if [ "${1:-}" = "--parse" ]; then
    shift
    exec "$root/target/release/parse_bench" "$@"
fi
if [ "${1:-}" = "--lab" ]; then
    shift
    ensure_mariadb
    ulimit -n 65536 2>/dev/null || say "could not raise the open-file limit; many drones may not start"
    say "running the lab benchmark (about fifteen minutes with the defaults)"
    exec "$root/target/release/lab_bench" "$@"
fi
if [ "${1:-}" = "--lists" ]; then
    shift
    need_cmd mysql mariadb-client
    say "running the lists benchmark (filling the database takes minutes at full size)"
    exec "$root/target/release/lists_bench" "$@"
fi
if [ "${1:-}" = "--pages" ]; then
    shift
    exec "$root/target/release/pages_bench" "$@"
fi
if [ "${1:-}" = "--scale" ]; then
    shift
    say "running the scale benchmark (about two minutes)"
    exec "$root/target/release/scale_bench" "$@"
fi
say "running the benchmark (this takes a minute or two)"
exec "$root/target/release/bench" "$@"
