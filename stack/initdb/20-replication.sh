#!/bin/sh
# Runs once, from the official postgres entrypoint, only when it has just initialized an
# empty data directory. wal-receive and `backup base` open replication connections over
# backend-net; the image's pg_hba.conf allows those from the local host only ("all" in the
# database column does not match replication), so one line for the backup role is added.
# Existing clusters: add the same line by hand and reload (docs/pitr.md "Point-in-time recovery").
#
# The entrypoint may source this file instead of executing it, so it must not call `exit`.
set -e

replication_user="${BACKUP_REPLICATION_USER:-${POSTGRES_USER:-postgres}}"
auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
# pg_hba.conf is read top to bottom: the line goes before the entrypoint's "host all all all".
hba="$PGDATA/pg_hba.conf"
line="host replication ${replication_user} all ${auth}"
if grep -qxF "$line" "$hba"; then
  echo "replication: $hba already allows replication for ${replication_user}"
else
  { echo "# wal-receive and backup base (pg-swarm-backup): replication over backend-net"; echo "$line"; cat "$hba"; } > "$hba.new"
  mv "$hba.new" "$hba"
  echo "replication: allowed replication connections for ${replication_user} (${auth}) in $hba"
fi
