#!/usr/bin/env bash
# A small lab on one machine, from network namespaces: the scheduler and RabbitMQ in
# the machine's own namespace; two drones and a results host each in a namespace of
# their own, each running sshd, joined by a bridge. The workers reach RabbitMQ over
# the bridge with their own least-privilege users (deploy/rabbitmq-setup.sh) and push
# results to the results host with rsync over SSH, with a key made for the lab and
# host keys checked.
#
# usage: deploy/lab.sh up|status|down
#   up      builds the release binaries, makes the lab, installs the scheduler with
#           deploy/install-scheduler.sh (prefix LAB/scheduler) and each worker with
#           deploy/install-drone.sh over SSH to its namespace (prefix LAB/<drone>),
#           and ends by printing `export ATEST_SERVER=URL` for the lab's scheduler
#   status  says which parts are up; exits non-zero when a part is down
#   down    removes everything `up` made: the services, processes, namespaces,
#           bridge, the extra RabbitMQ listener, the vhost and its users, the
#           `autotest` user if the lab created it, the lab directory
#
# Needs root, iproute2, rsync, sshd, RabbitMQ (installed if missing, as root).
# Addresses: bridge atl-br 10.77.0.1/24 (the scheduler's side, where RabbitMQ gets an
# extra listener), drone1 10.77.0.11, drone2 10.77.0.12, results host 10.77.0.13.
# AUTOTEST_LAB_DIR (default /var/tmp/autotest-lab) holds configs, keys, logs, results;
# it and the repository must be reachable by the user autotest the programs run as.
# AUTOTEST_LAB_HTTP_PORT is the scheduler's port (default 13480); AUTOTEST_LAB_BIN, a
# directory with the binaries to use instead of building them.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=deploy/lib.sh
. "$here/lib.sh"
root=$(cd "$here/.." && pwd)

usage() {
    sed -n '2,25s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
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

user=autotest
ns() { echo "atl-$1"; }
pidfile() { echo "$lab/run/$1.pid"; }
alive() { [ -f "$(pidfile "$1")" ] && kill -0 "$(cat "$(pidfile "$1")")" 2>/dev/null; }
# The service scripts the install scripts leave (no systemd in the lab: the namespaces
# share this machine's filesystem, and the services run in the drones' namespaces).
service() { # scheduler|DRONE
    if [ "$1" = scheduler ]; then
        echo "$lab/scheduler/bin/autotest-scheduler-service"
    else
        echo "$lab/$1/bin/autotest-drone-worker-service"
    fi
}
service_up() { [ -x "$(service "$1")" ] && "$(service "$1")" status >/dev/null 2>&1; }
# The ssh options for the lab's machines, as --ssh-option arguments.
lab_ssh_options() {
    local o
    for o in "-oIdentityFile=$lab/ssh/lab_key" -oIdentitiesOnly=yes \
        "-oUserKnownHostsFile=$lab/ssh/known_hosts" -oGlobalKnownHostsFile=/dev/null \
        -oStrictHostKeyChecking=yes -oConnectTimeout=5; do
        printf '%s\n' --ssh-option "$o"
    done
}

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
# Relative: deploy/install-scheduler.sh puts it in its data directory.
database: autotest.db

[SCHEDULER]
drones: $(IFS=,; echo "${drones[*]}")
max_processes_per_drone: 4
results_host: root@${addr[results]}
results_dir: $lab/results
http_listen: 127.0.0.1:$http_port
drone_timeout_sec: 30
# Each drone's results server listens on its own address (any port).
drone_results_url: $(for d in "${drones[@]}"; do printf 'http://%s:*,' "${addr[$d]}"; done)

[DRONE]
# ssh_options come from deploy/install-drone.sh (AUTOTEST_DRONE_SSH_OPTIONS: the
# drone's own key and the results host's key).
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
    need_cmd runuser util-linux
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
    chmod 755 "$lab" "$lab"/{run,log,results}
    chmod 700 "$lab/ssh"
    # The programs run as autotest; the lab removes the user in `down` if it made it.
    if ! id -u "$user" >/dev/null 2>&1; then
        ensure_user "$user" "$lab"
        : >"$lab/created-user"
    fi
    local path
    for path in "$lab" "$root/deploy/demo-autoserv.sh"; do
        runuser -u "$user" -- test -r "$path" -a -x "$path" ||
            die "user $user cannot reach $path: the directories above it must be searchable by others (chmod o+x), or set AUTOTEST_LAB_DIR elsewhere"
    done
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
    # The configs hold broker passwords: root's only (the install scripts give their
    # copies to group autotest).
    (umask 077 && ini "$(url_of "${prefix}scheduler")" "" >"$lab/global_config.ini")
    say "scheduler on 127.0.0.1:$http_port: deploy/install-scheduler.sh --prefix $lab/scheduler"
    "$here/install-scheduler.sh" --config "$lab/global_config.ini" --prefix "$lab/scheduler" \
        --etc "$lab/scheduler/etc" --bin "$bin" --timeout 30 ||
        die "installing the scheduler failed (see $lab/scheduler/log/scheduler.log)"
    # add-user must open the service's database: the config's relative `database`
    # is put in the data directory by the installer, through this variable.
    ensure_admin_token "$bin/atest" "http://127.0.0.1:$http_port" "$(id -un)" \
        runuser -u "$user" -- env AUTOTEST_AUTOTEST_WEB_DATABASE="$lab/scheduler/data/autotest.db" \
        "$lab/scheduler/bin/autotest-scheduler" --config "$lab/scheduler/etc/global_config.ini"

    local d ssh_options
    mapfile -t ssh_options < <(lab_ssh_options)
    for d in "${drones[@]}"; do
        (umask 077 && ini "$(url_of "${prefix}drone-$d")" "results_dir: $lab/$d-results
http_listen: ${addr[$d]}:0" >"$lab/$d.ini")
        say "worker $d in namespace $(ns "$d"): deploy/install-drone.sh ${addr[$d]} over SSH, prefix $lab/$d"
        "$here/install-drone.sh" "${addr[$d]}" --config "$lab/$d.ini" --name "$d" \
            --prefix "$lab/$d" --bin "$bin" "${ssh_options[@]}" \
            --known-hosts "$lab/ssh/known_hosts" \
            --results-authorized-keys "$lab/ssh/authorized_keys" \
            --server "http://127.0.0.1:$http_port" --timeout 60 ||
            die "installing the worker on $d failed (see $lab/$d/log/drone-worker.log)"
    done
    drones_ok() {
        "$bin/atest" --server "http://127.0.0.1:$http_port" drone list --json |
            python3 -c 'import json,sys; sys.exit(0 if all(d["status"] == "ok" for d in json.load(sys.stdin)) else 1)'
    }
    wait_until 60 drones_ok || die "the drones were not heard from (see $lab/log/)"
    say "the lab is up; its scheduler:"
    echo "export ATEST_SERVER=http://127.0.0.1:$http_port"
    say "atest acts as the lab's admin $(id -un) with the token in $(atest_token_file)"
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
    check "scheduler (127.0.0.1:$http_port)" service_up scheduler
    for part in "${drones[@]}"; do
        check "worker $part" service_up "$part"
    done
    return $down
}

down() {
    is_root || die "run deploy/lab.sh down as root"
    local part f
    # Workers finish what they hold before they stop (the drain); the lab waits 20 s
    # at most, then kills what is left in the namespaces.
    for part in "${drones[@]}" scheduler; do
        if [ -x "$(service "$part")" ]; then
            timeout 20 "$(service "$part")" stop >/dev/null 2>&1 || true
        fi
    done
    for part in "${drones[@]}" scheduler; do
        for f in "$lab/$part"/run/*.pid; do
            if [ -f "$f" ]; then kill -9 "$(cat "$f")" 2>/dev/null || true; fi
        done
    done
    for part in "${drones[@]}" results; do
        f=$(pidfile "sshd-$part")
        if [ -f "$f" ]; then kill -9 "$(cat "$f")" 2>/dev/null || true; fi
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
    if [ -f "$lab/created-user" ] && id -u "$user" >/dev/null 2>&1; then
        # Whatever still runs as the lab's user is the lab's (pids, one by one).
        local pids
        mapfile -t pids < <(ps -o pid= -u "$user" 2>/dev/null | tr -d ' ')
        [ "${#pids[@]}" -eq 0 ] || kill -9 "${pids[@]}" 2>/dev/null || true
        wait_until 10 sh -c "! ps -u $user >/dev/null 2>&1" || true
        userdel "$user" 2>/dev/null || say "warning: userdel $user failed"
        ! getent group "$user" >/dev/null || groupdel "$user" 2>/dev/null || true
    fi
    rm -rf "$lab"
    say "the lab is down"
}

case "${1:-}" in
    up) up ;;
    status) status ;;
    down) down ;;
    *) usage; exit 2 ;;
esac
