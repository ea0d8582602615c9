#!/bin/sh
# A stand-in for Autotest's autoserv, for the demo and the tests: it takes autoserv's
# arguments (-p -r DIR -m HOSTS -u OWNER -l LABEL CONTROL), records them one per line
# in DIR/autoserv.args, and runs the control file as a shell script in DIR with
# AUTOSERV_HOSTS, AUTOSERV_OWNER and AUTOSERV_LABEL set. Its exit status is the
# control file's. A real lab points [AUTOSERV] command at autoserv itself.
#
# Special tasks (-v verify, -R repair, -C cleanup; Autotest's flags) run no control
# file. With --state-dir DIR they act on files there, so tests and demos can break
# hosts: verify fails while DIR/broken-HOST exists; repair fails while
# DIR/unrepairable-HOST exists and otherwise removes DIR/broken-HOST; cleanup fails
# while DIR/cleanup-fails-HOST exists; verify waits while DIR/hold-verify-HOST exists,
# cleanup while DIR/hold-cleanup-HOST exists.
# Each task appends "TASK HOST" to DIR/tasks.log.
set -u
results=. hosts='' owner='' label='' control='' mode=job state=''
for arg in "$@"; do printf '%s\n' "$arg"; done > "${TMPDIR:-/tmp}/autoserv.args.$$"
while [ $# -gt 0 ]; do
    case "$1" in
        -p) ;;
        -v|--verify) mode=verify ;;
        -R|--repair) mode=repair ;;
        -C|--cleanup) mode=cleanup ;;
        --state-dir) state=$2; shift ;;
        -r) results=$2; shift ;;
        -m) hosts=$2; shift ;;
        -u) owner=$2; shift ;;
        -l) label=$2; shift ;;
        *) control=$1 ;;
    esac
    shift
done
mv "${TMPDIR:-/tmp}/autoserv.args.$$" "$results/autoserv.args"
if [ "$mode" != job ]; then
    for host in $(printf '%s' "$hosts" | tr ',' ' '); do
        [ -n "$state" ] || continue
        printf '%s %s\n' "$mode" "$host" >> "$state/tasks.log"
        case $mode in
            verify)
                while [ -e "$state/hold-verify-$host" ]; do sleep 0.05; done
                if [ -e "$state/broken-$host" ]; then
                    echo "verify: $host is broken"; exit 1
                fi ;;
            repair)
                if [ -e "$state/unrepairable-$host" ]; then
                    echo "repair: $host cannot be repaired"; exit 1
                fi
                rm -f "$state/broken-$host" ;;
            cleanup)
                while [ -e "$state/hold-cleanup-$host" ]; do sleep 0.05; done
                if [ -e "$state/cleanup-fails-$host" ]; then
                    echo "cleanup: failed on $host"; exit 1
                fi ;;
        esac
    done
    echo "$mode passed on $hosts"
    exit 0
fi
export AUTOSERV_HOSTS="$hosts" AUTOSERV_OWNER="$owner" AUTOSERV_LABEL="$label"
cd "$results" || exit 2
exec /bin/sh "$control"
