#!/bin/sh
# The PostgreSQL server the test suite uses (`make postgres`, run by `make test`): 127.0.0.1:5432,
# database `test`, user `postgres`, trust authentication from 127.0.0.1.
#
#   MAILPACER_TEST_PG set        -> that server is used as it is; nothing here runs
#   already answering on :5432   -> only the `test` database is made when missing
#   not installed                -> `apt-get install -y postgresql` when root and apt-get exists
#   no cluster                   -> `pg_createcluster <version> main`
#   cluster down                 -> trust for `test`/`postgres` from 127.0.0.1 added to its
#                                   pg_hba.conf (first line, when missing), then started
#
# DRY_RUN=1 prints the commands that would change something instead of running them.
# Never fails `make`: when a step cannot be done it says why, and the PostgreSQL tests then fail
# with a message naming the server they could not reach.
set -u
HOST=127.0.0.1
PORT=${MAILPACER_PG_PORT:-5432}  # another port: for dry runs of the branches below
DB=test
HBA_LINE="host    $DB    postgres    127.0.0.1/32    trust    # mailpacer tests"

say() { echo "make postgres: $*" >&2; }
run() {
    if [ "${DRY_RUN:-}" = 1 ]; then echo "+ $*"; return 0; fi
    "$@"
}
ready() { pg_isready -q -h "$HOST" -p "$PORT" 2>/dev/null; }
is_root() { [ "$(id -u)" = 0 ]; }
# psql as the postgres superuser: over the local socket as the postgres OS user when root
# (works whatever pg_hba says for TCP), else over TCP
as_postgres() {
    if is_root && command -v runuser >/dev/null 2>&1; then
        runuser -u postgres -- "$@"
    else
        "$@" -h "$HOST" -p "$PORT" -U postgres
    fi
}
make_db() {
    found=$(as_postgres psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'" 2>/dev/null)
    if [ "$found" = 1 ]; then return 0; fi
    say "creating database $DB"
    run as_postgres createdb "$DB" || say "could not create database $DB; the postgres tests will fail"
}

if [ -n "${MAILPACER_TEST_PG:-}" ]; then exit 0; fi
if command -v pg_isready >/dev/null 2>&1 && ready; then make_db; exit 0; fi

version=$(ls "${PG_LIB:-/usr/lib/postgresql}" 2>/dev/null | sort -V | tail -n 1)
if [ -z "$version" ]; then
    if ! is_root || ! command -v apt-get >/dev/null 2>&1; then
        say "PostgreSQL is not installed and this is not root with apt-get: install it (or set"
        say "MAILPACER_TEST_PG to a server); the postgres tests will fail"
        exit 0
    fi
    say "installing PostgreSQL with apt-get"
    run env DEBIAN_FRONTEND=noninteractive apt-get update -q \
        && run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql \
        || { say "apt-get install postgresql failed; the postgres tests will fail"; exit 0; }
    version=$(ls "${PG_LIB:-/usr/lib/postgresql}" 2>/dev/null | sort -V | tail -n 1)
    [ -n "$version" ] || version=DRY  # a dry run installed nothing
fi

conf=${PG_ETC:-/etc/postgresql}/$version/main
if [ ! -d "$conf" ]; then
    if ! is_root; then say "no cluster $version/main and not root: cannot create it"; exit 0; fi
    say "creating cluster $version/main"
    run pg_createcluster "$version" main || { say "pg_createcluster failed"; exit 0; }
fi

if is_root && [ -f "$conf/pg_hba.conf" ] && ! grep -q "mailpacer tests" "$conf/pg_hba.conf"; then
    say "trusting $DB/postgres from $HOST in $conf/pg_hba.conf"
    run sed -i "1i $HBA_LINE" "$conf/pg_hba.conf"
fi

say "starting PostgreSQL $version"
# --skip-systemctl-redirect (postgresql-common >= 178): start it here even where systemd is PID 1
if grep -q skip-systemctl-redirect "$(command -v pg_ctlcluster)" 2>/dev/null; then
    run pg_ctlcluster --skip-systemctl-redirect "$version" main start
else
    run pg_ctlcluster "$version" main start
fi || say "PostgreSQL did not start; the postgres tests will fail"
if [ "${DRY_RUN:-}" = 1 ]; then exit 0; fi
i=0
while [ $i -lt 20 ] && ! ready; do sleep 0.5; i=$((i + 1)); done
if ready; then make_db; else say "PostgreSQL does not answer on $HOST:$PORT"; fi
exit 0
