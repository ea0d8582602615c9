#!/bin/sh
# A stand-in for Autotest's autoserv, for the demo and the tests: it takes autoserv's
# arguments (-p -r DIR -m HOSTS -u OWNER -l LABEL CONTROL), records them one per line
# in DIR/autoserv.args, and runs the control file as a shell script in DIR with
# AUTOSERV_HOSTS, AUTOSERV_OWNER and AUTOSERV_LABEL set. Its exit status is the
# control file's. A real lab points [AUTOSERV] command at autoserv itself.
set -u
results=. hosts= owner= label= control=
for arg in "$@"; do printf '%s\n' "$arg"; done > "${TMPDIR:-/tmp}/autoserv.args.$$"
while [ $# -gt 0 ]; do
    case "$1" in
        -p|-v|--verify|--repair|--cleanup) ;;
        -r) results=$2; shift ;;
        -m) hosts=$2; shift ;;
        -u) owner=$2; shift ;;
        -l) label=$2; shift ;;
        *) control=$1 ;;
    esac
    shift
done
mv "${TMPDIR:-/tmp}/autoserv.args.$$" "$results/autoserv.args"
export AUTOSERV_HOSTS="$hosts" AUTOSERV_OWNER="$owner" AUTOSERV_LABEL="$label"
cd "$results" || exit 2
exec /bin/sh "$control"
