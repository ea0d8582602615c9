#!/usr/bin/env bash
# RabbitMQ for a lab: a vhost, one user for the scheduler and one per drone, each
# with the least privilege it needs, and a definitions file the management UI can
# import (Overview → Import definitions).
#
# usage: deploy/rabbitmq-setup.sh --drones D1,D2,... [--vhost VHOST] [--prefix PREFIX]
#                                 [--host HOST] [--out DIR] [--api URL]
#   --drones    the drone names, as in [SCHEDULER] drones (required)
#   --vhost     the lab's vhost (default: autotest)
#   --prefix    user names are PREFIXscheduler and PREFIXdrone-NAME (default: autotest-)
#   --host      the broker's address in the URLs written out (default: 127.0.0.1)
#   --out DIR   where to write credentials (mode 600: one `[BROKER] url` per program)
#               and definitions.json (default: ./rabbitmq-<vhost>)
#   --api URL   the management API, with an administrator's credentials
#               (default: $AUTOTEST_TEST_RABBITMQ_API or http://guest:guest@127.0.0.1:15672)
#
# Permissions (RabbitMQ's configure / write / read regular expressions):
#   scheduler   everything named autotest.* in the vhost, nothing else
#   drone D     configure: its queues autotest.drone.D and autotest.drone.D.control and
#               the version marker autotest.schema; write: those queues (to bind them),
#               autotest.status (reports), autotest.dead-letter and the marker's
#               autotest.schema.vN; read: its queues, the exchanges autotest.jobs and
#               autotest.control (to bind to them) and autotest.schema.
#               So it cannot read another drone's queue, publish jobs, or declare
#               anything shared.
# Running it again keeps the users and their passwords unless --reset-passwords is
# given, and sets the permissions again.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=deploy/lib.sh
. "$here/lib.sh"

usage() {
    sed -n '2,26s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
}

drones="" vhost=autotest prefix=autotest- host=127.0.0.1 out="" reset=0
api=${AUTOTEST_TEST_RABBITMQ_API:-http://guest:guest@127.0.0.1:15672}
while [ $# -gt 0 ]; do
    case "$1" in
        --drones) drones=$2; shift ;;
        --vhost) vhost=$2; shift ;;
        --prefix) prefix=$2; shift ;;
        --host) host=$2; shift ;;
        --out) out=$2; shift ;;
        --api) api=$2; shift ;;
        --reset-passwords) reset=1 ;;
        -h | --help) usage; exit 0 ;;
        *) usage; die "unknown argument: $1" ;;
    esac
    shift
done
[ -n "$drones" ] || { usage; die "--drones is required"; }
out=${out:-./rabbitmq-$vhost}
need_cmd curl curl
need_cmd python3 python3

valid_name() { [[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] && [[ $1 != *..* ]]; }
valid_name "$vhost" || die "invalid vhost name: $vhost"
IFS=',' read -r -a drone_list <<<"$drones"
for d in "${drone_list[@]}"; do
    valid_name "$d" || die "invalid drone name: $d (letters, digits, '-', '_' and '.')"
done

if command -v rabbitmq-plugins >/dev/null 2>&1 && is_root; then
    if ! rabbitmq-plugins list -e -m 2>/dev/null | grep -qx rabbitmq_management; then
        say "enabling the management plugin"
        rabbitmq-plugins enable rabbitmq_management >/dev/null
    fi
fi

# The management API, with its credentials taken out of the URL for curl.
api_base=$(python3 -c 'import sys,urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(f"{p.scheme}://{p.hostname}:{p.port or 15672}")' "$api")
api_auth=$(python3 -c 'import sys,urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(u.unquote(p.username or "guest") + ":" + u.unquote(p.password or "guest"))' "$api")
enc() { python3 -c 'import sys,urllib.parse as u; print(u.quote(sys.argv[1], safe=""))' "$1"; }
call() { # METHOD PATH [JSON]
    local method=$1 path=$2 body=${3:-}
    if [ -n "$body" ]; then
        curl -fsS -m 20 -u "$api_auth" -X "$method" -H 'content-type: application/json' \
            --data "$body" "$api_base$path"
    else
        curl -fsS -m 20 -u "$api_auth" -X "$method" "$api_base$path"
    fi
}
call GET /api/overview >/dev/null ||
    die "the management API at $api_base does not answer with these credentials (is rabbitmq_management enabled?)"

v=$(enc "$vhost")
call PUT "/api/vhosts/$v" '{"description":"Autotest lab"}' >/dev/null
say "vhost $vhost ready"

mkdir -p "$out"
umask 077
creds="$out/credentials"
touch "$creds"
chmod 600 "$creds"

# password NAME: the stored one, or a new one (also on --reset-passwords).
password() {
    local line
    line=$(grep -E "^$1 " "$creds" 2>/dev/null | tail -n 1 || true)
    if [ "$reset" -eq 0 ] && [ -n "$line" ]; then
        python3 -c 'import sys,urllib.parse as u; print(u.unquote(u.urlsplit(sys.argv[1].split(" ",1)[1]).password))' "$line"
    else
        head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'
    fi
}

# user NAME PASSWORD CONFIGURE WRITE READ
user() {
    local name=$1 pass=$2
    call PUT "/api/users/$(enc "$name")" \
        "$(python3 -c 'import json,sys; print(json.dumps({"password": sys.argv[1], "tags": ""}))' "$pass")" >/dev/null
    call PUT "/api/permissions/$v/$(enc "$name")" \
        "$(python3 -c 'import json,sys; print(json.dumps({"configure": sys.argv[1], "write": sys.argv[2], "read": sys.argv[3]}))' "$3" "$4" "$5")" >/dev/null
}

url() { # NAME PASSWORD
    echo "amqp://$(enc "$1"):$(enc "$2")@$host:5672/$v"
}

re() { printf '%s' "$1" | sed 's/[.]/\\./g'; }

lines=()
sched="${prefix}scheduler"
pass=$(password "$sched")
user "$sched" "$pass" '^autotest\.' '^autotest\.' '^autotest\.'
lines+=("$sched $(url "$sched" "$pass")")
say "user $sched: everything named autotest.* in $vhost"
users=("$sched")
for d in "${drone_list[@]}"; do
    name="${prefix}drone-$d"
    q="autotest\\.drone\\.$(re "$d")"
    pass=$(password "$name")
    user "$name" "$pass" \
        "^($q|$q\\.control|autotest\\.schema)\$" \
        "^($q|$q\\.control|autotest\\.status|autotest\\.dead-letter|autotest\\.schema\\.v[0-9]+)\$" \
        "^($q|$q\\.control|autotest\\.jobs|autotest\\.control|autotest\\.schema)\$"
    lines+=("$name $(url "$name" "$pass")")
    users+=("$name")
    say "user $name: consumes only autotest.drone.$d(.control), publishes only status"
done
printf '%s\n' "${lines[@]}" >"$creds"

# The definitions of this vhost and its users, from the broker's own export.
call GET /api/definitions | python3 -c '
import json, sys
vhost, users = sys.argv[1], set(sys.argv[2:])
d = json.load(sys.stdin)
keep = {
    "rabbit_version": d.get("rabbit_version"),
    "users": [u for u in d.get("users", []) if u["name"] in users],
    "vhosts": [x for x in d.get("vhosts", []) if x["name"] == vhost],
    "permissions": [p for p in d.get("permissions", []) if p["vhost"] == vhost and p["user"] in users],
}
for key in ("queues", "exchanges", "bindings", "policies"):
    keep[key] = [x for x in d.get(key, []) if x.get("vhost") == vhost]
json.dump(keep, sys.stdout, indent=2)
' "$vhost" "${users[@]}" >"$out/definitions.json"

say "wrote $creds (the [BROKER] url of each program; keep it secret)"
say "wrote $out/definitions.json (management UI: Overview → Import definitions)"
