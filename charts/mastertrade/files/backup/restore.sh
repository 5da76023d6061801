#!/bin/sh
# MasterTrade restore: a dump written by backup.sh back into the database.
#
#   restore.sh mastertrade_20260101T020000Z.dump     (or RESTORE_FILE=... restore.sh)
#
# A bare name is looked up in $BACKUP_DIR (default /backups); a path is used as it is. The dump's
# objects are dropped and recreated (--clean --if-exists) in one transaction: on any error
# nothing is changed. Reads PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE (libpq).
set -eu

BACKUP_DIR="${BACKUP_DIR:-/backups}"
name="${1:-${RESTORE_FILE:-}}"
: "${PGDATABASE:?PGDATABASE must name the database to restore into}"

log() { echo "restore: $*"; }

if [ -z "$name" ]; then
    log "no backup named: pass a dump file name (or set RESTORE_FILE); nothing was restored" >&2
    exit 2
fi
case "$name" in
    */*) file="$name" ;;
    *) file="$BACKUP_DIR/$name" ;;
esac
if [ ! -f "$file" ]; then
    log "refusing to restore: backup file $file does not exist; nothing was restored" >&2
    log "dumps in $BACKUP_DIR:" >&2
    # shellcheck disable=SC2012 # file names are ours: no newlines in them
    ls -1 "$BACKUP_DIR" 2>/dev/null | sed -n 's/^/  /; /mastertrade_.*\.dump$/p' >&2 || true
    exit 1
fi

log "restoring $file into database $PGDATABASE on ${PGHOST:-localhost}:${PGPORT:-5432}"
pg_restore --clean --if-exists --no-owner --single-transaction --dbname="$PGDATABASE" "$file"
log "restored $file into $PGDATABASE"
