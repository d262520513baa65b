#!/usr/bin/env bash
# Runs one pg-swarm-backup task once on the Swarm and behaves like a local command:
# starts it as a replicated job, waits for the task's end state, prints its logs,
# removes the service (also on Ctrl-C) and exits with the task's exit code.
#
#   stack/swarm-run-task.sh NAME -- ARGS...     e.g.  stack/swarm-run-task.sh list -- list --json
#
# Environment (defaults in brackets):
#   IMAGE                  task image [$REGISTRY/pg-swarm-backup-task:$VERSION]
#   NETWORK                overlay network shared with postgres [backend-net]
#   STORAGEBOX             the storage box's mount point on the node, bound with rslave like the
#                          stack's [/mnt/storagebox]
#   BACKUP_DIR             the backups' folder on the box, as the job sees it [/storagebox/backups/postgresql]
#   PGHOST, PGUSER         [postgres, postgres]
#   TZ, LOCK_MODE, LOG_LEVEL  [Europe/Berlin, wait, info]
#   SIGNING                unless 0, backup tasks get the backup_signing_key secret and every
#                          other task the backup_verify_key secret (docs/security.md "Signing"); SIGNING=0
#                          runs a task without either, e.g. the restore of an older unsigned backup [1]
#   ENCRYPTION             unless empty or 0, backup tasks get the age_recipients config, and the
#                          tasks that read backups back (restore-*, verify, list-databases)
#                          the age_identity secret (docs/security.md "Encryption at rest") []
#   BACKUP_SIGNING_KEY_SECRET, BACKUP_VERIFY_KEY_SECRET, AGE_RECIPIENTS_CONFIG, AGE_IDENTITY_SECRET
#                          the Swarm secrets and config those are, as in the stack's overlays (new names
#                          after a key rotation, docs/runbook.md) [backup_signing_key, backup_verify_key,
#                          age_recipients, age_identity]
#   S3_BUCKET              set: the task gets the S3 mirror, as stack/docker-compose.s3.yml gives it to
#                          the services: S3_BUCKET and whichever of S3_PREFIX, S3_ENDPOINT, S3_REGION,
#                          S3_FORCE_PATH_STYLE, S3_SSE, S3_RETENTION are set, and the secrets
#                          S3_ACCESS_KEY_ID_SECRET, S3_SECRET_ACCESS_KEY_SECRET [s3_access_key_id,
#                          s3_secret_access_key] as AWS_ACCESS_KEY_ID_FILE, AWS_SECRET_ACCESS_KEY_FILE []
#   TASK_MOUNT             one more --mount for the job, e.g. the postgres data volume (restore-pitr) []
#   TASK_USER              run the job as this uid[:gid] instead of the image's user []
#   TASK_TIMEOUT_SECONDS   give up waiting after this long [21600]
#   POLL_SECONDS           poll interval [2]
# Exit codes: the task's own; 124 timeout; 125 task rejected by Swarm (e.g. image not
# pullable, no node labelled database=true); 1 when the exit code cannot be determined.
set -euo pipefail

usage() {
  echo "usage: $0 NAME -- ARGS...   (NAME: lower-case letters, digits and '-')" >&2
  exit 2
}

[ $# -ge 1 ] || usage
name=$1
shift
[[ $name =~ ^[a-z0-9][a-z0-9-]*$ ]] || usage
if [ "${1:-}" = "--" ]; then shift; fi
[ $# -ge 1 ] || usage

image=${IMAGE:-${REGISTRY:-registry.local}/pg-swarm-backup-task:${VERSION:-latest}}
timeout=${TASK_TIMEOUT_SECONDS:-21600}
poll=${POLL_SECONDS:-2}
service="pgsb-${name}-$(date -u +%Y%m%d%H%M%S)"

# The service is removed however this script ends: a leftover job would keep its
# finished container and clutter `docker service ls`.
trap 'docker service rm "$service" >/dev/null 2>&1 || true' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# As in stack/docker-compose.signing.yml: only a backup may hold the private key. The secrets are
# mounted under their usual names whatever they are called in the swarm.
keys=()
if [ "${SIGNING:-1}" != 0 ]; then
  if [ "${1:-}" = backup ]; then
    keys=(--secret "source=${BACKUP_SIGNING_KEY_SECRET:-backup_signing_key},target=backup_signing_key" -e BACKUP_SIGNING_KEY_FILE=/run/secrets/backup_signing_key)
  else
    keys=(--secret "source=${BACKUP_VERIFY_KEY_SECRET:-backup_verify_key},target=backup_verify_key" -e BACKUP_VERIFY_KEY_FILE=/run/secrets/backup_verify_key)
  fi
fi

# As in stack/docker-compose.encryption.yml: backups get public keys, readers the identity.
if [ "${ENCRYPTION:-0}" != 0 ]; then
  case "${1:-}" in
    backup) keys+=(--config "source=${AGE_RECIPIENTS_CONFIG:-age_recipients},target=/run/configs/age_recipients" -e AGE_RECIPIENTS_FILE=/run/configs/age_recipients) ;;
    restore-* | verify | list-databases) keys+=(--secret "source=${AGE_IDENTITY_SECRET:-age_identity},target=age_identity" -e AGE_IDENTITY_FILE=/run/secrets/age_identity) ;;
  esac
fi

# As in stack/docker-compose.s3.yml: the mirror's settings, credentials as secrets.
s3=()
if [ -n "${S3_BUCKET:-}" ]; then
  s3=(-e "S3_BUCKET=$S3_BUCKET"
    --secret "source=${S3_ACCESS_KEY_ID_SECRET:-s3_access_key_id},target=s3_access_key_id" -e AWS_ACCESS_KEY_ID_FILE=/run/secrets/s3_access_key_id
    --secret "source=${S3_SECRET_ACCESS_KEY_SECRET:-s3_secret_access_key},target=s3_secret_access_key" -e AWS_SECRET_ACCESS_KEY_FILE=/run/secrets/s3_secret_access_key)
  for v in S3_PREFIX S3_ENDPOINT S3_REGION S3_FORCE_PATH_STYLE S3_SSE S3_RETENTION; do
    if [ -n "${!v:-}" ]; then s3+=(-e "$v=${!v}"); fi
  done
fi
extra=()
# As the backup-base service: a base backup is data files, which zstd keeps pace with and bzip2 does not.
if [ "${1:-} ${2:-}" = "backup base" ]; then extra+=(-e BACKUP_COMPRESSION=zstd); fi
if [ -n "${TASK_MOUNT:-}" ]; then extra+=(--mount "$TASK_MOUNT"); fi
if [ -n "${TASK_USER:-}" ]; then extra+=(--user "$TASK_USER"); fi

docker service create \
  --mode replicated-job \
  --detach \
  --quiet \
  --name "$service" \
  --label pgsb.one-off=true \
  --with-registry-auth \
  --network "${NETWORK:-backend-net}" \
  --secret postgres_password \
  "${keys[@]}" \
  "${s3[@]}" \
  "${extra[@]}" \
  --mount "type=bind,source=${STORAGEBOX:-/mnt/storagebox},target=/storagebox,bind-propagation=rslave" \
  --constraint 'node.labels.database==true' \
  --sysctl net.ipv4.tcp_keepalive_intvl=5 --sysctl net.ipv4.tcp_keepalive_probes=3 \
  --restart-condition none \
  -e "PGHOST=${PGHOST:-postgres}" \
  -e "PGUSER=${PGUSER:-postgres}" \
  -e POSTGRES_PASSWORD_FILE=/run/secrets/postgres_password \
  -e "BACKUP_DIR=${BACKUP_DIR:-/storagebox/backups/postgresql}" \
  -e "TZ=${TZ:-Europe/Berlin}" \
  -e "LOCK_MODE=${LOCK_MODE:-wait}" \
  -e "LOG_LEVEL=${LOG_LEVEL:-info}" \
  "$image" "$@" >/dev/null
echo "$service: started ${*}" >&2

# Prints "state|exit code|error" of the job's task; "pending||" before Swarm made one.
task_status() {
  local id
  id=$(docker service ps --quiet --no-trunc "$service" 2>/dev/null | head -n 1) || true
  if [ -z "$id" ]; then
    echo "pending||"
    return
  fi
  docker inspect --type task \
    --format '{{.Status.State}}|{{with .Status.ContainerStatus}}{{.ExitCode}}{{end}}|{{.Status.Err}}' \
    "$id" 2>/dev/null || echo "unknown||"
}

deadline=$(($(date +%s) + timeout))
last=""
while :; do
  IFS='|' read -r state code err <<<"$(task_status)"
  case $state in
    complete | failed | rejected | shutdown | orphaned | remove) break ;;
  esac
  # Say why a task sits in "pending" (e.g. no node labelled database=true) instead of
  # waiting silently for hours.
  if [ "$state|$err" != "$last" ]; then
    echo "$service: $state${err:+ ($err)}" >&2
    last="$state|$err"
  fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    docker service logs --raw "$service" 2>&1 || true
    echo "$service: still '$state' after ${timeout}s (TASK_TIMEOUT_SECONDS); removing it" >&2
    exit 124
  fi
  sleep "$poll"
done

docker service logs --raw "$service" 2>&1 || true

case $state in
  complete)
    echo "$service: complete, exit code ${code:-0}" >&2
    exit "${code:-0}"
    ;;
  rejected)
    echo "$service: rejected by Swarm: ${err:-no reason given}" >&2
    exit 125
    ;;
esac
if [[ $code =~ ^[0-9]+$ ]] && [ "$code" -ne 0 ]; then
  echo "$service: $state, exit code $code${err:+ ($err)}" >&2
  exit "$code"
fi
echo "$service: $state, exit code unknown${err:+ ($err)}" >&2
exit 1
