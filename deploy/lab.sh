#!/usr/bin/env bash
# A small lab on one machine, from network namespaces: the scheduler and RabbitMQ in
# the machine's own namespace; two drones and a results host each in a namespace of
# their own, each running sshd, joined by a bridge. The workers reach RabbitMQ over
# the bridge with their own least-privilege users (deploy/rabbitmq-setup.sh) and push
# results to the results host with rsync over SSH, with a key made for the lab and
# host keys checked.
#
# usage: deploy/lab.sh up|status|down
#   up      builds the release binaries, makes the lab, starts everything, and ends
#           by printing `export ATEST_SERVER=URL` for the lab's scheduler
#   status  says which parts are up; exits non-zero when a part is down
#   down    removes everything `up` made: processes, namespaces, bridge, the extra
#           RabbitMQ listener, the vhost and its users, the lab directory
#
# Needs root, iproute2, rsync, sshd, RabbitMQ (installed if missing, as root).
# Addresses: bridge atl-br 10.77.0.1/24 (the scheduler's side, where RabbitMQ gets an
# extra listener), drone1 10.77.0.11, drone2 10.77.0.12, results host 10.77.0.13.
# AUTOTEST_LAB_DIR (default /var/tmp/autotest-lab) holds configs, keys, logs, results;
# AUTOTEST_LAB_HTTP_PORT is the scheduler's port (default 13480); AUTOTEST_LAB_BIN, a
# directory with the binaries to use instead of building them.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=deploy/lib.sh
. "$here/lib.sh"
root=$(cd "$here/.." && pwd)

usage() {
    sed -n '2,23s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
}

lab=${AUTOTEST_LAB_DIR:-/var/tmp/autotest-lab}
vhost=autotest-lab
prefix=autotest-lab-
bridge=atl-br
net=10.77.0
drones=(drone1 drone2)
declare -A addr=([drone1]=$net.11 [drone2]=$net.12 [results]=$net.13)
http_port=${AUTOTEST_LAB_HTTP_PORT:-13480}
api=${AUTOTEST_TEST_RABBITMQ_API:-http://guest:guest@127.0.0.1:15672}

ns() { echo "atl-$1"; }
pidfile() { echo "$lab/run/$1.pid"; }
alive() { [ -f "$(pidfile "$1")" ] && kill -0 "$(cat "$(pidfile "$1")")" 2>/dev/null; }

api_call() { # METHOD PATH
    local base auth
    base=$(python3 -c 'import sys,urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(f"{p.scheme}://{p.hostname}:{p.port or 15672}")' "$api")
    auth=$(python3 -c 'import sys,urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(u.unquote(p.username or "guest") + ":" + u.unquote(p.password or "guest"))' "$api")
    curl -fsS -m 20 -u "$auth" -X "$1" "$base$2"
}

# The network: a bridge, and a namespace per machine with a veth on the bridge.
net_up() {
    if ip link show "$bridge" >/dev/null 2>&1; then
        die "$bridge exists already: the lab is up (deploy/lab.sh status), or left over (deploy/lab.sh down)"
    fi
    ip link add "$bridge" type bridge
    ip addr add "$net.1/24" dev "$bridge"
    ip link set "$bridge" up
    local host n
    for host in "${drones[@]}" results; do
        n=$(ns "$host")
        ip netns add "$n"
        ip link add "atl-$host" type veth peer name eth0 netns "$n"
        ip link set "atl-$host" master "$bridge" up
        ip netns exec "$n" ip addr add "${addr[$host]}/24" dev eth0
        ip netns exec "$n" ip link set eth0 up
        ip netns exec "$n" ip link set lo up
    done
    say "network: bridge $bridge $net.1/24; ${drones[*]} and results in their own namespaces"
}

# sshd in a namespace, with the lab's host key for that machine and the lab key.
sshd_up() {
    local host=$1 dir="$lab/ssh"
    ssh-keygen -q -t ed25519 -N '' -f "$dir/${host}_host_key" -C "$host.lab"
    printf '%s %s\n' "${addr[$host]}" "$(cut -d' ' -f1,2 "$dir/${host}_host_key.pub")" >>"$dir/known_hosts"
    cat >"$dir/${host}_sshd_config" <<EOF
ListenAddress ${addr[$host]}
Port 22
HostKey $dir/${host}_host_key
AuthorizedKeysFile $dir/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
UseDNS no
PermitUserRC no
SetEnv SHLVL=1
PidFile $(pidfile "sshd-$host")
EOF
    ip netns exec "$(ns "$host")" /usr/sbin/sshd -f "$dir/${host}_sshd_config" -E "$lab/log/sshd-$host.log"
}

ini() { # the lab's config; $1: the [BROKER] url, $2: extra [DRONE] lines
    cat <<EOF
[AUTOTEST_WEB]
database: $lab/autotest.db

[SCHEDULER]
drones: $(IFS=,; echo "${drones[*]}")
max_processes_per_drone: 4
results_host: root@${addr[results]}
results_dir: $lab/results
http_listen: 127.0.0.1:$http_port
drone_timeout_sec: 30

[DRONE]
ssh_options: -i $lab/ssh/lab_key -oIdentitiesOnly=yes -oUserKnownHostsFile=$lab/ssh/known_hosts -oGlobalKnownHostsFile=/dev/null -oStrictHostKeyChecking=yes -oConnectTimeout=5
heartbeat_sec: 5
$2

[AUTOSERV]
command: $root/deploy/demo-autoserv.sh -p -r {results_dir} -m {hosts} -u {owner} -l {job_name} {control_file}

[BROKER]
url: $1
EOF
}

up() {
    is_root || die "deploy/lab.sh makes network namespaces: run it as root"
    need_cmd ip iproute2
    need_cmd python3 python3
    ensure_rust
    ensure_rsync
    ensure_sshd
    ensure_rabbitmq
    local bin=${AUTOTEST_LAB_BIN:-}
    if [ -z "$bin" ]; then
        say "building release binaries"
        (cd "$root" && cargo build --release --workspace --bins)
        bin="$root/target/release"
    fi

    mkdir -p "$lab"/{run,log,ssh,results}
    chmod 700 "$lab/ssh"
    net_up

    say "RabbitMQ: an extra listener on $net.1:5672 for the drones"
    rabbitmqctl -q eval "rabbit_networking:start_tcp_listener({\"$net.1\", 5672}, 1)." >/dev/null
    "$here/rabbitmq-setup.sh" --vhost "$vhost" --drones "$(IFS=,; echo "${drones[*]}")" \
        --prefix "$prefix" --host "$net.1" --out "$lab/rabbitmq" --api "$api"

    say "SSH: a lab key, and sshd on each drone and on the results host"
    ssh-keygen -q -t ed25519 -N '' -f "$lab/ssh/lab_key" -C "autotest-lab"
    printf 'restrict %s\n' "$(cat "$lab/ssh/lab_key.pub")" >"$lab/ssh/authorized_keys"
    : >"$lab/ssh/known_hosts"
    local host
    for host in "${drones[@]}" results; do
        sshd_up "$host"
    done

    url_of() { grep "^$1 " "$lab/rabbitmq/credentials" | cut -d' ' -f2-; }
    ini "$(url_of "${prefix}scheduler")" "" >"$lab/global_config.ini"
    say "scheduler on 127.0.0.1:$http_port"
    setsid "$bin/autotest-scheduler" --config "$lab/global_config.ini" \
        >"$lab/log/scheduler.log" 2>&1 < /dev/null &
    echo $! >"$(pidfile scheduler)"
    wait_until 30 curl -fs -o /dev/null "http://127.0.0.1:$http_port/api/health" ||
        die "the scheduler did not answer (see $lab/log/scheduler.log)"

    local d
    for d in "${drones[@]}"; do
        ini "$(url_of "${prefix}drone-$d")" "results_dir: $lab/$d-results" >"$lab/$d.ini"
        say "worker $d in namespace $(ns "$d") (${addr[$d]})"
        ip netns exec "$(ns "$d")" setsid "$bin/drone-worker" --config "$lab/$d.ini" --name "$d" \
            >"$lab/log/$d.log" 2>&1 < /dev/null &
        echo $! >"$(pidfile "$d")"
    done
    drones_ok() {
        "$bin/atest" --server "http://127.0.0.1:$http_port" drone list --json |
            python3 -c 'import json,sys; sys.exit(0 if all(d["status"] == "ok" for d in json.load(sys.stdin)) else 1)'
    }
    wait_until 60 drones_ok || die "the drones were not heard from (see $lab/log/)"
    say "the lab is up; its scheduler:"
    echo "export ATEST_SERVER=http://127.0.0.1:$http_port"
}

status() {
    local down=0 part
    check() { # NAME CONDITION...
        local name=$1
        shift
        if "$@"; then echo "up    $name"; else echo "DOWN  $name"; down=1; fi
    }
    bridge_up() { ip link show "$bridge" >/dev/null 2>&1; }
    check "bridge $bridge" bridge_up
    for part in "${drones[@]}" results; do
        check "namespace $(ns "$part")" ip netns exec "$(ns "$part")" true 2>/dev/null
        check "sshd on $part (${addr[$part]})" alive "sshd-$part"
    done
    check "scheduler (127.0.0.1:$http_port)" alive scheduler
    for part in "${drones[@]}"; do
        check "worker $part" alive "$part"
    done
    return $down
}

down() {
    is_root || die "run deploy/lab.sh down as root"
    local part
    for part in "${drones[@]}" scheduler; do
        if alive "$part"; then
            kill "$(cat "$(pidfile "$part")")" 2>/dev/null || true
        fi
    done
    # Workers finish what they hold before they stop; the lab does not wait long.
    sleep 1
    for part in "${drones[@]}" scheduler results; do
        for f in "$(pidfile "$part")" "$(pidfile "sshd-$part")"; do
            [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null || true
        done
    done
    for part in "${drones[@]}" results; do
        ip netns pids "$(ns "$part")" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
        ip netns del "$(ns "$part")" 2>/dev/null || true
    done
    ip link del "$bridge" 2>/dev/null || true
    rabbitmqctl -q eval "rabbit_networking:stop_tcp_listener({\"$net.1\", 5672})." >/dev/null 2>&1 || true
    api_call DELETE "/api/vhosts/$vhost" >/dev/null 2>&1 || true
    for part in scheduler "${drones[@]/#/drone-}"; do
        api_call DELETE "/api/users/$prefix$part" >/dev/null 2>&1 || true
    done
    rm -rf "$lab"
    say "the lab is down"
}

case "${1:-}" in
    up) up ;;
    status) status ;;
    down) down ;;
    *) usage; exit 2 ;;
esac
