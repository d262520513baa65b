#!/usr/bin/env bash
# Engine for the e2e: `engine.sh up STATE_DIR` makes sure a Docker engine answers and a swarm is
# active, labels this node database=true and records in STATE_DIR what it started;
# `engine.sh down STATE_DIR` undoes exactly that (leaves a swarm or an engine found running alone).
# Addresses are private and explicit; the swarm listens on SWARM_ADDR only (127.0.0.1, or the
# e2e's veth to its second node).
set -euo pipefail

cmd=${1:?usage: engine.sh up|down STATE_DIR}
state=${2:?usage: engine.sh up|down STATE_DIR}
mkdir -p "$state"

# shellcheck source=test/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
docker_answers() { docker info >/dev/null 2>&1; }

up() {
  local missing=()
  command -v docker >/dev/null || missing+=(docker.io)
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  # age-keygen: the e2e's age key (ENCRYPTION=1) and the runbook's key rotation.
  command -v age-keygen >/dev/null || missing+=(age)
  if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || { echo "engine: ${missing[*]} missing and not root: install them or run make e2e as root" >&2; exit 1; }
    echo "engine: installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q "${missing[@]}" >"$state/apt.log" 2>&1 \
      || { tail -n 20 "$state/apt.log" >&2; exit 1; }
  fi

  if ! timeout 10 docker info >/dev/null 2>&1; then
    [ "$(id -u)" -eq 0 ] || { echo "engine: no Docker engine answers and dockerd needs root: run make e2e as root" >&2; exit 1; }
    echo "engine: starting dockerd (log: $state/dockerd.log)"
    # setsid: the engine outlives a Ctrl-C of make until `down` stops it on purpose.
    setsid dockerd --host unix:///var/run/docker.sock \
      --bip 172.31.250.1/24 --default-address-pool base=172.31.0.0/17,size=24 \
      --data-root /var/lib/docker --pidfile "$state/dockerd.pid" >"$state/dockerd.log" 2>&1 </dev/null &
    echo $! >"$state/dockerd.started"
    wait_until 60 "an answer from dockerd" docker_answers || { tail -n 20 "$state/dockerd.log" >&2; exit 1; }
  fi

  # ENGINE_SWARM=0: the engine only (make test-pg17 runs containers, not services).
  [ "${ENGINE_SWARM:-1}" = 0 ] && return 0
  if [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" != active ]; then
    # SWARM_ADDR: 127.0.0.1 for one node; the veth's address when a second node joins (node2.sh).
    local addr=${SWARM_ADDR:-127.0.0.1}
    echo "engine: docker swarm init on $addr"
    timeout 60 docker swarm init --advertise-addr "$addr" --listen-addr "$addr:2377" \
      --default-addr-pool 172.31.128.0/17 --default-addr-pool-mask-length 24 >/dev/null
    touch "$state/swarm.started"
  fi
  local node
  node=$(docker info --format '{{.Swarm.NodeID}}')
  docker node update --label-add database=true "$node" >/dev/null
  echo "$node" >"$state/node"
}

down() {
  if [ -e "$state/swarm.started" ]; then
    timeout 60 docker swarm leave --force >/dev/null 2>&1 || true
    rm -f "$state/swarm.started"
  elif [ -e "$state/node" ]; then
    docker node update --label-rm database "$(cat "$state/node")" >/dev/null 2>&1 || true
  fi
  if [ -e "$state/dockerd.started" ]; then
    local pid
    pid=$(cat "$state/dockerd.started")
    kill "$pid" 2>/dev/null || true
    local deadline=$(($(date +%s) + 30))
    while kill -0 "$pid" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$state/dockerd.started"
    # The bridges it made outlive dockerd; docker0 carries the --bip address given above.
    ip link delete docker_gwbridge 2>/dev/null || true
    ip link delete docker0 2>/dev/null || true
    echo "engine: stopped the dockerd it started"
  fi
}

"$cmd"
