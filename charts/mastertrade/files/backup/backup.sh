#!/bin/sh
# MasterTrade backup: the seed's daily procedure, run by the <release>-backup CronJob.
#
#   1. pg_dump -Fc of the database to $BACKUP_DIR/mastertrade_<UTC timestamp>.dump
#   2. RabbitMQ's definitions (exchanges, queues, bindings, users, policies) from the management
#      API to $BACKUP_DIR/rabbitmq_definitions_<UTC timestamp>.json
#   3. dumps and exports older than $RETENTION_DAYS days deleted
#
# Reads: PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE (libpq); BACKUP_DIR (default /backups);
# RETENTION_DAYS (default 7); RABBITMQ_MANAGEMENT_URL (e.g. http://rabbitmq:15672; empty skips
# the export), RABBITMQ_USER, RABBITMQ_PASSWORD. POSIX sh and busybox tools (postgres:15-alpine).
set -eu

BACKUP_DIR="${BACKUP_DIR:-/backups}"
RETENTION_DAYS="${RETENTION_DAYS:-7}"
RABBITMQ_MANAGEMENT_URL="${RABBITMQ_MANAGEMENT_URL:-}"
: "${PGDATABASE:?PGDATABASE must name the database to back up}"

log() { echo "backup: $*"; }

if [ ! -d "$BACKUP_DIR" ] || [ ! -w "$BACKUP_DIR" ]; then
    log "the backup directory $BACKUP_DIR does not exist or is not writable" >&2
    exit 1
fi
case "$RETENTION_DAYS" in
    '' | *[!0-9]*) log "RETENTION_DAYS must be a whole number of days, not '$RETENTION_DAYS'" >&2; exit 1 ;;
esac
if [ "$RETENTION_DAYS" -lt 1 ]; then
    log "RETENTION_DAYS must be at least 1" >&2
    exit 1
fi

stamp="$(date -u +%Y%m%dT%H%M%SZ)"
dump="$BACKUP_DIR/mastertrade_$stamp.dump"
definitions="$BACKUP_DIR/rabbitmq_definitions_$stamp.json"
# Written under a hidden temporary name and renamed when complete: a file named *.dump or *.json
# is always a whole backup.
partial_dump="$BACKUP_DIR/.mastertrade_$stamp.dump.partial"
partial_definitions="$BACKUP_DIR/.rabbitmq_definitions_$stamp.json.partial"
# Every run, whatever its outcome, is recorded in the database's backup_runs table (when it can
# be reached), which the risk manager exports as metrics for the "backup failing or missing"
# alerts (docs/monitoring.md). Recording is best effort: it never fails a backup.
record() {
    psql -q -v ON_ERROR_STOP=1 -v ok="$1" -v detail="$2" "$PGDATABASE" >/dev/null 2>&1 <<'SQL' ||
INSERT INTO backup_runs (succeeded, detail) VALUES (:'ok'::boolean, :'detail');
SQL
        log "could not record this run in backup_runs (the table comes with mastertrade migrate)" >&2
}
finish() {
    status=$?
    rm -f "$partial_dump" "$partial_definitions"
    if [ "$status" -eq 0 ]; then record true "$dump"; else record false "exit status $status"; fi
}
trap finish EXIT

log "dumping database $PGDATABASE on ${PGHOST:-localhost}:${PGPORT:-5432} as ${PGUSER:-$(id -un)}"
pg_dump --format=custom --file="$partial_dump" "$PGDATABASE"
mv "$partial_dump" "$dump"
log "wrote $dump ($(wc -c <"$dump" | tr -d ' ') bytes)"

rabbitmq_failed=0
if [ -z "$RABBITMQ_MANAGEMENT_URL" ]; then
    log "skipped the RabbitMQ definitions export: RABBITMQ_MANAGEMENT_URL is not set"
else
    log "exporting RabbitMQ definitions from $RABBITMQ_MANAGEMENT_URL/api/definitions"
    credentials="$(printf '%s:%s' "${RABBITMQ_USER:-guest}" "${RABBITMQ_PASSWORD:-guest}" | base64 | tr -d '\n')"
    if wget -q -T 30 -O "$partial_definitions" \
        --header "Authorization: Basic $credentials" \
        "$RABBITMQ_MANAGEMENT_URL/api/definitions"; then
        mv "$partial_definitions" "$definitions"
        log "wrote $definitions ($(wc -c <"$definitions" | tr -d ' ') bytes)"
    else
        rabbitmq_failed=1
        log "could not export RabbitMQ definitions from $RABBITMQ_MANAGEMENT_URL (the database dump above is complete)" >&2
    fi
fi

# -mmin rather than -mtime: "older than N days" to the minute, not N whole days plus one
minutes=$((RETENTION_DAYS * 1440))
expired="$(find "$BACKUP_DIR" -maxdepth 1 -type f \( -name 'mastertrade_*.dump' \
    -o -name 'rabbitmq_definitions_*.json' -o -name '.*.partial' \) -mmin +"$minutes")"
if [ -n "$expired" ]; then
    echo "$expired" | while IFS= read -r old; do
        rm -f "$old"
        log "deleted $old (older than $RETENTION_DAYS days)"
    done
else
    log "nothing older than $RETENTION_DAYS days to delete"
fi

log "backups now in $BACKUP_DIR:"
# shellcheck disable=SC2012 # file names are ours: no newlines in them
ls -l "$BACKUP_DIR" | sed -n 's/^/  /; /mastertrade_.*\.dump$/p; /rabbitmq_definitions_.*\.json$/p'
if [ "$rabbitmq_failed" -ne 0 ]; then
    log "finished with an error: the RabbitMQ definitions export failed" >&2
    exit 1
fi
log "finished"
