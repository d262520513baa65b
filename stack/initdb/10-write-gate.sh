#!/bin/sh
# Runs once, from the official postgres entrypoint, only when it has just initialized
# an empty data directory. An empty cluster that accepts writes is dangerous here:
# an application could start writing before auto-restore has brought the backups back,
# and those writes would then collide with (or be dropped by) the restore. So every new
# session defaults to read-only until auto-restore (or the operator) lifts the gate.
#
# The entrypoint may source this file instead of executing it (when it lost its
# executable bit), so it must not call `exit`; `set -e` is what the entrypoint already
# uses, so a failed ALTER SYSTEM aborts the initialization either way.
set -e

if [ "${BACKUP_WRITE_GATE:-on}" = "off" ]; then
  echo "write gate: BACKUP_WRITE_GATE=off, leaving the new cluster writable"
else
  # The entrypoint's temporary server listens on the local socket only; clear any
  # PGHOST so psql does not try the network.
  PGHOST='' PGHOSTADDR='' psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password \
    --username "${POSTGRES_USER:-postgres}" --dbname postgres \
    -c 'ALTER SYSTEM SET default_transaction_read_only = on;'
  echo "write gate: set (default_transaction_read_only = on from the next start); auto-restore lifts it, or by hand: SET default_transaction_read_only = off; ALTER SYSTEM RESET default_transaction_read_only; SELECT pg_reload_conf();"
fi
