# shellcheck shell=bash
# Shared helpers for scripts/run, scripts/test, scripts/sqlx-prepare and .ci/run.
#
# Source it from a script running under `set -euo pipefail`. Every function here
# checks its own failures explicitly (`|| die ...`) instead of leaning on `set -e`,
# because bash ignores `set -e` inside a function that is called from an `if`/`||`.
#
# The ensure_* functions make the local machine able to run pushdial whether its
# PostgreSQL/Redis are (a) already running, (b) installed but stopped, or (c) not
# installed at all (then they come from Debian's packages via apt-get, with sudo
# only when we are not root).
#
# Variables exported for the callers:
#   PG_BASE_URL   postgres URL without a database name, e.g. postgres://postgres@127.0.0.1:5432
#   PG_URL_QUERY  query string of a user-supplied DATABASE_URL ("?sslmode=..."), usually empty
#   REDIS_URL     redis://127.0.0.1:6379 unless the user set it
#   PUSHDIAL_ROOT absolute path of the repository root

# Sourcing twice (e.g. .ci/run, then scripts/test in a child) is harmless, but
# within one shell there is nothing to redo.
if [[ -n "${_PUSHDIAL_LIB_LOADED:-}" ]]; then
    return 0
fi
_PUSHDIAL_LIB_LOADED=1

PUSHDIAL_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PUSHDIAL_ROOT

# How long to wait for a service we started before giving up.
PUSHDIAL_SERVICE_TIMEOUT="${PUSHDIAL_SERVICE_TIMEOUT:-30}"

# Local defaults; the user's own DATABASE_URL / REDIS_URL always win.
readonly _PG_HOST=127.0.0.1
readonly _PG_PORT=5432
readonly _PG_PASSWORD=postgres
readonly _REDIS_HOST=127.0.0.1
readonly _REDIS_PORT=6379

# --- messages -----------------------------------------------------------------

# Diagnostics go to stderr so that stdout stays usable for real output.
log() { printf '[pushdial] %s\n' "$*" >&2; }
warn() { printf '[pushdial] warning: %s\n' "$*" >&2; }
die() {
    printf '[pushdial] error: %s\n' "$*" >&2
    exit 1
}

have() { command -v "$1" >/dev/null 2>&1; }

# --- privileges and packages ----------------------------------------------------

# Run a command as root: directly when we are root (CI, containers), else via sudo.
as_root() {
    if [[ "$(id -u)" -eq 0 ]]; then
        "$@"
    elif have sudo; then
        sudo "$@"
    else
        die "need root for: $* (run as root or install sudo)"
    fi
}

# Run a command as the `postgres` OS user, which Debian's pg_hba.conf lets in as
# the database superuser over the Unix socket (peer auth). `cd /` first so psql
# does not complain that it cannot read the caller's working directory.
as_postgres() {
    if [[ "$(id -u)" -eq 0 ]]; then
        if have runuser; then
            (cd / && runuser -u postgres -- "$@")
        else
            (cd / && su -s /bin/sh postgres -c "$(printf '%q ' "$@")")
        fi
    elif have sudo; then
        (cd / && sudo -u postgres -- "$@")
    else
        die "need root or sudo to run as the postgres user: $*"
    fi
}

# Install Debian packages non-interactively. `apt-get update` runs once per
# process: a fresh machine (or container) often has no package lists at all.
apt_install() {
    have apt-get || die "apt-get not found: install $* with your system's package manager, then re-run"
    log "installing $* from Debian's packages (apt-get)"
    if [[ -z "${_PUSHDIAL_APT_UPDATED:-}" ]]; then
        as_root apt-get -o DPkg::Lock::Timeout=120 update -q >&2 ||
            die "apt-get update failed"
        _PUSHDIAL_APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get -o DPkg::Lock::Timeout=120 install -y -q "$@" >&2 ||
        die "apt-get install $* failed"
}

# Make sure command $1 exists, installing Debian package $2 when it does not.
ensure_command() {
    local cmd="$1" pkg="$2"
    have "$cmd" && return 0
    apt_install "$pkg"
    have "$cmd" || die "installed $pkg but '$cmd' is still not on PATH"
}

# wait_until TIMEOUT CMD...: retry CMD once every half second until it succeeds.
wait_until() {
    local timeout="$1"
    shift
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.5
    done
}

# --- Rust -----------------------------------------------------------------------

ensure_rust() {
    # rustup installs into ~/.cargo/bin, which a non-login shell (or CI) may
    # not have on PATH yet.
    if ! have cargo && [[ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]]; then
        export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
    fi
    if ! have cargo; then
        log "cargo (the Rust toolchain) is not installed."
        log "Install it with rustup, as described on https://rustup.rs :"
        log "    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh"
        log "then open a new shell (or run: . \"\$HOME/.cargo/env\") and re-run this script."
        exit 1
    fi
    # Web Push encryption (the `ece` crate) links OpenSSL: the build needs its headers
    # and pkg-config to find them.
    ensure_command pkg-config pkg-config
    if ! pkg-config --exists openssl; then
        apt_install libssl-dev
        pkg-config --exists openssl || die "installed libssl-dev but pkg-config does not find openssl"
    fi
}

# --- Node.js ----------------------------------------------------------------------

# Node 20+ with npm: the test suite runs a real OpenID Connect provider
# (oidc-provider, tests/oidc) and the web build uses npm.
ensure_node() {
    ensure_command node nodejs
    ensure_command npm npm
    local major
    major="$(node -p 'process.versions.node.split(".")[0]')"
    ((major >= 20)) || die "Node.js $major is too old: install Node.js 20 or newer (Debian 13 has it; or https://nodejs.org)"
}

# npm ci in DIR when its node_modules is missing or older than its lockfile.
ensure_npm_packages() {
    local dir="$1"
    if [[ ! -d "$dir/node_modules" || "$dir/package-lock.json" -nt "$dir/node_modules" ]]; then
        log "installing npm packages in $dir"
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2) || die "npm ci failed in $dir"
        touch "$dir/node_modules"
    fi
}

# Builds the web surfaces into web/dist (console, widget.js, web agent) from their
# npm packages; the console uses the TypeScript client in sdk/ts.
build_web() {
    ensure_node
    ensure_npm_packages sdk/ts
    local app
    for app in console widget agent; do
        ensure_npm_packages "web/$app"
    done
    log "building the web surfaces (web/dist)"
    for app in console widget agent; do
        (cd "web/$app" && npm run build --silent >&2) || die "building web/$app failed"
    done
}

# Debian's Chromium for the browser tests (playwright-core drives it; web/e2e).
ensure_chromium() {
    if [[ -z "${CHROMIUM:-}" ]]; then
        ensure_command chromium chromium
        export CHROMIUM
        CHROMIUM="$(command -v chromium)"
    fi
    ensure_npm_packages web/e2e
}

# --- Python -----------------------------------------------------------------------

# The Python SDK's tests (tests/it/sdk_python.rs) run in .pushdial/python-venv, which
# has sdk/python installed (editable) with its test extras: pytest and the pinned model
# generator. Reinstalled when sdk/python/pyproject.toml changes.
ensure_python_sdk() {
    local venv="$PUSHDIAL_ROOT/.pushdial/python-venv"
    ensure_command python3 python3
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
        die "Python $(python3 -V 2>&1) is too old for sdk/python: install Python 3.10 or newer"
    # A venv whose pip does not run (ensurepip failed after bin/python was written, or
    # the system Python it points to is gone) is removed and created again.
    if ! { [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -m pip --version >/dev/null 2>&1; }; then
        rm -rf "$venv"
        # Debian's python3 leaves venv's pip bootstrap to a package of its own.
        python3 -c 'import ensurepip' >/dev/null 2>&1 || apt_install python3-venv
        log "creating the Python SDK's virtual environment (.pushdial/python-venv)"
        python3 -m venv "$venv" >&2 || die "python3 -m venv $venv failed"
    fi
    if [[ ! -f "$venv/.installed" || "$PUSHDIAL_ROOT/sdk/python/pyproject.toml" -nt "$venv/.installed" ]]; then
        log "installing sdk/python and its test packages into .pushdial/python-venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            -e "$PUSHDIAL_ROOT/sdk/python[test]" >&2 || die "pip install -e sdk/python[test] failed"
        touch "$venv/.installed"
    fi
}

# --- PostgreSQL -----------------------------------------------------------------

# psql that never prompts for a password (-w), ignores ~/.psqlrc (-X), fails
# fast when nothing listens, and keeps NOTICEs ("... does not exist, skipping")
# out of our output.
pg_psql() {
    PGCONNECT_TIMEOUT="${PGCONNECT_TIMEOUT:-5}" \
        PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning" \
        psql -X -w -q -v ON_ERROR_STOP=1 "$@"
}

# Can we run a query with this URL?
pg_can_connect() {
    pg_psql "$1" -Atc 'select 1' >/dev/null 2>&1
}

pg_local_ready() {
    pg_isready -q -h "$_PG_HOST" -p "$_PG_PORT" >/dev/null 2>&1
}

# URL of database $1 on the server we use.
pg_url() {
    printf '%s/%s%s' "$PG_BASE_URL" "$1" "${PG_URL_QUERY:-}"
}

# Split a postgres URL into PG_BASE_URL (no database) and PG_URL_QUERY.
# postgres://u:p@h:5432/db?sslmode=require -> postgres://u:p@h:5432 + ?sslmode=require
_pg_set_base_from_url() {
    local url="$1" query="" rest
    if [[ "$url" == *\?* ]]; then
        query="?${url#*\?}"
        url="${url%%\?*}"
    fi
    rest="${url#*://}"
    if [[ "$rest" == */* ]]; then
        url="${url%/*}"
    fi
    PG_BASE_URL="$url"
    PG_URL_QUERY="$query"
    export PG_BASE_URL PG_URL_QUERY
}

# Database name of a postgres URL ("" when it has none).
pg_db_name() {
    local url="${1%%\?*}" rest
    rest="${url#*://}"
    if [[ "$rest" == */* ]]; then
        printf '%s' "${url##*/}"
    fi
}

# Prints "<version> <cluster> <port> <status>" for the cluster on our port, if any.
_pg_local_cluster() {
    have pg_lsclusters || return 0
    # `|| true`: callers capture this with $(...), and under `set -e -o pipefail`
    # a failing pg_lsclusters must mean "no cluster", not a silent exit.
    pg_lsclusters --no-header 2>/dev/null |
        awk -v port="$_PG_PORT" '$3 == port { print $1, $2, $3, $4; exit }' || true
}

# Debian's postgresql package creates a "main" cluster on install, unless
# createcluster.conf says not to: then make one for the newest installed server.
_pg_create_cluster_if_missing() {
    [[ -n "$(_pg_local_cluster)" ]] && return 0
    local ver
    ver="$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -n | tail -n 1 || true)"
    [[ -n "$ver" ]] || die "PostgreSQL was installed but no server version was found in /usr/lib/postgresql"
    log "creating PostgreSQL cluster $ver/main on port $_PG_PORT"
    as_root pg_createcluster --port "$_PG_PORT" "$ver" main >&2 ||
        die "pg_createcluster $ver main failed"
}

# Start an installed cluster. pg_ctlcluster --skip-systemctl-redirect works
# with and without systemd (containers, CI); systemctl/service are fallbacks for
# machines where the cluster is managed differently.
_pg_start_cluster() {
    local ver="$1" name="$2"
    log "starting PostgreSQL cluster $ver/$name"
    as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start >&2 && return 0
    if have systemctl; then
        as_root systemctl start "postgresql@$ver-$name" >&2 && return 0
    fi
    if have service; then
        as_root service postgresql start >&2 && return 0
    fi
    warn "could not start cluster $ver/$name (see /var/log/postgresql/postgresql-$ver-$name.log); waiting in case it is already starting"
}

# Get a PostgreSQL server accepting TCP connections on 127.0.0.1:5432.
_pg_ensure_local_server() {
    if pg_local_ready; then
        return 0
    fi

    local cluster
    cluster="$(_pg_local_cluster)"
    if [[ -z "$cluster" ]]; then
        if have pg_lsclusters && [[ -n "$(pg_lsclusters --no-header 2>/dev/null)" ]]; then
            die "PostgreSQL clusters exist, but none on port $_PG_PORT (see pg_lsclusters); start one there or set DATABASE_URL"
        fi
        log "PostgreSQL is not installed"
        apt_install postgresql
        # On a machine with systemd the package starts the server itself.
        if wait_until 5 pg_local_ready; then
            return 0
        fi
        _pg_create_cluster_if_missing
        cluster="$(_pg_local_cluster)"
    fi

    local ver name
    read -r ver name _ <<<"$cluster"
    _pg_start_cluster "$ver" "$name"

    wait_until "$PUSHDIAL_SERVICE_TIMEOUT" pg_local_ready ||
        die "PostgreSQL did not accept connections on $_PG_HOST:$_PG_PORT within ${PUSHDIAL_SERVICE_TIMEOUT}s (see /var/log/postgresql/postgresql-$ver-$name.log; is listen_addresses including localhost?)"
}

# Find superuser credentials that work over TCP. Debian's default pg_hba.conf
# asks for a password (md5/scram) on 127.0.0.1, and the postgres role has none,
# so as a last resort give it the well-known local password "postgres" through
# the Unix socket, where the postgres OS user gets in without one.
_pg_ensure_superuser_url() {
    local plain="postgres://postgres@$_PG_HOST:$_PG_PORT"
    local with_password="postgres://postgres:$_PG_PASSWORD@$_PG_HOST:$_PG_PORT"

    if pg_can_connect "$plain/postgres"; then
        _pg_set_base_from_url "$plain"
        return 0
    fi
    if pg_can_connect "$with_password/postgres"; then
        _pg_set_base_from_url "$with_password"
        return 0
    fi

    log "setting the password of the local PostgreSQL superuser 'postgres' to '$_PG_PASSWORD' (TCP logins need one)"
    as_postgres psql -X -q -p "$_PG_PORT" -d postgres -v ON_ERROR_STOP=1 \
        -c "alter role postgres with password '$_PG_PASSWORD'" >&2 ||
        die "could not set a password for the postgres role (is this user allowed to sudo?)"

    pg_can_connect "$with_password/postgres" ||
        die "cannot log in as postgres on $_PG_HOST:$_PG_PORT even with a password; check pg_hba.conf, or set DATABASE_URL"
    _pg_set_base_from_url "$with_password"
}

ensure_postgres() {
    # psql/pg_isready are needed in every case, even for a remote server.
    ensure_command psql postgresql-client
    ensure_command pg_isready postgresql-client

    if [[ -n "${DATABASE_URL:-}" ]]; then
        # The user chose a server: touch nothing, only check that it answers.
        # Its own database may not exist yet (scripts/run creates it), so the
        # maintenance database "postgres" counts too.
        _pg_set_base_from_url "$DATABASE_URL"
        if pg_can_connect "$DATABASE_URL" || pg_can_connect "$(pg_url postgres)"; then
            log "PostgreSQL: using DATABASE_URL from the environment"
            return 0
        fi
        die "cannot connect to the PostgreSQL server in DATABASE_URL; fix it, or unset DATABASE_URL to use a local server"
    fi

    _pg_ensure_local_server
    _pg_ensure_superuser_url
    log "PostgreSQL: ready at $_PG_HOST:$_PG_PORT"
}

# Create database $1 on PG_BASE_URL unless it exists. Needs ensure_postgres first.
ensure_database() {
    local name="$1"
    [[ -n "${PG_BASE_URL:-}" ]] || die "ensure_database: call ensure_postgres first"
    # The name goes into SQL: allow only what our own names use.
    [[ "$name" =~ ^[A-Za-z0-9_]+$ ]] || die "ensure_database: unexpected database name '$name'"

    # Connecting is the cheapest check, and the only one that works for a user
    # (from DATABASE_URL) who may enter their own database but not "postgres".
    if pg_can_connect "$(pg_url "$name")"; then
        return 0
    fi
    local exists
    exists="$(pg_psql "$(pg_url postgres)" -Atc "select 1 from pg_database where datname = '$name'")" ||
        die "cannot query the list of databases"
    if [[ "$exists" != 1 ]]; then
        log "creating database $name"
        pg_psql "$(pg_url postgres)" -c "create database \"$name\"" ||
            die "could not create database $name"
    fi
}

# --- Redis ----------------------------------------------------------------------

# True when the Redis at URL $1 (or the local default) answers PONG.
redis_pong() {
    local reply
    if [[ -n "${1:-}" ]]; then
        reply="$(redis-cli --no-auth-warning -u "$1" ping 2>/dev/null)" || return 1
    else
        reply="$(redis-cli -h "$_REDIS_HOST" -p "$_REDIS_PORT" ping 2>/dev/null)" || return 1
    fi
    [[ "$reply" == PONG ]]
}

# Start a throwaway local Redis: no persistence, since pushdial keeps durable
# state in PostgreSQL and Redis only holds presence and fan-out.
_redis_start() {
    local args=(--daemonize yes --bind "$_REDIS_HOST" --port "$_REDIS_PORT" --save "" --appendonly no)
    # Debian's own directory when we may use it (redis-server chdirs there);
    # as a normal user it is not accessible, and /tmp does as well.
    if [[ -d /var/lib/redis && -w /var/lib/redis && -x /var/lib/redis ]]; then
        args+=(--dir /var/lib/redis)
    else
        args+=(--dir "${TMPDIR:-/tmp}")
    fi
    log "starting redis-server on $_REDIS_HOST:$_REDIS_PORT"
    redis-server "${args[@]}" >&2 || warn "redis-server exited with an error; waiting in case it is already starting"
}

ensure_redis() {
    # redis-cli (package redis-tools) is needed even for a remote server.
    ensure_command redis-cli redis-tools

    if [[ -n "${REDIS_URL:-}" ]]; then
        # The user chose a server: only check it.
        redis_pong "$REDIS_URL" ||
            die "the Redis server in REDIS_URL does not answer PING; fix it, or unset REDIS_URL to use a local server"
        export REDIS_URL
        log "Redis: using REDIS_URL from the environment"
        return 0
    fi

    export REDIS_URL="redis://$_REDIS_HOST:$_REDIS_PORT"
    if redis_pong; then
        log "Redis: ready at $_REDIS_HOST:$_REDIS_PORT"
        return 0
    fi

    if ! have redis-server; then
        log "Redis is not installed"
        apt_install redis-server
        # On a machine with systemd the package starts the server itself.
        if wait_until 5 redis_pong; then
            log "Redis: ready at $_REDIS_HOST:$_REDIS_PORT"
            return 0
        fi
    fi
    _redis_start

    wait_until "$PUSHDIAL_SERVICE_TIMEOUT" redis_pong ||
        die "Redis did not answer PING on $_REDIS_HOST:$_REDIS_PORT within ${PUSHDIAL_SERVICE_TIMEOUT}s (is port $_REDIS_PORT used by something else?)"
    log "Redis: ready at $_REDIS_HOST:$_REDIS_PORT"
}
