#!/usr/bin/env bash
# Triggers one scheduled service of the deployed stack the way swarm-cronjob does when its
# schedule fires (crazy-max/swarm-cronjob, internal/worker/worker.go): only a service labelled
# swarm.cronjob.enable=true; with swarm.cronjob.skip-running=true it does nothing while a task of
# the service is running; otherwise it sets replicas to swarm.cronjob.replicas (default 1) and
# forces an update, which makes Swarm start a new task. Then (unlike swarm-cronjob, which does not
# look at the result) it waits for that task to end and prints "state|exit code|error".
#   cronjob.sh SERVICE [TIMEOUT_SECONDS]
# Differences from swarm-cronjob: the schedule itself is not evaluated (the caller decides when);
# it sets ForceUpdate through `docker service update --force` (ForceUpdate+1) rather than to the
# spec's version index; scale-down for replicas > 1 is not done (every service here has 1).
set -euo pipefail
service=${1:?usage: cronjob.sh SERVICE [TIMEOUT_SECONDS]}
timeout=${2:-600}

label() { docker service inspect -f "{{index .Spec.Labels \"$1\"}}" "$service"; }
[ "$(label swarm.cronjob.enable)" = true ] || { echo "cronjob: $service is not labelled swarm.cronjob.enable=true" >&2; exit 2; }
[ -n "$(label swarm.cronjob.schedule)" ] || { echo "cronjob: $service has no swarm.cronjob.schedule" >&2; exit 2; }

running=$(docker service ps -q -f desired-state=running "$service" | while read -r id; do
  docker inspect --type task -f '{{.Status.State}}' "$id"
done | grep -c '^running$' || true)
if [ "$(label swarm.cronjob.skip-running)" = true ] && [ "$running" -gt 0 ]; then
  echo "skipped|0|$running task(s) running"
  exit 0
fi

before=$(docker service ps -q "$service" | sort)
replicas=$(label swarm.cronjob.replicas)
docker service update --detach --quiet --force --replicas "${replicas:-1}" "$service" >/dev/null

deadline=$(($(date +%s) + timeout))
while :; do
  new=$(comm -13 <(echo "$before") <(docker service ps -q "$service" 2>/dev/null | sort) | head -n 1)
  if [ -n "$new" ]; then
    seen=$new
    out=$(docker inspect --type task -f '{{.Status.State}}|{{with .Status.ContainerStatus}}{{.ExitCode}}{{end}}|{{.Status.Err}}' "$new")
    case ${out%%|*} in
      complete | failed | rejected | shutdown | orphaned) echo "$out"; exit 0 ;;
    esac
  elif [ -n "${seen:-}" ]; then
    # Scaling a replicated service down deletes its tasks, end state and exit code included.
    echo "removed||task $seen was removed (the service was scaled down or removed)"
    exit 0
  fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "timeout||no end state after ${timeout}s"
    exit 0
  fi
  sleep 1
done
