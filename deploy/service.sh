# The body of the service scripts that deploy/install-drone.sh and
# deploy/install-scheduler.sh install on a machine without systemd
# (`$PREFIX/bin/autotest-drone-worker-service`, `$PREFIX/bin/autotest-scheduler-service`).
# It is not run from here: the install scripts write a header with the settings below,
# followed by this file from the line `# ---- service body ----` on.
#
# Settings (the header sets them):
#   SVC_NAME    drone-worker or scheduler: names the pid files and the log
#   SVC_USER    the user the program runs as (runuser -u)
#   SVC_DIR     the directory it runs in
#   SVC_RUN     where the pid files go ($PREFIX/run)
#   SVC_LOG     the log file ($PREFIX/log/$SVC_NAME.log)
#   SVC_ENV     array of NAME=VALUE set for the program
#   SVC_CMD     array: the program and its arguments
#
# usage: SCRIPT start|stop|status
#   start   starts a supervisor loop with setsid, detached from the terminal or SSH
#           session. The loop runs the program as SVC_USER and starts it again 5 s
#           after it exits non-zero; it ends when the program exits 0 or after `stop`.
#           Returns once the program runs.
#   stop    sends SIGTERM to the program (never to runuser, which would SIGKILL it
#           2 s later) and waits, without a time limit, until the program and the
#           loop have exited. A drone worker first finishes its running entries (the
#           drain), so this can take as long as the longest job.
#   status  prints the pids; exits 0 when the program runs, 3 when it does not
#           (1 when the loop runs but the program does not, e.g. between restarts).
# The loop's pid is in $SVC_RUN/$SVC_NAME-loop.pid, the program's in
# $SVC_RUN/$SVC_NAME.pid; both are written by root.
# ---- service body ----
# shellcheck shell=bash disable=SC2154
set -u

restart_delay=5
loop_pid_file=$SVC_RUN/$SVC_NAME-loop.pid
pid_file=$SVC_RUN/$SVC_NAME.pid
stop_flag=$SVC_RUN/$SVC_NAME.stopping
self=$(readlink -f "$0")

log() {
    printf '%s %s-service: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$SVC_NAME" "$*"
}

read_pid() {
    local pid=""
    [ -r "$1" ] && read -r pid <"$1" 2>/dev/null
    case $pid in
        '' | *[!0-9]*) return 1 ;;
    esac
    echo "$pid"
}

# The loop's pid, if it runs: a live process running this script's `_loop`.
loop_pid() {
    local pid
    pid=$(read_pid "$loop_pid_file") || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- " _loop" || return 1
    echo "$pid"
}

# The program's pid, if it runs: a live process whose executable is SVC_CMD[0]
# (shown with " (deleted)" once an upgrade has replaced the file).
program_pid() {
    local pid exe
    pid=$(read_pid "$pid_file") || return 1
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
    case $exe in
        "${SVC_CMD[0]}" | "${SVC_CMD[0]} (deleted)") echo "$pid" ;;
        *) return 1 ;;
    esac
}

# runuser forks and runs the program as its child; find that child.
child_of() {
    local parent=$1 child="" i
    for i in $(seq 1 100); do
        child=$(cat "/proc/$parent/task/$parent/children" 2>/dev/null) || child=""
        child=${child%% *}
        if [ -n "$child" ]; then
            echo "$child"
            return 0
        fi
        kill -0 "$parent" 2>/dev/null || return 1
        [ "$i" -lt 100 ] && sleep 0.05
    done
    return 1
}

on_term() {
    : >"$stop_flag"
    local pid
    if pid=$(program_pid); then
        log "SIGTERM to $SVC_NAME (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
    fi
}

run_loop() {
    echo "$BASHPID" >"$loop_pid_file"
    rm -f "$stop_flag"
    trap on_term TERM INT
    trap '' HUP
    cd "$SVC_DIR" || exit 1
    local runner pid status
    while :; do
        runuser -u "$SVC_USER" -- env "${SVC_ENV[@]}" "${SVC_CMD[@]}" </dev/null &
        runner=$!
        if pid=$(child_of "$runner"); then
            echo "$pid" >"$pid_file"
            log "started ${SVC_CMD[*]} as $SVC_USER (pid $pid)"
        else
            log "could not find the pid of ${SVC_CMD[0]} (runuser pid $runner)"
        fi
        # A trapped signal interrupts `wait`; keep waiting until runuser has exited.
        while :; do
            wait "$runner"
            status=$?
            kill -0 "$runner" 2>/dev/null || break
        done
        rm -f "$pid_file"
        if [ -e "$stop_flag" ]; then
            log "$SVC_NAME exited with status $status after stop; the loop ends"
            break
        fi
        if [ "$status" -eq 0 ]; then
            log "$SVC_NAME exited with status 0; not restarting it"
            break
        fi
        log "$SVC_NAME exited with status $status; starting it again in $restart_delay s"
        sleep "$restart_delay" &
        wait $! || kill $! 2>/dev/null || true
        if [ -e "$stop_flag" ]; then
            log "stopped while waiting to restart; the loop ends"
            break
        fi
    done
    rm -f "$stop_flag" "$loop_pid_file"
}

start() {
    local pid
    if pid=$(loop_pid); then
        echo "$SVC_NAME is already running (loop pid $pid, program pid $(program_pid || echo '-'))"
        return 0
    fi
    mkdir -p "$SVC_RUN" "$(dirname "$SVC_LOG")"
    rm -f "$stop_flag" "$pid_file"
    setsid "$self" _loop </dev/null >>"$SVC_LOG" 2>&1 &
    local i
    for i in $(seq 1 100); do
        if pid=$(program_pid); then
            echo "$SVC_NAME started (pid $pid, loop pid $(loop_pid || echo '?'); log $SVC_LOG)"
            return 0
        fi
        [ "$i" -lt 100 ] && sleep 0.1
    done
    echo "$SVC_NAME did not start; see $SVC_LOG" >&2
    tail -n 20 "$SVC_LOG" >&2 || true
    return 1
}

stop() {
    local loop pid
    if ! loop=$(loop_pid); then
        if pid=$(program_pid); then
            # A program without its loop (the loop was killed): stop it all the same.
            echo "stopping $SVC_NAME (pid $pid, no supervisor loop)"
            kill -TERM "$pid"
            while kill -0 "$pid" 2>/dev/null; do sleep 0.5; done
            rm -f "$pid_file"
        else
            echo "$SVC_NAME is not running"
        fi
        return 0
    fi
    : >"$stop_flag"
    local waited=0 signaled=""
    while kill -0 "$loop" 2>/dev/null; do
        if [ -z "$signaled" ]; then
            if pid=$(program_pid); then
                echo "stopping $SVC_NAME: SIGTERM to pid $pid; waiting for it to exit"
                kill -TERM "$pid" 2>/dev/null || true
                signaled=$pid
            elif [ "$waited" -eq 0 ]; then
                echo "stopping $SVC_NAME: it is not running now; ending its loop (pid $loop)"
                kill -TERM "$loop" 2>/dev/null || true
            else
                kill -TERM "$loop" 2>/dev/null || true
            fi
        fi
        sleep 1
        waited=$((waited + 1))
        if [ $((waited % 30)) -eq 0 ]; then
            echo "still waiting for $SVC_NAME${signaled:+ (pid $signaled)} to exit (${waited} s)"
        fi
    done
    echo "$SVC_NAME stopped"
}

status() {
    local loop pid
    if pid=$(program_pid); then
        echo "$SVC_NAME is running (pid $pid, loop pid $(loop_pid || echo '-'))"
        return 0
    fi
    if loop=$(loop_pid); then
        echo "$SVC_NAME is not running; its loop (pid $loop) will start it again"
        return 1
    fi
    echo "$SVC_NAME is not running"
    return 3
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    _loop) run_loop ;;
    *)
        echo "usage: $0 start|stop|status" >&2
        exit 2
        ;;
esac
