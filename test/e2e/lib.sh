#!/usr/bin/env bash
# Helpers shared by test/e2e/run.sh and its scenarios (sourced, never run). Every wait is bounded.
# Expects STACK and E2E_STATE set by run.sh.

log() { printf '%s e2e: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# wait_until SECONDS DESCRIPTION COMMAND...: polls once a second; fails naming what it waited for.
wait_until() {
  local seconds=$1 what=$2 deadline
  shift 2
  deadline=$(($(date +%s) + seconds))
  until "$@"; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "gave up after ${seconds}s waiting for $what"
      return 1
    fi
    sleep 1
  done
}

# The running postgres container of the stack on this node (empty when none).
postgres_cid() { docker ps -q -f "name=${STACK}_postgres." -f status=running | head -n 1; }

# psql in the postgres container over its local socket (trust), unaligned, tuples only.
pg() {
  local cid
  cid=$(postgres_cid)
  [ -n "$cid" ] || { log "no running ${STACK}_postgres container"; return 1; }
  docker exec -i "$cid" psql -X -q -v ON_ERROR_STOP=1 -U postgres -d postgres -At "$@"
}

postgres_healthy() {
  local cid
  cid=$(postgres_cid)
  [ -n "$cid" ] && [ "$(docker inspect -f '{{.State.Health.Status}}' "$cid" 2>/dev/null)" = healthy ]
}

# "state|exit code|error" of every task of SERVICE, newest first.
task_states() {
  local id
  for id in $(docker service ps -q --no-trunc "$1" 2>/dev/null); do
    docker inspect --type task -f '{{.CreatedAt.UnixNano}} {{.Status.State}}|{{with .Status.ContainerStatus}}{{.ExitCode}}{{end}}|{{.Status.Err}}' "$id" 2>/dev/null
  done | sort -rn | cut -d' ' -f2-
}

# Counts the task ids of SERVICE (to tell a new task from the ones before a trigger).
task_count() { docker service ps -q "$1" 2>/dev/null | wc -l; }

newest_task_state() { task_states "$1" | head -n 1; }

# Files of a tier in the host's backup dir, oldest first.
backups_of() {
  [ -d "$E2E_BACKUP_DIR/$1" ] || return 0
  find "$E2E_BACKUP_DIR/$1" -maxdepth 1 -name "[0-9]*_$1.sql.*" ! -name '*.json' ! -name '*.sha256*' ! -name '*.partial' -printf '%f\n' | sort
}

# run_step NAME FUNCTION: one PASS/FAIL line with the duration. The function runs in a bash of its
# own: `set -e` is ignored inside a function called from `||`, so it could not stop a failing step here.
run_step() {
  local name=$1 start rc=0
  shift
  start=$(date +%s)
  log "--- $name"
  bash -euo pipefail -c '. "$E2E_HERE/lib.sh"; . "$E2E_HERE/steps.sh"; . "$E2E_HERE/scenarios.sh"; . "$E2E_HERE/faults.sh"; . "$E2E_HERE/runbook.sh"; . "$E2E_HERE/situations.sh"; "$@"' run_step "$@" || rc=$?
  local took=$(($(date +%s) - start))
  if [ "$rc" -eq 0 ]; then
    printf 'PASS %-44s %4ss\n' "$name" "$took" | tee -a "$E2E_STATE/results"
  else
    printf 'FAIL %-44s %4ss (exit %s)\n' "$name" "$took" "$rc" | tee -a "$E2E_STATE/results"
  fi
  return "$rc"
}
