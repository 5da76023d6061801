#!/bin/sh
# The postgres image's entrypoint contract, reduced to what MasterTrade uses: on an empty PGDATA,
# initdb with POSTGRES_USER (default postgres) and POSTGRES_PASSWORD (required), create
# POSTGRES_DB (default: the user's name), allow password logins from anywhere
# (scram-sha-256), then run the server listening on every address.
set -eu

if [ "${1:-}" != "postgres" ]; then
    exec "$@"
fi

: "${PGDATA:=/var/lib/postgresql/data}"
user="${POSTGRES_USER:-postgres}"
database="${POSTGRES_DB:-$user}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "${POSTGRES_PASSWORD:-}" ]; then
        echo "postgres: PGDATA $PGDATA is empty and POSTGRES_PASSWORD is not set: set it to initialise the database" >&2
        exit 1
    fi
    mkdir -p "$PGDATA"
    chmod 700 "$PGDATA"
    echo "postgres: initialising $PGDATA for user $user, database $database"
    pwfile="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    initdb --username="$user" --pwfile="$pwfile" --auth-local=trust \
        --auth-host=scram-sha-256 --encoding=UTF8 -D "$PGDATA" >/dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
    if [ "$database" != "postgres" ]; then
        psql -v ON_ERROR_STOP=1 --username="$user" --dbname=postgres \
            -c "CREATE DATABASE \"$database\"" >/dev/null
    fi
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    echo "postgres: initialised"
fi

shift
exec postgres -c listen_addresses='*' "$@"
