#!/usr/bin/env bash
# Shared helpers for the deploy/ scripts.  Source it:
#
#     . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# It deliberately does not change the caller's shell options (the calling
# scripts run with `set -euo pipefail`; an interactive shell that sources this
# file for testing should not be killed by `set -e`).  Every function works
# with or without errexit/nounset.
#
# Functions:
#   say MSG...            print "==> MSG" to stderr
#   die MSG...            print "error: MSG" to stderr and exit 1
#   need_cmd CMD [PKG]    make sure CMD exists, apt-get installing PKG if root
#   ensure_rust           cargo on PATH (installs rustup if root and missing)
#   ensure_rsync          rsync + ssh client
#   ensure_chromium       Debian's chromium and chromium-driver (the browser the
#                         page tests drive over WebDriver)
#   ensure_sshd           /usr/sbin/sshd and ssh-keygen present (for a private
#                         results host on loopback; the system sshd is not started)
#   ensure_rabbitmq       broker on 127.0.0.1:5672 + management API on :15672
#   ensure_mariadb        server answering, test user autotest_test usable over
#                         TCP; exports AUTOTEST_TEST_MYSQL_URL
#   config_get PROGRAM FILE SECTION KEY   a global_config.ini value as PROGRAM
#                         (autotest-scheduler or drone-worker) reads it, with the
#                         AUTOTEST_* environment overrides; as written (before
#                         defaults and path resolution), empty when absent or blank
#   ini_path VALUE BASE   VALUE if absolute, else BASE/VALUE (relative paths in the
#                         config are relative to the config file's directory)
#   ensure_user NAME HOME make NAME a system user (nologin shell) unless it exists

# Daemons and admin tools live in sbin; a non-root PATH may lack it.
case ":$PATH:" in
    *:/usr/sbin:*) ;;
    *) PATH="$PATH:/usr/sbin:/sbin" ;;
esac

AUTOTEST_RABBITMQ_HOST=127.0.0.1
AUTOTEST_RABBITMQ_PORT=5672
AUTOTEST_RABBITMQ_MGMT_URL=http://127.0.0.1:15672
AUTOTEST_MYSQL_TEST_USER=autotest_test
AUTOTEST_MYSQL_TEST_PASSWORD=autotest_test

say() {
    printf '==> %s\n' "$*" >&2
}

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

is_root() {
    [ "$(id -u)" -eq 0 ]
}

# wait_until SECONDS CMD...: run CMD every second until it succeeds or
# SECONDS have passed.  Returns CMD's success.
wait_until() {
    local limit=$1
    shift
    local deadline=$((SECONDS + limit))
    while :; do
        if "$@"; then
            return 0
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            return 1
        fi
        sleep 1
    done
}

# ------------------------------------------------------ global_config ----

config_get() {
    "$1" --config "$2" --get "$3.$4" ||
        die "$1 cannot read [$3] $4 from $2"
}

ini_path() {
    case $1 in
        /*) printf '%s\n' "$1" ;;
        *) printf '%s/%s\n' "${2%/}" "$1" ;;
    esac
}

# ----------------------------------------------------------------- users ----

ensure_user() {
    local name=$1 home=$2 nologin
    if id -u "$name" >/dev/null 2>&1; then
        say "user $name exists already ($(getent passwd "$name" | cut -d: -f6) is its home)"
        return 0
    fi
    nologin=$(command -v nologin 2>/dev/null || echo /usr/sbin/nologin)
    useradd --system --user-group --home-dir "$home" --no-create-home \
        --shell "$nologin" --comment "Autotest" "$name" ||
        die "useradd $name failed"
    say "created system user $name (home $home, shell $nologin)"
}

_LIB_APT_UPDATED=${_LIB_APT_UPDATED:-}

# apt_install PKG...: install packages as root, or die telling the user what
# to run.
apt_install() {
    if ! is_root; then
        die "missing package(s) $*; install with: sudo apt-get install -y $*"
    fi
    command -v apt-get >/dev/null 2>&1 ||
        die "apt-get not found; install $* with your system's package manager"
    if [ -z "$_LIB_APT_UPDATED" ]; then
        say "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -q ||
            die "apt-get update failed"
        _LIB_APT_UPDATED=1
    fi
    say "apt-get install -y $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" ||
        die "apt-get install -y $* failed"
}

# need_cmd CMD [PKG]: make sure CMD is available; PKG defaults to CMD.
need_cmd() {
    local cmd=$1 pkg=${2:-$1}
    if command -v "$cmd" >/dev/null 2>&1; then
        return 0
    fi
    say "$cmd not found (Debian package $pkg)"
    apt_install "$pkg"
    hash -r
    command -v "$cmd" >/dev/null 2>&1 ||
        die "$cmd still not found after installing $pkg"
}

# ---------------------------------------------------------------- rust ----

ensure_rust() {
    if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
        PATH="$HOME/.cargo/bin:$PATH"
        export PATH
        say "using cargo from $HOME/.cargo/bin"
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        local how='curl https://sh.rustup.rs -sSf | sh -s -- -y'
        if ! is_root; then
            die "cargo not found; install Rust with: $how   (then: . \"\$HOME/.cargo/env\")"
        fi
        need_cmd curl curl
        say "cargo not found; installing Rust with rustup: $how"
        curl --proto '=https' --tlsv1.2 https://sh.rustup.rs -sSf | sh -s -- -y ||
            die "rustup install failed; install Rust by hand: $how"
        PATH="$HOME/.cargo/bin:$PATH"
        export PATH
        command -v cargo >/dev/null 2>&1 || die "cargo still not found after rustup install"
    fi
    say "cargo: $(cargo --version 2>/dev/null || echo '?') ($(command -v cargo))"
}

# ensure_cargo_component SUBCOMMAND COMPONENT: e.g. ensure_cargo_component
# clippy clippy.  Uses rustup when the subcommand is missing.
ensure_cargo_component() {
    local sub=$1 comp=$2
    if cargo "$sub" --version >/dev/null 2>&1; then
        return 0
    fi
    if command -v rustup >/dev/null 2>&1; then
        say "cargo $sub missing; rustup component add $comp"
        rustup component add "$comp" || die "rustup component add $comp failed"
    else
        die "cargo $sub not available; install the $comp component (rustup component add $comp)"
    fi
}

# --------------------------------------------------------------- rsync ----

ensure_rsync() {
    need_cmd rsync rsync
    need_cmd ssh openssh-client
    say "rsync and ssh present"
}

# ------------------------------------------------------------ chromium ----

# The page tests (tests/tests/browser.rs) start their own headless chromium through
# chromedriver; nothing is left running.
ensure_chromium() {
    need_cmd chromium chromium
    need_cmd chromedriver chromium-driver
    say "chromium and chromedriver present ($(chromedriver --version 2>/dev/null | cut -d' ' -f1-2))"
}

# ---------------------------------------------------------------- sshd ----

# The tests and the chaos run start an sshd of their own (tests/src/sshd.rs) as a
# results host on loopback, with their own keys and config; the system's sshd is
# neither started nor configured here.
ensure_sshd() {
    need_cmd ssh-keygen openssh-client
    if [ ! -x /usr/sbin/sshd ]; then
        say "/usr/sbin/sshd not found (Debian package openssh-server)"
        apt_install openssh-server
        [ -x /usr/sbin/sshd ] || die "/usr/sbin/sshd still not found after installing openssh-server"
    fi
    # sshd started as root refuses to run without its privilege separation
    # directory, which the package's service unit would otherwise create.
    if is_root && [ ! -d /run/sshd ]; then
        say "creating sshd's privilege separation directory /run/sshd"
        install -d -m 755 /run/sshd || die "cannot create /run/sshd"
    fi
    say "sshd present ($(/usr/sbin/sshd -V 2>&1 | head -n 1 || echo '?'))"
}

# ------------------------------------------------------------ rabbitmq ----

_rabbitmq_port_up() {
    timeout 3 bash -c "exec 3<>/dev/tcp/$AUTOTEST_RABBITMQ_HOST/$AUTOTEST_RABBITMQ_PORT" \
        >/dev/null 2>&1
}

_rabbitmq_mgmt_up() {
    curl -fsS -m 5 -u guest:guest "$AUTOTEST_RABBITMQ_MGMT_URL/api/overview" \
        >/dev/null 2>&1
}

ensure_rabbitmq() {
    need_cmd rabbitmq-server rabbitmq-server
    need_cmd rabbitmqctl rabbitmq-server
    need_cmd rabbitmq-plugins rabbitmq-server
    need_cmd curl curl
    need_cmd timeout coreutils

    if _rabbitmq_port_up; then
        say "RabbitMQ already running ($AUTOTEST_RABBITMQ_HOST:$AUTOTEST_RABBITMQ_PORT answers)"
    else
        is_root || die "RabbitMQ is not answering on $AUTOTEST_RABBITMQ_HOST:$AUTOTEST_RABBITMQ_PORT; start it with: sudo rabbitmq-server -detached"
        if timeout 20 rabbitmqctl -q status >/dev/null 2>&1; then
            # Erlang node is up but the AMQP listener is not: app stopped.
            say "RabbitMQ node is up but port $AUTOTEST_RABBITMQ_PORT is closed; rabbitmqctl start_app"
            timeout 60 rabbitmqctl -q start_app || say "rabbitmqctl start_app failed"
        else
            say "RabbitMQ not running; starting it: rabbitmq-server -detached"
            if ! rabbitmq-server -detached; then
                say "rabbitmq-server -detached failed; trying: service rabbitmq-server start"
                timeout 120 service rabbitmq-server start ||
                    die "could not start RabbitMQ (see /var/log/rabbitmq/)"
            fi
        fi
        say "waiting up to 60 s for RabbitMQ to come up"
        wait_until 60 _rabbitmq_port_up ||
            die "RabbitMQ did not start listening on $AUTOTEST_RABBITMQ_HOST:$AUTOTEST_RABBITMQ_PORT within 60 s (see /var/log/rabbitmq/)"
        timeout 60 rabbitmqctl -q await_startup >/dev/null 2>&1 ||
            say "warning: rabbitmqctl await_startup did not succeed (port answers, continuing)"
        say "RabbitMQ started"
    fi

    if _rabbitmq_mgmt_up; then
        say "RabbitMQ management API already answering ($AUTOTEST_RABBITMQ_MGMT_URL)"
    else
        is_root || die "RabbitMQ management API not answering; enable it with: sudo rabbitmq-plugins enable rabbitmq_management"
        say "enabling RabbitMQ management plugin: rabbitmq-plugins enable rabbitmq_management"
        timeout 120 rabbitmq-plugins -q enable rabbitmq_management >/dev/null ||
            die "rabbitmq-plugins enable rabbitmq_management failed"
        say "waiting up to 30 s for $AUTOTEST_RABBITMQ_MGMT_URL/api/overview"
        wait_until 30 _rabbitmq_mgmt_up ||
            die "RabbitMQ management API did not answer at $AUTOTEST_RABBITMQ_MGMT_URL/api/overview (guest:guest) within 30 s"
        say "RabbitMQ management API answering"
    fi
}

# ------------------------------------------------------------- mariadb ----

_mariadb_ping() {
    # Exit status is 0 whenever the server answers, even on "access denied".
    timeout 10 mariadb-admin --connect-timeout=3 ping >/dev/null 2>&1
}

_mariadb_tcp() {
    timeout 10 mariadb --connect-timeout=5 --protocol=TCP -h127.0.0.1 -P3306 \
        -u"$AUTOTEST_MYSQL_TEST_USER" -p"$AUTOTEST_MYSQL_TEST_PASSWORD" \
        -N -e "$1" >/dev/null 2>&1
}

# The test user logs in over TCP and may create/drop autotest_test_* databases.
_mariadb_test_user_ok() {
    local probe="autotest_test__probe_$$"
    _mariadb_tcp 'select 1' &&
        _mariadb_tcp "CREATE DATABASE IF NOT EXISTS \`$probe\`; DROP DATABASE \`$probe\`"
}

_mariadb_start() {
    # The SysV script checks liveness with mariadb-admin
    # --defaults-file=/etc/mysql/debian.cnf; without that file it always
    # thinks the server is down (and waits 30 s before failing), so only use
    # it when the file exists.
    if command -v service >/dev/null 2>&1 && [ -x /etc/init.d/mariadb ] &&
        [ -r /etc/mysql/debian.cnf ]; then
        say "starting MariaDB: service mariadb start"
        if timeout 90 service mariadb start >/dev/null 2>&1 && _mariadb_ping; then
            return 0
        fi
        say "service mariadb start did not bring MariaDB up; falling back to start-stop-daemon"
    fi
    need_cmd start-stop-daemon dpkg
    install -d -m 755 -o mysql -g root /run/mysqld 2>/dev/null ||
        install -d -m 755 /run/mysqld
    # /etc/mysql/my.cnf normally says user=mysql; pass it anyway, mariadbd
    # refuses to run as root without it.
    say "starting MariaDB: start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql"
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql ||
        die "start-stop-daemon could not start /usr/sbin/mariadbd"
}

ensure_mariadb() {
    need_cmd mariadbd mariadb-server
    need_cmd mariadb mariadb-client
    need_cmd mariadb-admin mariadb-client
    need_cmd timeout coreutils

    if _mariadb_ping; then
        say "MariaDB already running (mariadb-admin ping answers)"
    else
        is_root || die "MariaDB is not running; start it as root (sudo service mariadb start, or sudo start-stop-daemon --start --background --exec /usr/sbin/mariadbd -- --user=mysql)"
        _mariadb_start
        say "waiting up to 60 s for MariaDB to answer"
        wait_until 60 _mariadb_ping ||
            die "MariaDB did not answer mariadb-admin ping within 60 s (see /var/log/mysql/ or syslog)"
        say "MariaDB started"
    fi

    local u=$AUTOTEST_MYSQL_TEST_USER p=$AUTOTEST_MYSQL_TEST_PASSWORD
    export AUTOTEST_TEST_MYSQL_URL="mysql://$u:$p@127.0.0.1:3306"

    local h sql=""
    for h in localhost 127.0.0.1; do
        sql+="CREATE USER IF NOT EXISTS '$u'@'$h' IDENTIFIED BY '$p'; "
        sql+="ALTER USER '$u'@'$h' IDENTIFIED BY '$p'; "
        sql+="GRANT ALL PRIVILEGES ON \`autotest\\_test\\_%\`.* TO '$u'@'$h'; "
    done

    if _mariadb_test_user_ok; then
        say "MariaDB test user $u already set up (logs in over TCP, can create autotest_test_* databases)"
    else
        # Fresh Debian: root@localhost authenticates with unix_socket, which a
        # TCP client cannot use, so tests get a dedicated password user that
        # may only touch databases named autotest_test_*.
        is_root || die "MariaDB test user $u missing or lacking rights; run this SQL as root (sudo mariadb): $sql"
        say "creating MariaDB user $u (@localhost, @127.0.0.1) with all rights on autotest_test_* databases"
        mariadb -uroot -e "$sql" ||
            die "creating MariaDB user $u failed (ran: mariadb -uroot over the socket)"
        _mariadb_test_user_ok ||
            die "MariaDB user $u still cannot log in / create databases: mariadb -h127.0.0.1 -P3306 -u$u -p$p -e 'select 1'"
        say "MariaDB test user $u set up; logs in over TCP"
    fi
    say "AUTOTEST_TEST_MYSQL_URL=$AUTOTEST_TEST_MYSQL_URL"
}

# Where atest reads its API token when neither --token nor $ATEST_TOKEN is given.
atest_token_file() {
    echo "${XDG_CONFIG_HOME:-$HOME/.config}/autotest/token"
}

# ensure_admin_token ATEST SERVER NAME SCHEDULER_CMD...: makes sure atest has a token
# that works on the scheduler at SERVER. A token file that already works is kept;
# otherwise `SCHEDULER_CMD... add-user NAME --admin` makes NAME an admin (or gives the
# existing user a new token) and the token is written, mode 600, where atest finds it.
# A previous token file that does not work here is kept beside it as token.old.
ensure_admin_token() {
    local atest=$1 server=$2 name=$3
    shift 3
    local file
    file=$(atest_token_file)
    if [ -s "$file" ] && "$atest" --server "$server" whoami >/dev/null 2>&1; then
        say "atest's token ($file) already works here: $("$atest" --server "$server" whoami)"
        return 0
    fi
    if [ -e "$file" ]; then
        mv -f "$file" "$file.old"
        say "kept the previous token file, not valid on this scheduler, as $file.old"
    fi
    local token
    token=$("$@" add-user "$name" --admin) || die "could not create the admin user $name"
    mkdir -p "$(dirname "$file")"
    (umask 077 && printf '%s\n' "$token" >"$file")
    say "admin user $name: its API token is in $file, where atest reads it"
}

# ensure_harness_venv DIR: a Python virtual environment in DIR with the test
# harnesses whose results the drone parses (avocado-framework 113 and pytest) and the
# SMTP server the job-end mail is tested against (aiosmtpd), from the Python package
# registry. Kept between runs; remade when incomplete.
ensure_harness_venv() {
    local venv=$1
    if [ -x "$venv/bin/avocado" ] && [ -x "$venv/bin/pytest" ] &&
        "$venv/bin/avocado" --version 2>/dev/null | grep -q '^Avocado 113\.' &&
        "$venv/bin/python" -c 'import aiosmtpd' 2>/dev/null; then
        say "avocado, pytest and aiosmtpd present in $venv"
        return 0
    fi
    need_cmd python3 python3
    if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
        say "python3 cannot make virtual environments (Debian package python3-venv)"
        apt_install python3-venv
    fi
    say "making a Python virtual environment in $venv with avocado-framework 113, pytest and aiosmtpd"
    rm -rf "$venv"
    python3 -m venv "$venv" || die "python3 -m venv $venv failed"
    "$venv/bin/pip" install -q --disable-pip-version-check "avocado-framework==113.0" pytest aiosmtpd ||
        die "pip could not install avocado-framework 113, pytest and aiosmtpd into $venv (is the Python package registry reachable?)"
    say "installed: $("$venv/bin/avocado" --version), $("$venv/bin/pytest" --version 2>&1)"
}
