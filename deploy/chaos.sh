#!/usr/bin/env bash
# The fault test: builds release binaries and runs the chaos tool (tools/src/chaos/),
# which starts the real scheduler and three drone workers (separate processes) on a vhost, SQLite
# database and temp directory of their own, with an sshd of its own as the results
# host, submits jobs of varying length and, at random (seeded) moments, kills workers
# and the scheduler with SIGKILL, restarts RabbitMQ, makes the results host unreachable
# for 20 s and aborts jobs. It prints one line of figures and fails if a job was lost,
# ran twice at once, or completed without its results on the results host.
#
# usage: deploy/chaos.sh [--short] [--jobs N] [--seed S]
#   --short    about 60 jobs and fewer faults (a few minutes; deploy/test.sh runs it)
#   --jobs N   how many jobs (default 500, or 60 with --short)
#   --seed S   replay a run (the seed is printed at the start and the end)
#
# It restarts the machine's RabbitMQ (rabbitmqctl stop_app / start_app) and lowers its
# consumer_timeout to 5 s for the duration of the run (restored at the end): do not
# run it beside other users of the same broker. AUTOTEST_CHAOS_KEEP=1 keeps the logs.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=deploy/lib.sh
. "$here/lib.sh"

usage() {
    sed -n '2,17s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
}

args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --short) args+=("$1") ;;
        --jobs | --seed)
            [ $# -ge 2 ] || die "$1 needs a value"
            case "$2" in
                '' | *[!0-9]*) die "$1 needs a number, got: $2" ;;
            esac
            args+=("$1" "$2")
            shift
            ;;
        -h | --help) usage; exit 0 ;;
        *) usage; die "unknown argument: $1" ;;
    esac
    shift
done

root=$(cd "$here/.." && pwd)
cd "$root"
ensure_rust
ensure_rsync
ensure_rabbitmq
timeout 60 rabbitmqctl -q eval 'ok.' >/dev/null 2>&1 ||
    die "rabbitmqctl does not work for $(id -un); the chaos run restarts RabbitMQ with it: run it as root"
ensure_sshd
need_cmd flock util-linux
need_cmd seq coreutils
say "building in release mode"
cargo build --release --workspace --bins
say "running the chaos test: target/release/chaos ${args[*]}"
exec "$root/target/release/chaos" "${args[@]}"
