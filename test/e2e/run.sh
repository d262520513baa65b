#!/usr/bin/env bash
# shellcheck disable=SC2317 # teardown runs from the trap
# make e2e: the Swarm layer on real Docker engines (issues 16, 25). Starts an engine and a swarm
# when none is there, and a second engine in a network namespace that joins it as a worker
# (test/e2e/node2.sh), builds the base images (cached) and both of the project's Dockerfiles
# through build args only, deploys stack/docker-compose.swarm.yml with test/e2e/docker-compose.e2e.yml
# over it, and runs the scenarios, one PASS/FAIL line each. Everything it started is removed at the
# end, also on failure or Ctrl-C: services, both engines' state, the namespace and veth, every mount.
# Needs root (dockerd, network namespaces, the shared bind mounts).
#   E2E_ONLY="a b c" runs only those scenarios (a always runs: it deploys); E2E_KEEP=1 leaves it all up.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"

[ "$(id -u)" -eq 0 ] || { echo "e2e: needs root (dockerd, a shared bind mount for the backups); run it as root" >&2; exit 1; }

export STACK=pgsb REGISTRY=pgsb-e2e VERSION=e2e
E2E_STATE=$(mktemp -d /tmp/pgsb-e2e.XXXXXX)
# The storage box as the stack expects it: a mount point (E2E_MNT, /mnt/storagebox on a real
# node) onto which the box (E2E_BOX, a host folder) is mounted; BACKUP_DIR is a folder on the box.
E2E_MNT=$E2E_STATE/mnt
E2E_BOX=$E2E_STATE/box
E2E_BACKUP_DIR=$E2E_BOX/backups/postgresql
# The swarm listens on the veth to the second node (test/e2e/node2.sh).
E2E_SWARM_ADDR=10.231.249.1
export E2E_STATE E2E_MNT E2E_BOX E2E_BACKUP_DIR E2E_SWARM_ADDR
export E2E_HERE=$here
# What an operator has in the environment of `make` (docs/runbook.md "Before you start"): the stack
# deployed signed (the default) and encrypted, the box's mount point; make deploy layers the e2e's
# overrides last and does not ask a registry for the images' digests.
export ENCRYPTION=1 STORAGEBOX=$E2E_MNT
export EXTRA_STACK_FILES=test/e2e/docker-compose.e2e.yml DEPLOY_ARGS="--resolve-image never"
# shellcheck source=test/e2e/lib.sh
. "$here/lib.sh"
# shellcheck source=test/e2e/scenarios.sh
. "$here/scenarios.sh"

started=$(date +%s)
teardown() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "${E2E_KEEP:-}" ]; then
    log "E2E_KEEP set: left running; state in $E2E_STATE"
    exit "$rc"
  fi
  log "teardown"
  docker service ls -q -f label=pgsb.one-off=true 2>/dev/null | xargs -r docker service rm >/dev/null 2>&1 || true
  docker stack rm "$STACK" >/dev/null 2>&1 || true
  wait_until 60 "the stack's containers to go" sh -c "[ -z \"\$(docker ps -aq -f label=com.docker.stack.namespace=$STACK)\" ]" || true
  # The containers of one-off jobs (services pgsb-<name>-<time>, stack/swarm-run-task.sh) outlive their
  # removed services, and the restore-pitr job of scenario p holds the data volume: remove them too.
  docker ps -a --format '{{.ID}} {{.Label "com.docker.swarm.service.name"}}' 2>/dev/null \
    | awk '$2 ~ /^pgsb-/ { print $1 }' | xargs -r docker rm -f >/dev/null 2>&1 || true
  local volume
  # The data volume, and wal-receive's spool (the worker's goes with its engine's state).
  for volume in "${STACK}_postgres-data" "${STACK}_wal-spool"; do
    wait_until 30 "the volume $volume to be free" sh -c "docker volume rm $volume >/dev/null 2>&1 || ! docker volume inspect $volume >/dev/null 2>&1" || true
  done
  local what
  # What step_prerequisites created, one "KIND rm NAME" a line.
  while read -r what; do
    # shellcheck disable=SC2086
    docker $what >/dev/null 2>&1 || true
  done < <(cat "$E2E_STATE/created" 2>/dev/null)
  # The box on the mount point, then the mount point's own bind (bounded: at most a few layers).

  for _ in 1 2 3 4; do mountpoint -q "$E2E_MNT" 2>/dev/null && { umount "$E2E_MNT" 2>/dev/null || umount -l "$E2E_MNT" 2>/dev/null || true; }; done
  # s3rver of scenario s, when that scenario could not stop it (it runs in a session of its own).
  [ -s "$E2E_STATE/s3/pid" ] && kill "$(cat "$E2E_STATE/s3/pid")" 2>/dev/null
  "$here/node2.sh" down "$E2E_STATE/node2" || true
  "$here/engine.sh" down "$E2E_STATE/engine" || true
  [ -s "$E2E_STATE/results" ] && cat "$E2E_STATE/results"
  log "total $(($(date +%s) - started))s, exit $rc"
  rm -rf --one-file-system "$E2E_STATE"
  exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

run_step "network namespace and veth for the worker" step_netns
run_step "storage box: mount point (shared) and the box on it" step_storagebox
run_step "engine (dockerd, swarm, node label)" step_engine
run_step "base images (debootstrap trixie, cached)" step_bases
run_step "make build (Dockerfile.postgres, Dockerfile.task)" step_build
run_step "worker node (second dockerd, swarm join)" step_node2
run_step "prerequisites (secret, config, network, dir)" step_prerequisites

only=${E2E_ONLY:-b c u e f g h d k w m p r l j x s z}
failed=0
run_step "a: deploy, health, placement label" scenario_a || failed=1
if [ "$failed" -eq 0 ]; then
  for s in $only; do
    [ "$s" = a ] && continue
    run_step "$s: $(scenario_title "$s")" "scenario_$s" || failed=1
  done
fi
exit "$failed"
