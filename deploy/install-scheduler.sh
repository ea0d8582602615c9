#!/usr/bin/env bash
# Installs (or upgrades) the scheduler on this machine, as root.
#
# usage: deploy/install-scheduler.sh [--config FILE] [--prefix DIR] [--bin DIR]
#            [--etc DIR] [--data DIR] [--timeout SEC]
#
#   --config   the global_config.ini to install as ETC/global_config.ini; may be left
#              out on an upgrade, when ETC/global_config.ini exists (it is kept)
#   --prefix   where the binaries go (default /opt/autotest): PREFIX/bin holds
#              autotest-scheduler and atest; without --prefix, atest is also linked
#              into /usr/local/bin
#   --bin      where the built binaries are (default <repo>/target/release)
#   --etc      the config's directory (default /etc/autotest)
#   --data     the directory for the SQLite database, owned by autotest (default
#              /var/lib/autotest, or PREFIX/data with --prefix): a relative
#              [AUTOTEST_WEB] database goes there (set for the service with
#              AUTOTEST_AUTOTEST_WEB_DATABASE)
#   --timeout  seconds to wait for GET http(s)://<http_listen>/api/health (default 60)
#
# It creates the system user `autotest` (home PREFIX, no login shell) and runs the
# scheduler as that user: under systemd (autotest-scheduler.service, Restart=
# on-failure) when this machine runs systemd, otherwise under
# PREFIX/bin/autotest-scheduler-service start|stop|status, a supervisor loop that
# logs to PREFIX/log/scheduler.log. Run again, it upgrades: the new files are staged,
# the scheduler is stopped, the files are swapped, and it is started again.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=deploy/lib.sh
. "$here/lib.sh"

unit=autotest-scheduler.service
service_script=autotest-scheduler-service
user=autotest

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

config="" prefix="" bin="" etc=/etc/autotest data="" timeout=60
need_value() { [ $# -ge 2 ] || die "$1 needs a value (see --help)"; }
while [ $# -gt 0 ]; do
    case $1 in
        -h | --help) usage; exit 0 ;;
        --config) need_value "$@"; config=$2; shift 2 ;;
        --prefix) need_value "$@"; prefix=$2; shift 2 ;;
        --bin) need_value "$@"; bin=$2; shift 2 ;;
        --etc) need_value "$@"; etc=$2; shift 2 ;;
        --data) need_value "$@"; data=$2; shift 2 ;;
        --timeout) need_value "$@"; timeout=$2; shift 2 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
is_root || die "deploy/install-scheduler.sh installs a service and a user: run it as root"
link_atest=1
if [ -n "$prefix" ]; then
    link_atest=0
    data=${data:-${prefix%/}/data}
fi
prefix=${prefix:-/opt/autotest}
data=${data:-/var/lib/autotest}
prefix=${prefix%/} etc=${etc%/} data=${data%/}
for d in "$prefix" "$etc" "$data"; do
    case $d in /*) ;; *) die "--prefix, --etc and --data must be absolute paths, got $d" ;; esac
done
case $timeout in '' | *[!0-9]*) die "--timeout wants whole seconds, got $timeout" ;; esac
bin=${bin:-$(cd "$here/.." && pwd)/target/release}
for f in autotest-scheduler atest; do
    [ -x "$bin/$f" ] || die "$bin/$f is missing: build with cargo build --release --workspace --bins, or pass --bin DIR"
done
"$bin/autotest-scheduler" --version >/dev/null 2>&1 || die "$bin/autotest-scheduler --version fails on this machine"
need_cmd curl curl
need_cmd runuser util-linux
need_cmd setsid util-linux

installed_config=$etc/global_config.ini
if [ -z "$config" ]; then
    [ -r "$installed_config" ] ||
        die "--config FILE is missing, and there is no $installed_config to keep"
    config=$installed_config
    say "keeping the installed config $installed_config"
fi
[ -r "$config" ] || die "cannot read the config $config"

# --- what the config asks for (relative paths are relative to ETC) ------
db_type=$(config_get "$bin/autotest-scheduler" "$config" AUTOTEST_WEB db_type)
db_type=$(printf '%s' "${db_type:-sqlite}" | tr '[:upper:]' '[:lower:]')
listen=$(config_get "$bin/autotest-scheduler" "$config" SCHEDULER http_listen)
listen=${listen:-127.0.0.1:13467}
health_host=${listen%:*} health_port=${listen##*:}
case $health_host in 0.0.0.0 | '[::]' | '') health_host=127.0.0.1 ;; esac
health_url="http://$health_host:$health_port/api/health"
# With [SCHEDULER] tls_cert the API answers HTTPS only. The health check asks this
# machine, which the certificate need not name, and sends no token: -k is enough.
curl_tls=()
if [ -n "$(config_get "$bin/autotest-scheduler" "$config" SCHEDULER tls_cert)" ]; then
    health_url="https://$health_host:$health_port/api/health"
    curl_tls=(-k)
fi

service_env=()
db_dir=""
case $db_type in
    sqlite | sqlite3)
        db=$(config_get "$bin/autotest-scheduler" "$config" AUTOTEST_WEB database)
        db=${db:-autotest.db}
        case $db in
            /*) db_path=$db ;;
            *)
                db_path=$data/$db
                service_env+=("AUTOTEST_AUTOTEST_WEB_DATABASE=$db_path")
                say "[AUTOTEST_WEB] database $db is relative: the service uses $db_path (AUTOTEST_AUTOTEST_WEB_DATABASE)"
                ;;
        esac
        db_dir=$(dirname "$db_path")
        ;;
    *) say "database: $db_type (nothing to create on disk)" ;;
esac

# --- stage (nothing running is touched yet) -----------------------------
ensure_user "$user" "$prefix"
install -d -m 755 "$prefix" "$prefix/bin" "$prefix/log" "$prefix/run"
install -d -m 755 "$etc"
stage=$(mktemp -d "$prefix/.install.XXXXXX")
trap 'rm -rf "$stage"' EXIT
install -m 755 "$bin/autotest-scheduler" "$bin/atest" "$stage/"
install -m 640 -g "$user" "$config" "$stage/global_config.ini"
{
    echo "#!/usr/bin/env bash"
    echo "# $service_script: the Autotest scheduler as a service without systemd."
    echo "# Written by deploy/install-scheduler.sh; usage: $service_script start|stop|status"
    printf 'SVC_NAME=%q\n' scheduler
    printf 'SVC_USER=%q\n' "$user"
    printf 'SVC_DIR=%q\n' "$prefix"
    printf 'SVC_RUN=%q\n' "$prefix/run"
    printf 'SVC_LOG=%q\n' "$prefix/log/scheduler.log"
    printf 'SVC_ENV=(%q %q %q %q %q' PATH=/usr/local/bin:/usr/bin:/bin "HOME=$prefix" \
        "USER=$user" "LOGNAME=$user" LANG=C.UTF-8
    for e in "${service_env[@]}"; do printf ' %q' "$e"; done
    printf ')\n'
    printf 'SVC_CMD=(%q --config %q)\n' "$prefix/bin/autotest-scheduler" "$installed_config"
    sed -n '/^# ---- service body ----$/,$p' "$here/service.sh"
} >"$stage/$service_script"
chmod 755 "$stage/$service_script"
say "staged the new files in $stage"

if [ -n "$db_dir" ]; then
    if [ "$db_dir" = "$data" ] || [[ $db_dir == "$data"/* ]]; then
        if [ ! -d "$data" ]; then
            install -d -m 750 -o "$user" -g "$user" "$data"
            say "created the data directory $data, owned by $user"
        else
            chown "$user:$user" "$data"
        fi
        [ -d "$db_dir" ] || install -d -m 750 -o "$user" -g "$user" "$db_dir"
    elif [ ! -d "$db_dir" ]; then
        mkdir -p "$(dirname "$db_dir")"
        install -d -m 750 -o "$user" -g "$user" "$db_dir"
        say "created $db_dir for the database, owned by $user"
    fi
    # SQLite writes the file and its -wal and -shm files beside it.
    runuser -u "$user" -- test -w "$db_dir" ||
        die "user $user cannot write $db_dir, where the SQLite database $db_path lives: chown $user it, or use a relative [AUTOTEST_WEB] database (it then goes into $data)"
    if [ -e "$db_path" ] && [ "$(stat -c %U "$db_path")" != "$user" ]; then
        chown "$user:$user" "$db_path" "$db_path-wal" "$db_path-shm" 2>/dev/null || true
        say "gave the existing database $db_path to $user"
    fi
    say "SQLite database: $db_path"
fi

# --- stop, swap, start ---------------------------------------------------
# The systemd unit (used when the machine runs systemd).
scheduler_unit() {
    echo "# Written by deploy/install-scheduler.sh"
    echo "[Unit]"
    echo "Description=Autotest scheduler"
    echo "Wants=network-online.target"
    echo "After=network-online.target"
    echo
    echo "[Service]"
    echo "Type=simple"
    echo "User=$user"
    echo "Group=$user"
    echo "WorkingDirectory=$prefix"
    for e in "${service_env[@]}"; do echo "Environment=\"$e\""; done
    echo "ExecStart=$prefix/bin/autotest-scheduler --config $installed_config"
    echo "Restart=on-failure"
    echo "RestartSec=5"
    echo
    echo "[Install]"
    echo "WantedBy=multi-user.target"
}

has_systemd() { [ -d /run/systemd/system ]; }
if has_systemd && systemctl is-active --quiet "$unit" 2>/dev/null; then
    say "stopping the running scheduler (systemctl stop $unit)"
    systemctl stop "$unit"
elif [ -x "$prefix/bin/$service_script" ] && "$prefix/bin/$service_script" status >/dev/null 2>&1; then
    say "stopping the running scheduler ($prefix/bin/$service_script stop)"
    "$prefix/bin/$service_script" stop >&2
fi
for f in autotest-scheduler atest "$service_script"; do
    mv -f "$stage/$f" "$prefix/bin/$f"
done
mv -f "$stage/global_config.ini" "$installed_config"
say "installed autotest-scheduler and atest in $prefix/bin, the config as $installed_config"
if [ "$link_atest" = 1 ]; then
    ln -sfn "$prefix/bin/atest" /usr/local/bin/atest
    say "linked /usr/local/bin/atest to $prefix/bin/atest"
fi
runuser -u "$user" -- test -r "$installed_config" || die "user $user cannot read $installed_config (check the directories above it)"
runuser -u "$user" -- test -x "$prefix/bin/autotest-scheduler" || die "user $user cannot run $prefix/bin/autotest-scheduler"

if has_systemd; then
    unit_file=/etc/systemd/system/$unit
    scheduler_unit >"$unit_file.new"
    mv -f "$unit_file.new" "$unit_file"
    systemctl daemon-reload
    systemctl enable --quiet "$unit"
    systemctl start "$unit"
    say "service: systemd unit $unit_file (enabled, started; logs: journalctl -u $unit)"
else
    say "service: no systemd here (/run/systemd/system is missing): $prefix/bin/$service_script start|stop|status, a supervisor loop running the scheduler as $user, log $prefix/log/scheduler.log"
    "$prefix/bin/$service_script" start >&2
fi

# 200: all is well; 503: the scheduler runs but its database or broker is down (the
# body names which), which an install does not wait for.
health_code() { curl "${curl_tls[@]}" -sS -m 5 -o /dev/null -w '%{http_code}' "$health_url" 2>/dev/null; }
answers() { case $(health_code) in 200 | 503) return 0 ;; *) return 1 ;; esac; }
wait_until "$timeout" answers ||
    die "the scheduler does not answer $health_url after $timeout s (see $prefix/log/scheduler.log, or journalctl -u $unit)"
if [ "$(health_code)" = 503 ]; then
    say "warning: the scheduler answers $health_url but something it needs is down: $(curl "${curl_tls[@]}" -sS -m 5 "$health_url" 2>/dev/null)"
else
    say "the scheduler answers $health_url"
fi
