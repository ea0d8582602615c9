#!/usr/bin/env bash
# Quickstart: the whole system on this machine. Makes sure RabbitMQ and rsync are
# installed and running, builds in release mode, starts the scheduler (SQLite) and one
# local drone worker, creates a few hosts, submits a demo batch (one job fails on
# purpose), shows progress until all finish, and prints where the results are.
#
# usage: deploy/quickstart.sh          run (again: it stops a previous run first)
#        deploy/quickstart.sh --stop   stop the scheduler and worker it started
#
# Everything lives in quickstart-run/ at the top of the repository.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=deploy/lib.sh
. "$here/lib.sh"
root=$(cd "$here/.." && pwd)
run="$root/quickstart-run"
port=${AUTOTEST_QUICKSTART_PORT:-13467}
server="http://127.0.0.1:$port"
bin="$root/target/release"

stop_previous() {
    local name pid
    for name in drone-worker autotest-scheduler; do
        [ -f "$run/$name.pid" ] || continue
        pid=$(cat "$run/$name.pid")
        if kill -0 "$pid" 2>/dev/null; then
            say "stopping $name (pid $pid)"
            kill -TERM "$pid"
            for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
        rm -f "$run/$name.pid"
    done
}

if [ "${1:-}" = "--stop" ]; then
    stop_previous
    say "stopped"
    exit 0
fi

ensure_rust
ensure_rsync
ensure_rabbitmq

say "building in release mode (the first build takes a few minutes)"
(cd "$root" && cargo build --release --workspace --bins)

mkdir -p "$run"
stop_previous

# A vhost of its own, made afresh each run: nothing of another release (whose message
# schema may differ) or of another program is in the way.
vhost=autotest-quickstart
mq_api=http://127.0.0.1:15672/api
say "RabbitMQ vhost $vhost (made afresh; the management UI shows it)"
curl -fsS -u guest:guest -X DELETE "$mq_api/vhosts/$vhost" >/dev/null 2>&1 || true
curl -fsS -u guest:guest -X PUT "$mq_api/vhosts/$vhost" >/dev/null ||
    die "cannot create the vhost $vhost through RabbitMQ's management API ($mq_api)"
curl -fsS -u guest:guest -X PUT -H 'content-type: application/json' \
    -d '{"configure":".*","write":".*","read":".*"}' "$mq_api/permissions/$vhost/guest" >/dev/null ||
    die "cannot give guest the vhost $vhost"

say "writing $run/global_config.ini"
cat > "$run/global_config.ini" <<CONFIG
[AUTOTEST_WEB]
db_type: sqlite
database: $run/autotest.db

[SCHEDULER]
drones: localdrone
localdrone_max_processes: 3
results_host: localhost
results_dir: $run/results
http_listen: 127.0.0.1:$port

[DRONE]
results_dir: $run/drone-results

[AUTOSERV]
# A stand-in for autoserv that runs the control file as a shell script; a lab
# points this at /usr/local/autotest/server/autoserv.
command: $root/deploy/demo-autoserv.sh -p -r {results_dir} -m {hosts} -u {owner} -l {job_name} {control_file}

[BROKER]
url: amqp://guest:guest@127.0.0.1:5672/$vhost
CONFIG

say "starting the scheduler (log: $run/scheduler.log)"
nohup "$bin/autotest-scheduler" --config "$run/global_config.ini" >> "$run/scheduler.log" 2>&1 &
echo $! > "$run/autotest-scheduler.pid"
if ! wait_until 30 curl -fsS "$server/api/health" >/dev/null 2>&1; then
    tail -n 20 "$run/scheduler.log" >&2
    die "the scheduler did not answer on $server within 30 s (log above)"
fi

say "starting the drone worker localdrone (log: $run/drone-worker.log)"
nohup "$bin/drone-worker" --config "$run/global_config.ini" --name localdrone >> "$run/drone-worker.log" 2>&1 &
echo $! > "$run/drone-worker.pid"

export ATEST_SERVER="$server"
atest() { "$bin/atest" "$@"; }

# Changes need a user the scheduler knows: make this account an admin and keep its
# token where atest looks for it (unless the file already holds a working token).
admin=$(id -un)
token_file=$(atest_token_file)
ensure_admin_token "$bin/atest" "$server" "$admin" \
    "$bin/autotest-scheduler" --config "$run/global_config.ini"

say "creating hosts host1..host4 (label demo)"
for host in host1 host2 host3 host4; do
    if ! out=$(atest host create "$host" --label demo 2>&1); then
        case "$out" in
            *"already exists"*) say "  $host already exists" ;;
            *) die "$out" ;;
        esac
    fi
done

controls="$run/controls"
mkdir -p "$controls"
# shellcheck disable=SC2016 # $AUTOSERV_HOSTS is for the control files to expand
printf 'echo "hello from $AUTOSERV_HOSTS"\nsleep 1\necho done > result.txt\n' > "$controls/pass.control"
# shellcheck disable=SC2016
printf 'echo "running a longer test on $AUTOSERV_HOSTS"\nsleep 3\necho ok > result.txt\n' > "$controls/long.control"
printf 'echo "this test fails on purpose" >&2\nexit 1\n' > "$controls/fail.control"

say "submitting the demo batch"
ids=()
submit() { ids+=("$(atest job create "$@")"); }
submit --name "smoke test" --control-file "$controls/pass.control" --hosts host1,host2,host3,host4
submit --name "long test" --control-file "$controls/long.control" --hosts host1,host2
submit --name "failing test" --control-file "$controls/fail.control" --hosts host3
submit --name "urgent test" --control-file "$controls/pass.control" --hosts host4 --priority 10
submit --name "sleepy test" --control-file "$controls/long.control" --hosts host2,host3
say "submitted jobs ${ids[*]}"

say "waiting for them to finish"
atest job wait "${ids[@]}" || say "(the \"failing test\" job fails on purpose: its control file exits 1)"

echo
for id in "${ids[@]}"; do
    atest job show "$id"
    echo
done
atest drone list
echo
say "results are on the results host under $run/results/<job_id>-<owner>/<host>/"
say "  for example: ls $run/results/${ids[0]}-$(id -un)/host1/"
say "  or over HTTP: curl $server/results/${ids[0]}-$(id -un)/host1/"
say "the scheduler and the worker are still running; try:"
say "  export ATEST_SERVER=$server"
say "  $bin/atest job list        (as $admin, with the token in $token_file)"
say "RabbitMQ's management UI (http://127.0.0.1:15672, guest/guest) shows the queue autotest.drone.localdrone in the vhost $vhost"
say "stop everything with: deploy/quickstart.sh --stop"
