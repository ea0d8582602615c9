#!/usr/bin/env bash
# Installs (or upgrades) the drone worker on a drone, over SSH as root.
#
# usage: deploy/install-drone.sh HOST --config FILE [--name NAME] [--prefix DIR]
#            [--bin DIR] [--ssh-option OPT]... [--known-hosts FILE]
#            [--results-authorized-keys PATH] [--server URL] [--timeout SEC]
#
#   HOST          the drone, reached as root@HOST with ssh; `localhost` installs on
#                 this machine without ssh
#   --config      the global_config.ini for the drone; installed as
#                 PREFIX/etc/global_config.ini
#   --name        the drone's name in [SCHEDULER] drones (default: HOST's host name
#                 up to the first dot, as the worker would take it)
#   --prefix      where to install (default /opt/autotest): bin/ (drone-worker,
#                 autoserv-supervisor), etc/ (config, etc/ssh/ key and known_hosts),
#                 log/, run/
#   --bin         where the built binaries are (default <repo>/target/release); atest
#                 from there asks the scheduler about the drone
#   --ssh-option  one argument for ssh to the drone and to the results host, e.g.
#                 --ssh-option -oIdentityFile=/root/.ssh/lab (repeatable)
#   --known-hosts the results host's key is taken from this file instead of this
#                 user's known_hosts (ssh-keygen -F); it is installed on the drone
#   --results-authorized-keys  authorized_keys on the results host, relative to the
#                 home of the [SCHEDULER] results_host login (default
#                 .ssh/authorized_keys)
#   --server      the scheduler (default $ATEST_SERVER, then http://127.0.0.1:13467)
#   --timeout     seconds to wait for the new worker's heartbeat (default 60)
#
# It creates the system user `autotest` (home PREFIX, no login shell), the
# [DRONE] results_dir owned by it, and an SSH key PREFIX/etc/ssh/id_ed25519 made on
# the drone (kept if it exists). Unless [SCHEDULER] results_host is local, the key is
# added to the results host's authorized_keys with a forced command that only lets it
# write into [SCHEDULER] results_dir:
#     command="rrsync -wo -absolute -no-lock DIR",restrict ssh-ed25519 ... autotest@NAME
# and a dry run of the worker's rsync, as autotest on the drone, checks the login,
# the host key and that rrsync takes the worker's options.
#
# The worker runs as autotest under systemd (autotest-drone-worker.service) when the
# drone runs systemd, otherwise under PREFIX/bin/autotest-drone-worker-service
# start|stop|status. Run again, it upgrades: the new files are staged first, then the
# running worker is stopped and the script waits while it drains (it exits once its
# running entries have finished), then the files are swapped and the new worker
# started. It ends when the scheduler has a heartbeat from the new worker.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=deploy/lib.sh
. "$here/lib.sh"

unit=autotest-drone-worker.service
service_script=autotest-drone-worker-service
user=autotest

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

# ======================================================================
# On the drone: `install-drone.sh --remote PHASE STAGE`, run as root from the stage
# directory the operator's side copied there, with the settings in STAGE/params.sh.
# ======================================================================

remote_params() {
    stage=$1
    # shellcheck source=/dev/null
    . "$stage/params.sh"
    # From params.sh:
    : "${PREFIX:?}" "${NAME:?}" "${DRONE_RESULTS:?}" "${RESULTS_REMOTE:?}"
    : "${RESULTS_HOST:?}" "${RESULTS_DIR:?}" "${SSH_OPTIONS_ENV?}"
    key=$PREFIX/etc/ssh/id_ed25519
}

as_user() {
    runuser -u "$user" -- "$@"
}

has_systemd() {
    [ -d /run/systemd/system ]
}

# The worker's pid, whichever way it runs now; empty when it does not run.
running_worker_pid() {
    if has_systemd && systemctl is-active --quiet "$unit" 2>/dev/null; then
        systemctl show -p MainPID --value "$unit" 2>/dev/null | grep -v '^0$' || true
    elif [ -x "$PREFIX/bin/$service_script" ]; then
        "$PREFIX/bin/$service_script" status 2>/dev/null |
            sed -n 's/.* is running (pid \([0-9]*\),.*/\1/p'
    fi
}

remote_prepare() {
    is_root || die "on $(hostname): the install needs root"
    local cmd
    for cmd in rsync ssh ssh-keygen runuser setsid useradd install; do
        command -v "$cmd" >/dev/null 2>&1 ||
            die "on $(hostname): $cmd is missing (rsync 3.2.3+, openssh-client, util-linux, passwd, coreutils)"
    done
    "$stage/drone-worker" --version >/dev/null 2>&1 ||
        die "on $(hostname): the new drone-worker does not run there ($stage/drone-worker --version fails)"
    ensure_user "$user" "$PREFIX"
    install -d -m 755 "$PREFIX" "$PREFIX/bin" "$PREFIX/etc" "$PREFIX/log" "$PREFIX/run"
    install -d -m 750 -g "$user" "$PREFIX/etc/ssh"
    if [ ! -d "$DRONE_RESULTS" ]; then
        mkdir -p "$(dirname "$DRONE_RESULTS")"
        install -d -m 755 -o "$user" -g "$user" "$DRONE_RESULTS"
        say "created the results directory $DRONE_RESULTS, owned by $user"
    elif [ "$(stat -c %U "$DRONE_RESULTS")" != "$user" ]; then
        # A worker that ran as another user (root) left its journal and results there.
        chown -R "$user:$user" "$DRONE_RESULTS"
        say "results directory $DRONE_RESULTS existed; gave it and what is in it to $user"
    else
        say "results directory $DRONE_RESULTS exists, owned by $user"
    fi
    if [ -f "$key" ]; then
        say "SSH key $key exists; keeping it"
    else
        ssh-keygen -q -t ed25519 -N '' -C "$user@$NAME" -f "$key" ||
            die "ssh-keygen failed for $key"
        say "made the SSH key $key"
    fi
    chown "$user:$user" "$key" "$key.pub"
    chmod 600 "$key"
    chmod 644 "$key.pub"
    if [ "$RESULTS_REMOTE" = 0 ]; then
        # A local results host: the worker copies into [SCHEDULER] results_dir itself.
        if [ ! -d "$RESULTS_DIR" ]; then
            mkdir -p "$(dirname "$RESULTS_DIR")"
            install -d -m 755 -o "$user" -g "$user" "$RESULTS_DIR"
            say "created the (local) results host's directory $RESULTS_DIR, owned by $user"
        elif ! as_user test -w "$RESULTS_DIR"; then
            chown -R "$user:$user" "$RESULTS_DIR"
            say "the (local) results host's directory $RESULTS_DIR existed; gave it and what is in it to $user, who pushes there"
        fi
    fi
    if [ "$RESULTS_REMOTE" = 1 ]; then
        install -m 644 -g "$user" "$stage/known_hosts" "$PREFIX/etc/ssh/known_hosts.new"
        mv -f "$PREFIX/etc/ssh/known_hosts.new" "$PREFIX/etc/ssh/known_hosts"
        say "installed the results host's key as $PREFIX/etc/ssh/known_hosts"
    fi
    # Everything the worker opens must be reachable as autotest.
    as_user test -r "$key" || die "user $user cannot read $key (check the directories above it)"
    as_user test -w "$DRONE_RESULTS" || die "user $user cannot write $DRONE_RESULTS (check the directories above it)"
    if [ -n "${AUTOSERV_PROGRAM:-}" ] && ! as_user test -x "$AUTOSERV_PROGRAM"; then
        printf 'warning: user %s cannot run [AUTOSERV] command %s on %s (yet); jobs will fail until it can\n' \
            "$user" "$AUTOSERV_PROGRAM" "$(hostname)" >&2
    fi
    printf 'PUBKEY %s\n' "$(cat "$key.pub")"
}

# A dry run of the worker's pushes, as the worker: ssh login with its key and
# known_hosts, and rrsync taking the options of a push and of a verified push.
remote_check() {
    local tmp rc=0 i out
    tmp=$(as_user mktemp -d)
    as_user mkdir -p "$tmp/.install-check/$NAME"
    echo check | as_user tee "$tmp/.install-check/$NAME/file" >/dev/null
    local ssh="ssh -oBatchMode=yes $SSH_OPTIONS_ENV"
    local -a base=(rsync -a --relative --mkpath '--exclude=.autoserv-*' -e "$ssh")
    local -a checks=(
        "--dry-run"
        "--checksum --dry-run"
        "--checksum --dry-run --itemize-changes"
    )
    for i in "${!checks[@]}"; do
        local -a extra
        read -r -a extra <<<"${checks[$i]}"
        [ "$i" -eq 2 ] && extra+=('--out-format=%i %n')
        if ! out=$(as_user "${base[@]}" "${extra[@]}" -- "$tmp/./.install-check/$NAME" \
            "$RESULTS_HOST:$RESULTS_DIR/" 2>&1); then
            printf 'error: as %s on %s: rsync %s to %s:%s/ failed:\n%s\n' "$user" "$(hostname)" \
                "${checks[$i]}" "$RESULTS_HOST" "$RESULTS_DIR" "$out" >&2
            rc=1
            break
        fi
    done
    rm -rf "$tmp"
    [ "$rc" -eq 0 ] || exit 1
    say "as $user on this drone: ssh to $RESULTS_HOST with the drone's key and known_hosts works, and rrsync accepts the worker's rsync options (dry runs)"
}

remote_stop() {
    local pid
    pid=$(running_worker_pid)
    if [ -z "$pid" ]; then
        say "no worker running on this drone"
        return 0
    fi
    say "stopping the running worker (pid $pid) with SIGTERM: it takes no new jobs and is draining, i.e. it exits once its running entries have finished and their results are pushed; waiting for it"
    local start=$SECONDS
    if has_systemd && systemctl is-active --quiet "$unit" 2>/dev/null; then
        # TimeoutStopSec=infinity: this returns once the drain is over.
        systemctl stop "$unit"
    else
        "$PREFIX/bin/$service_script" stop
    fi
    say "the old worker (pid $pid) has exited after $((SECONDS - start)) s of draining"
}

# The systemd unit (used when the machine runs systemd).
drone_unit() {
    echo "# Written by deploy/install-drone.sh"
    echo "[Unit]"
    echo "Description=Autotest drone worker $NAME"
    echo "Wants=network-online.target"
    echo "After=network-online.target"
    echo
    echo "[Service]"
    echo "Type=simple"
    echo "User=$user"
    echo "Group=$user"
    echo "WorkingDirectory=$PREFIX"
    if [ -n "$SSH_OPTIONS_ENV" ]; then
        echo "Environment=\"AUTOTEST_DRONE_SSH_OPTIONS=$SSH_OPTIONS_ENV\""
    fi
    echo "ExecStart=$PREFIX/bin/drone-worker --config $PREFIX/etc/global_config.ini --name $NAME"
    echo "Restart=on-failure"
    echo "RestartSec=5"
    echo "# Autoserv runs survive a restart of the worker, which re-attaches to them."
    echo "KillMode=process"
    echo "# On stop the worker drains: it exits once its running entries are done."
    echo "TimeoutStopSec=infinity"
    echo
    echo "[Install]"
    echo "WantedBy=multi-user.target"
}

remote_swap_start() {
    local f
    # Into place with rename(2): a running binary is never written into.
    for f in drone-worker autoserv-supervisor "$service_script"; do
        chmod 755 "$stage/$f"
        chown root:root "$stage/$f"
        mv -f "$stage/$f" "$PREFIX/bin/$f"
    done
    install -m 640 -g "$user" "$stage/global_config.ini" "$PREFIX/etc/global_config.ini.new"
    mv -f "$PREFIX/etc/global_config.ini.new" "$PREFIX/etc/global_config.ini"
    say "installed drone-worker and autoserv-supervisor in $PREFIX/bin, the config as $PREFIX/etc/global_config.ini"
    as_user test -x "$PREFIX/bin/drone-worker" || die "user $user cannot run $PREFIX/bin/drone-worker"
    as_user test -r "$PREFIX/etc/global_config.ini" || die "user $user cannot read $PREFIX/etc/global_config.ini"

    if has_systemd; then
        local unit_file=/etc/systemd/system/$unit
        drone_unit >"$unit_file.new"
        mv -f "$unit_file.new" "$unit_file"
        systemctl daemon-reload
        systemctl enable --quiet "$unit"
        systemctl start "$unit"
        say "service: systemd unit $unit_file (enabled, started; logs: journalctl -u $unit)"
        say "worker started (pid $(systemctl show -p MainPID --value "$unit"))"
    else
        say "service: no systemd on this drone (/run/systemd/system is missing): $PREFIX/bin/$service_script start|stop|status, a supervisor loop running the worker as $user, log $PREFIX/log/drone-worker.log"
        "$PREFIX/bin/$service_script" start >&2
    fi
    rm -rf "$stage"
}

remote_main() {
    local phase=$1
    remote_params "$2"
    case $phase in
        prepare) remote_prepare ;;
        check) remote_check ;;
        stop) remote_stop ;;
        swap-start) remote_swap_start ;;
        *) die "unknown phase $phase" ;;
    esac
}

if [ "${1:-}" = --remote ]; then
    shift
    remote_main "$@"
    exit 0
fi

# ======================================================================
# On the operator's machine.
# ======================================================================

host="" config="" name="" prefix=/opt/autotest bin="" known_hosts_file=""
results_ak=.ssh/authorized_keys server=${ATEST_SERVER:-http://127.0.0.1:13467} timeout=60
ssh_opts=()
need_value() { [ $# -ge 2 ] || die "$1 needs a value (see --help)"; }
while [ $# -gt 0 ]; do
    case $1 in
        -h | --help) usage; exit 0 ;;
        --config) need_value "$@"; config=$2; shift 2 ;;
        --name) need_value "$@"; name=$2; shift 2 ;;
        --prefix) need_value "$@"; prefix=$2; shift 2 ;;
        --bin) need_value "$@"; bin=$2; shift 2 ;;
        --ssh-option) need_value "$@"; ssh_opts+=("$2"); shift 2 ;;
        --known-hosts) need_value "$@"; known_hosts_file=$2; shift 2 ;;
        --results-authorized-keys) need_value "$@"; results_ak=$2; shift 2 ;;
        --server) need_value "$@"; server=$2; shift 2 ;;
        --timeout) need_value "$@"; timeout=$2; shift 2 ;;
        -*) die "unknown option $1 (see --help)" ;;
        *)
            [ -z "$host" ] || die "one HOST only (got $host and $1)"
            host=$1
            shift
            ;;
    esac
done
[ -n "$host" ] || { usage >&2; die "HOST is missing"; }
[ -n "$config" ] || die "--config FILE is missing"
[ -r "$config" ] || die "cannot read the config $config"
bin=${bin:-$(cd "$here/.." && pwd)/target/release}
case $timeout in '' | *[!0-9]*) die "--timeout wants whole seconds, got $timeout" ;; esac
case $prefix in /*) ;; *) die "--prefix must be an absolute path, got $prefix" ;; esac
prefix=${prefix%/}
safe_path() { # NAME VALUE: a path that goes into ssh options and authorized_keys as is
    case $2 in
        *[[:space:]\"\'\\\$\`,]*) die "$1 cannot contain spaces, quotes, backslashes, \$, \` or commas: $2" ;;
    esac
}
safe_path --prefix "$prefix"
for f in drone-worker autoserv-supervisor atest; do
    [ -x "$bin/$f" ] || die "$bin/$f is missing: build with cargo build --release --workspace --bins, or pass --bin DIR"
done
for f in service.sh lib.sh; do
    [ -r "$here/$f" ] || die "$here/$f is missing"
done
need_cmd ssh openssh-client
need_cmd ssh-keygen openssh-client
need_cmd python3 python3
need_cmd tar tar

local_install=0
[ "$host" = localhost ] && local_install=1
ssh_base=("${ssh_opts[@]}" -oBatchMode=yes -oServerAliveInterval=30)

# on_drone COMMAND: COMMAND (a shell command line) as root on the drone.
on_drone() {
    if [ "$local_install" = 1 ]; then
        is_root || die "installing on localhost needs root"
        bash -c "$1"
    else
        # shellcheck disable=SC2029 # the command line is meant for the drone's shell
        ssh "${ssh_base[@]}" "root@$host" "$1"
    fi
}

# --- the config --------------------------------------------------------
config_dir=$prefix/etc
results_host=$(config_get "$bin/drone-worker" "$config" SCHEDULER results_host)
results_host=${results_host:-localhost}
results_dir=$(ini_path "$(config_get "$bin/drone-worker" "$config" SCHEDULER results_dir)" "$config_dir")
[ -n "$(config_get "$bin/drone-worker" "$config" SCHEDULER results_dir)" ] || results_dir=/usr/local/autotest/results
drone_results=$(config_get "$bin/drone-worker" "$config" DRONE results_dir)
drone_results=$(ini_path "${drone_results:-/var/lib/autotest/drone-results}" "$config_dir")
autoserv_program=$(config_get "$bin/drone-worker" "$config" AUTOSERV command)
autoserv_program=${autoserv_program%% *}
drones=$(config_get "$bin/drone-worker" "$config" SCHEDULER drones)

if [ -z "$name" ]; then
    name=$(on_drone hostname) || die "cannot reach root@$host over ssh to ask its host name (pass --name, check --ssh-option)"
    name=${name%%.*}
    say "drone name: $name (the host name of $host)"
fi
case ",$(printf '%s' "$drones" | tr -d '[:space:]')," in
    *",$name,"*) ;;
    *) die "$name is not in [SCHEDULER] drones of $config ($drones); the worker would refuse to start" ;;
esac

results_remote=1
case $results_host in localhost | 127.0.0.1) results_remote=0 ;; esac
ssh_options_env=""
if [ "$results_remote" = 1 ]; then
    safe_path "[SCHEDULER] results_dir" "$results_dir"
    safe_path --results-authorized-keys "$results_ak"
    ssh_options_env="-i $prefix/etc/ssh/id_ed25519 -oIdentitiesOnly=yes -oUserKnownHostsFile=$prefix/etc/ssh/known_hosts -oGlobalKnownHostsFile=/dev/null -oStrictHostKeyChecking=yes -oConnectTimeout=5"
fi

# --- the scheduler -----------------------------------------------------
# drone_state: "STATUS LAST_HEARTBEAT RUNNING" of the drone, as the scheduler has it.
drone_state() {
    local json
    json=$("$bin/atest" --server "$server" drone list --json 2>/dev/null) || return 1
    printf '%s' "$json" | python3 -c '
import json, sys
for d in json.load(sys.stdin):
    if d["name"] == sys.argv[1]:
        print(d["status"], d.get("last_heartbeat") or "-", d.get("running", 0))
        sys.exit(0)
sys.exit(3)' "$name"
}
if ! state=$(drone_state); then
    said=$("$bin/atest" --server "$server" drone list --json 2>&1 >/dev/null | tail -n 1)
    die "the scheduler at $server does not answer, or does not know drone $name (atest --server $server drone list${said:+ said: $said}); pass --server URL or set ATEST_SERVER, and check atest's token (--token, \$ATEST_TOKEN or $(atest_token_file))"
fi
read -r _ first_heartbeat running <<<"$state"
say "the scheduler at $server knows $name (last heartbeat $first_heartbeat, $running entries running)"

# --- the results host's key --------------------------------------------
stage_local=$(mktemp -d)
remote_stage=""
cleanup() {
    rm -rf "$stage_local"
    if [ -n "$remote_stage" ]; then
        on_drone "rm -rf '$remote_stage'" >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

if [ "$results_remote" = 1 ]; then
    rhost=${results_host#*@}
    sources=()
    if [ -n "$known_hosts_file" ]; then
        [ -r "$known_hosts_file" ] || die "cannot read --known-hosts $known_hosts_file"
        sources=("$known_hosts_file")
    else
        for f in "$HOME/.ssh/known_hosts" /etc/ssh/ssh_known_hosts; do
            [ -r "$f" ] && sources+=("$f")
        done
    fi
    for f in "${sources[@]}"; do
        ssh-keygen -F "$rhost" -f "$f" 2>/dev/null | grep -v '^#' >>"$stage_local/known_hosts" || true
    done
    searched=${sources[*]:-no known_hosts file ($HOME/.ssh/known_hosts, /etc/ssh/ssh_known_hosts)}
    [ -s "$stage_local/known_hosts" ] ||
        die "no host key for the results host $rhost in $searched: add it to known_hosts (ssh-keyscan $rhost, after checking its fingerprint) or pass --known-hosts FILE"
    say "results host $results_host: its host key found in ${sources[*]}"
fi

# --- staging -----------------------------------------------------------
cp "$config" "$stage_local/global_config.ini"
cp "$here/lib.sh" "${BASH_SOURCE[0]}" "$stage_local/"
{
    echo "#!/usr/bin/env bash"
    echo "# $service_script: the drone worker $name as a service without systemd."
    echo "# Written by deploy/install-drone.sh; usage: $service_script start|stop|status"
    printf 'SVC_NAME=%q\n' drone-worker
    printf 'SVC_USER=%q\n' "$user"
    printf 'SVC_DIR=%q\n' "$prefix"
    printf 'SVC_RUN=%q\n' "$prefix/run"
    printf 'SVC_LOG=%q\n' "$prefix/log/drone-worker.log"
    printf 'SVC_ENV=(%q %q %q %q %q' PATH=/usr/local/bin:/usr/bin:/bin "HOME=$prefix" \
        "USER=$user" "LOGNAME=$user" LANG=C.UTF-8
    [ -n "$ssh_options_env" ] && printf ' %q' "AUTOTEST_DRONE_SSH_OPTIONS=$ssh_options_env"
    printf ')\n'
    printf 'SVC_CMD=(%q --config %q --name %q)\n' "$prefix/bin/drone-worker" \
        "$prefix/etc/global_config.ini" "$name"
    sed -n '/^# ---- service body ----$/,$p' "$here/service.sh"
} >"$stage_local/$service_script"
{
    printf 'PREFIX=%q\n' "$prefix"
    printf 'NAME=%q\n' "$name"
    printf 'DRONE_RESULTS=%q\n' "$drone_results"
    printf 'RESULTS_REMOTE=%q\n' "$results_remote"
    printf 'RESULTS_HOST=%q\n' "$results_host"
    printf 'RESULTS_DIR=%q\n' "$results_dir"
    printf 'SSH_OPTIONS_ENV=%q\n' "$ssh_options_env"
    printf 'AUTOSERV_PROGRAM=%q\n' "$autoserv_program"
} >"$stage_local/params.sh"

where="root@$host"
[ "$local_install" = 1 ] && where="this machine"
remote_stage=$(on_drone "mkdir -p '$prefix' && mktemp -d '$prefix/.install.XXXXXX'") ||
    die "cannot reach $where to make a staging directory under $prefix (check --ssh-option)"
# The binaries go straight from --bin; the stage is on the same filesystem as
# PREFIX/bin, so they are later renamed into place.
tar -chf - -C "$stage_local" . -C "$bin" drone-worker autoserv-supervisor |
    on_drone "tar --no-same-owner -C '$remote_stage' -xf -" ||
    die "copying the files to $where:$remote_stage failed"
say "staged the new files on $where in $remote_stage"

phase() {
    on_drone "bash '$remote_stage/install-drone.sh' --remote $1 '$remote_stage'"
}

out=$(phase prepare) || die "preparing $where failed (see above)"
pubkey=$(printf '%s\n' "$out" | sed -n 's/^PUBKEY //p')
[ -n "$pubkey" ] || die "no public key came back from $where"

# --- the key on the results host ---------------------------------------
if [ "$results_remote" = 1 ]; then
    read -r key_type key_blob _ <<<"$pubkey"
    forced="command=\"rrsync -wo -absolute -no-lock $results_dir\",restrict $key_type $key_blob $user@$name"
    rssh=("${ssh_opts[@]}")
    [ -n "$known_hosts_file" ] && rssh+=("-oUserKnownHostsFile=$known_hosts_file")
    rssh+=(-oBatchMode=yes)
    # shellcheck disable=SC2016
    authorize='set -eu
ak=$1 dir=$2 blob=$3 line=$4
command -v rrsync >/dev/null 2>&1 ||
    { echo "error: rrsync is not installed on the results host (rsync 3.2.4 or later ships it as /usr/bin/rrsync; it needs python3)" >&2; exit 1; }
rrsync -help >/dev/null 2>&1 || { echo "error: rrsync -help fails on the results host (is python3 installed?)" >&2; exit 1; }
if [ ! -d "$dir" ]; then mkdir -p "$dir"; echo "created the results directory $dir"; fi
real=$(cd "$dir" && pwd -P)
[ "$real" = "$dir" ] || { echo "error: results_dir $dir is $real once symlinks are resolved; rrsync -absolute only accepts $real: use it as [SCHEDULER] results_dir" >&2; exit 1; }
case $ak in */*) d=${ak%/*}; if [ ! -d "$d" ]; then mkdir -p "$d"; chmod 700 "$d"; fi ;; esac
[ -e "$ak" ] || { touch "$ak"; chmod 600 "$ak"; }
if grep -qxF -- "$line" "$ak"; then echo "the key is in $ak already"; exit 0; fi
if grep -qF -- " $blob" "$ak"; then
    tmp=$(mktemp "$ak.XXXXXX")
    grep -vF -- " $blob" "$ak" >"$tmp" || true
    printf "%s\n" "$line" >>"$tmp"
    chmod --reference="$ak" "$tmp"; chown --reference="$ak" "$tmp"
    mv -f "$tmp" "$ak"
    echo "replaced the key'"'"'s line in $ak"
else
    [ ! -s "$ak" ] || [ -z "$(tail -c 1 "$ak")" ] || echo >>"$ak"
    printf "%s\n" "$line" >>"$ak"
    echo "added the key to $ak"
fi'
    msg=$(printf '%s\n' "$authorize" | ssh "${rssh[@]}" "$results_host" sh -s -- \
        "$(printf '%q' "$results_ak")" "$(printf '%q' "$results_dir")" "$key_blob" \
        "$(printf '%q' "$forced")") ||
        die "adding the drone's key to $results_host:$results_ak failed (ssh ${rssh[*]} $results_host)"
    say "results host $results_host: $msg (forced command: rrsync -wo -absolute -no-lock $results_dir)"
    phase check || die "the drone $name cannot push to $results_host:$results_dir/ as the worker would (see above); nothing was stopped"
else
    say "results host is local ($results_host): no key to authorize"
fi

# --- stop (drain), swap, start -----------------------------------------
if state=$(drone_state); then
    read -r _ _ running <<<"$state"
    if [ "${running:-0}" != 0 ]; then
        say "the scheduler shows $running entries running on $name: the worker finishes them before it exits (it heartbeats meanwhile, shown as stopping, and gets nothing new)"
    fi
fi
phase stop || die "stopping the old worker on $where failed"
state=$(drone_state) || die "the scheduler at $server stopped answering"
read -r _ before _ <<<"$state"
phase swap-start || die "installing and starting the new worker on $where failed"
remote_stage=""

say "waiting up to $timeout s for the scheduler to hear from the new worker (last heartbeat before: $before)"
heard() {
    local status heartbeat
    state=$(drone_state) || return 1
    read -r status heartbeat _ <<<"$state"
    [ "$heartbeat" != - ] && [ "$status" != lost ] && { [ "$before" = - ] || [[ "$heartbeat" > "$before" ]]; }
}
wait_until "$timeout" heard ||
    die "the scheduler at $server has not heard from $name within $timeout s (now: ${state:-no answer}); look at the worker's log on $host ($prefix/log/drone-worker.log, or journalctl -u $unit)"
read -r status heartbeat _ <<<"$state"
say "drone $name is up: status $status, heartbeat $heartbeat"
