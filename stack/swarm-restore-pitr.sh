#!/usr/bin/env bash
# Point-in-time recovery on the Swarm (docs/pitr.md "Point-in-time recovery"): stops postgres,
# prepares its data volume with restore-pitr as a one-off job on the database node, starts
# postgres again and waits until it has replayed the WAL and promoted.
#
#   stack/swarm-restore-pitr.sh [--at ISO-TIME] [--dry-run] [--source s3]
#   stack/swarm-restore-pitr.sh --remove-moved-aside     (make restore-pitr-clean)
#
# Environment (defaults in brackets), besides swarm-run-task.sh's:
#   STACK              the stack's name [pgsb]
#   TRUST_UNSIGNED     1: pass --trust-unsigned, which restores an unsigned base backup although its
#                      postgresql.conf/postgresql.auto.conf runs commands or loads code (archive_command,
#                      shared_preload_libraries, ...: restore-pitr lists them when it refuses). Only
#                      with SIGNING=0: with the verify key an unsigned base backup is refused anyway. []
#   PG_VOLUME          the postgres data volume [${STACK}_postgres-data]
#   PGDATA_MOUNT       where the job mounts it; PGDATA of the postgres service [/var/lib/postgresql/data]
#   PG_UID             uid:gid postgres runs as in the postgres image (Alpine: 70) [70:70]
# The job runs as root: it must read BACKUP_DIR, whose WAL files pg_receivewal wrote 0600 as
# the backup user, and hand the restored files to postgres's uid (restore-pitr --owner).
#   RECOVERY_TIMEOUT_SECONDS  give up waiting for the promotion after this long [3600]
#   SCALE_TIMEOUT_SECONDS     give up waiting for postgres to stop, or to run again, after this long [300]
# The old data directory is kept in the volume as .pgsb-moved-<time>/ (never deleted by the restore):
# once the restored cluster is checked, --remove-moved-aside deletes it with a one-off job (the
# postgres image, as root, the volume mounted; postgres keeps running). Until then base backups fail:
# the folder sits inside the data directory, which pg_basebackup reads whole, and is not postgres's.
# Exit codes: restore-pitr's own; 124 timeout; 2 TRUST_UNSIGNED with signing on, or not 0 or 1
# (nothing stopped).
set -euo pipefail
here=$(dirname "$0")
stack=${STACK:-pgsb}
service="${stack}_postgres"
volume=${PG_VOLUME:-${stack}_postgres-data}
pgdata=${PGDATA_MOUNT:-/var/lib/postgresql/data}
PG_IMAGE=${PG_IMAGE:-${REGISTRY:-registry.local}/pg-swarm-backup-postgres:${VERSION:-latest}}
dry=false
for a in "$@"; do [ "$a" = --dry-run ] && dry=true; done

if [ "${1:-}" = --remove-moved-aside ]; then
  # shellcheck disable=SC2016 # expanded by the job's shell, not here
  remove='set -- "$0"/.pgsb-moved-*; [ -e "$1" ] || { echo "no .pgsb-moved-* folder in $0: nothing to remove"; exit 0; }; for d; do echo "removing $d (the data directory restore-pitr moved aside)"; rm -rf "$d"; done'
  TASK_MOUNT="type=volume,source=${volume},target=${pgdata}" TASK_USER=0:0 IMAGE=$PG_IMAGE \
    exec bash "$here/swarm-run-task.sh" restore-pitr-clean -- sh -c "$remove" "$pgdata"
fi

trust=()
case ${TRUST_UNSIGNED:-0} in
  "" | 0) ;;
  1)
    if [ "${SIGNING:-1}" != 0 ]; then
      echo "restore-pitr: TRUST_UNSIGNED=1 needs SIGNING=0: with the verify key (SIGNING=1, the default) an unsigned base backup is refused whatever its settings, and a signed one needs no trust. Check the base backup's settings that the refusal listed, then run again with SIGNING=0 TRUST_UNSIGNED=1; nothing was stopped" >&2
      exit 2
    fi
    echo "restore-pitr: TRUST_UNSIGNED=1: an unsigned base backup's settings that run commands or load code are restored as they are (restore-pitr --trust-unsigned logs them)" >&2
    trust=(--trust-unsigned)
    ;;
  *)
    echo "restore-pitr: TRUST_UNSIGNED=${TRUST_UNSIGNED} is not 0 or 1; nothing was stopped" >&2
    exit 2
    ;;
esac

# Bounded: a service whose task fails to start never converges, and docker service scale would wait for ever.
scale_to() {
  if ! timeout "${SCALE_TIMEOUT_SECONDS:-300}" docker service scale --detach=false "$service=$1" >/dev/null; then
    echo "restore-pitr: $service did not reach $1 running replica(s) within ${SCALE_TIMEOUT_SECONDS:-300} s (SCALE_TIMEOUT_SECONDS); see docker service ps $service" >&2
    return 1
  fi
}
if ! $dry; then
  echo "restore-pitr: scaling $service to 0 (the database goes down now)" >&2
  scale_to 0 || { echo "restore-pitr: nothing was restored" >&2; exit 1; }
fi
# Even when restore-pitr fails, postgres comes back up on whatever the volume holds:
# the old data (a refusal touches nothing) or, after a failure, what the message names.
restart() {
  if ! $dry; then
    echo "restore-pitr: scaling $service to 1" >&2
    scale_to 1 || true
  fi
}
trap restart EXIT

TASK_MOUNT="type=volume,source=${volume},target=${pgdata}" TASK_USER=0:0 \
  bash "$here/swarm-run-task.sh" restore-pitr -- restore-pitr --pgdata "$pgdata" --move-aside --owner "${PG_UID:-70:70}" "${trust[@]}" "$@"
$dry && exit 0

trap - EXIT
restart
# Recovery ends with a promotion: until then pg_is_in_recovery() is true (or the server
# refuses connections while it replays). Asked from a job on the overlay network with the
# postgres image's own psql, so this works from any manager node.
wait_s=${RECOVERY_TIMEOUT_SECONDS:-3600}
# shellcheck disable=SC2016 # expanded by the job's shell, not here
probe='for i in $(seq 1 '"$((wait_s / 5))"'); do
  r=$(PGPASSWORD=$(cat /run/secrets/postgres_password) psql -h "$PGHOST" -U "$PGUSER" -d postgres -XAtc "SELECT pg_is_in_recovery()" 2>/dev/null || true)
  [ "$r" = f ] && echo "recovery finished: the cluster has promoted" && exit 0
  sleep 5
done
echo "still recovering after '"$wait_s"' s" >&2; exit 124'
IMAGE=$PG_IMAGE TASK_TIMEOUT_SECONDS=$((wait_s + 120)) bash "$here/swarm-run-task.sh" pitr-wait -- sh -c "$probe"
echo "restore-pitr: the old data directory is kept in $volume as .pgsb-moved-<time>/. Check the restored cluster, then remove it: make restore-pitr-clean (base backups fail while it is there), and take a base backup: make backup-base" >&2
