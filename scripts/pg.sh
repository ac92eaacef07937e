#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests: trust auth, loopback only, its
# own port and socket directory, fsync off. Never for real data.
#
#   scripts/pg.sh start   # install the server if missing, start it, create the database; prints the URL
#   scripts/pg.sh stop    # stop it (pg_ctl, by the cluster's own pid file); keeps the data directory
#   scripts/pg.sh clean   # stop it and delete the data directory
#   scripts/pg.sh url     # print the DATABASE_URL
#   scripts/pg.sh status  # exit 0 when running
#
# Every command is idempotent. Settings (environment):
#   PG_ROOT  directory holding the cluster (default /tmp/oauth-pg)
#   PG_PORT  TCP port on 127.0.0.1       (default 15432)
#   PG_DB    database to create          (default app)
#
# Typical use:  export DATABASE_URL=$(scripts/pg.sh start) ... scripts/pg.sh stop
# Progress goes to stderr, so stdout carries only the URL.
set -euo pipefail

PG_ROOT=${PG_ROOT:-/tmp/oauth-pg}
# Below Linux's ephemeral range (32768-60999 by default): a port in that
# range can be taken by any outgoing connection and then fail to bind.
PG_PORT=${PG_PORT:-15432}
PG_DB=${PG_DB:-app}
DATA=$PG_ROOT/data
LOG=$PG_ROOT/log

say() { echo "pg.sh: $*" >&2; }

url() { echo "postgres://postgres@127.0.0.1:${PG_PORT}/${PG_DB}"; }

# The newest installed server's bin directory, or empty.
pg_bin() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
    if [[ -n $dir && -x $dir/pg_ctl ]]; then echo "$dir"; fi
}

install_server() {
    if [[ -n $(pg_bin) ]]; then return; fi
    if [[ $(id -u) -ne 0 ]]; then
        say "PostgreSQL server not installed and not root: install the 'postgresql' package"
        exit 1
    fi
    say "installing PostgreSQL from apt"
    apt-get update -qq >&2
    # The package's own cluster stays stopped (policy-rc.d), which is what we want.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
}

# Run a command as the cluster's owner: initdb and the server refuse root.
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

running() {
    local bin
    bin=$(pg_bin)
    [[ -n $bin && -f $DATA/PG_VERSION ]] && as_owner "$bin/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

start() {
    install_server
    local bin
    bin=$(pg_bin)
    mkdir -p "$PG_ROOT"
    if [[ $(id -u) -eq 0 ]]; then chown postgres:postgres "$PG_ROOT"; fi
    if [[ ! -f $DATA/PG_VERSION ]]; then
        say "initdb in $DATA"
        as_owner "$bin/initdb" -D "$DATA" -A trust -U postgres -E UTF8 --locale=C --no-sync >/dev/null
    fi
    if running; then
        say "already running on port $PG_PORT"
    else
        say "starting on 127.0.0.1:$PG_PORT"
        as_owner "$bin/pg_ctl" -D "$DATA" -l "$LOG" -w -t 30 \
            -o "-h 127.0.0.1 -p $PG_PORT -k $PG_ROOT -F -c max_connections=200" start >/dev/null
    fi
    local exists
    exists=$(as_owner "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")
    if [[ $exists != 1 ]]; then
        as_owner "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -qc "CREATE DATABASE \"$PG_DB\"" >&2
    fi
    url
}

stop() {
    if running; then
        say "stopping"
        as_owner "$(pg_bin)/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
    else
        say "not running"
    fi
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    clean) stop; rm -rf "$PG_ROOT"; say "removed $PG_ROOT" ;;
    url) url ;;
    status) running ;;
    *) echo "usage: $0 start|stop|clean|url|status" >&2; exit 2 ;;
esac
