#!/usr/bin/env bash
# The streaming replica: on first start, copy the primary with
# pg_basebackup -R (which writes standby.signal and primary_conninfo), then
# run postgres as a hot standby. Later starts resume streaming.
set -euo pipefail
PGDATA=${PGDATA:-/var/lib/postgresql/data}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    mkdir -p "$PGDATA"
    chown postgres:postgres "$PGDATA"
    chmod 700 "$PGDATA"
    until gosu postgres env PGPASSWORD="$REPLICATION_PASSWORD" pg_basebackup \
        --host "$PRIMARY_HOST" --username replicator --pgdata "$PGDATA" \
        --wal-method stream --write-recovery-conf --progress; do
        echo "replica: waiting for the primary at $PRIMARY_HOST" >&2
        rm -rf "${PGDATA:?}"/*
        sleep 2
    done
fi
exec gosu postgres postgres -c hot_standby=on
