#!/usr/bin/env bash
# Run the whole test suite: build, tests against SQLite and MariaDB (with a
# live RabbitMQ), rustfmt, clippy, the structure check (deploy/check-structure.py:
# file and function sizes, no module cycles), and the short chaos run if present.
#
# usage: deploy/test.sh [--quick] [-- CARGO_TEST_ARGS...]
#   --quick    skip cargo fmt / cargo clippy / the structure check
#   --         everything after it goes to `cargo test` (e.g. a test-name
#              filter; use `-- -- --nocapture` for the test binaries)
#
# Needs: cargo (rustup), rsync, ssh, rabbitmq-server, mariadb-server, curl,
# chromium and chromium-driver (the page tests drive a headless browser),
# python3 (with python3-venv: avocado-framework 113 and pytest are installed from
# the Python package registry into target/harness-venv, or $AUTOTEST_TEST_VENV).
# Run as root on Debian and missing packages are installed and services
# started; otherwise it says exactly what to install/start.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=deploy/lib.sh
. "$here/lib.sh"

usage() {
    sed -n '2,16s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
}

quick=0
test_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        -h | --help) usage; exit 0 ;;
        --) shift; test_args=("$@"); break ;;
        *) usage; die "unknown argument: $1 (cargo test arguments go after --)" ;;
    esac
    shift
done

root=$(cd "$here/.." && pwd)
cd "$root"
say "repository: $root"

ensure_rust
ensure_rsync
ensure_sshd
ensure_chromium
need_cmd openssl openssl
need_cmd python3 python3
ensure_rabbitmq
ensure_mariadb
# Real harnesses whose results the parsers are tested on.
export AUTOTEST_TEST_VENV=${AUTOTEST_TEST_VENV:-$root/target/harness-venv}
ensure_harness_venv "$AUTOTEST_TEST_VENV"
if [ "$quick" -eq 0 ]; then
    ensure_cargo_component fmt rustfmt
    ensure_cargo_component clippy clippy
fi

results=()
failed=0

# step NAME CMD...: run a step, record ok/FAILED, keep going.
step() {
    local name=$1
    shift
    say "---- $name: $*"
    local start=$SECONDS
    if "$@"; then
        results+=("$name: ok ($((SECONDS - start))s)")
    else
        local rc=$?
        results+=("$name: FAILED (exit $rc)")
        failed=$((failed + 1))
        say "---- $name FAILED (exit $rc)"
    fi
}

summary() {
    say "================ summary ================"
    local r
    for r in "${results[@]}"; do
        say "  $r"
    done
    if [ "$failed" -eq 0 ]; then
        say "ALL PASSED (${#results[@]} steps)"
    else
        say "FAILED: $failed of ${#results[@]} steps"
    fi
}

step "build" cargo build --workspace --bins
if [ "$failed" -ne 0 ]; then
    summary
    exit 1
fi

say "================ tests against SQLite (AUTOTEST_TEST_DB=sqlite) ================"
step "test (sqlite)" env AUTOTEST_TEST_DB=sqlite cargo test --workspace --no-fail-fast "${test_args[@]}"

say "================ tests against MariaDB (AUTOTEST_TEST_DB=mysql, $AUTOTEST_TEST_MYSQL_URL) ================"
step "test (mysql)" env AUTOTEST_TEST_DB=mysql AUTOTEST_TEST_MYSQL_URL="$AUTOTEST_TEST_MYSQL_URL" \
    cargo test --workspace --no-fail-fast "${test_args[@]}"

if [ "$quick" -eq 0 ]; then
    step "fmt" cargo fmt --all -- --check
    step "clippy" cargo clippy --workspace --all-targets -- -D warnings
    step "structure" python3 "$root/deploy/check-structure.py"
else
    say "--quick: skipping cargo fmt and cargo clippy"
fi

if [ -x "$root/deploy/chaos.sh" ]; then
    step "chaos (short)" "$root/deploy/chaos.sh" --short
else
    say "deploy/chaos.sh not present (or not executable); skipping chaos test"
fi

summary
[ "$failed" -eq 0 ]
