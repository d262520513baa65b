#!/usr/bin/env bash
# The e2e's second Swarm node (issue 25): a Docker engine of its own in a network namespace,
# joined to the swarm as a worker over a veth pair on a private /24.
#   node2.sh net STATE_DIR     the namespace and the veth (before the swarm: it listens on the veth)
#   node2.sh up STATE_DIR      starts the engine and joins it as a worker labelled pgsb-e2e-worker=true
#   node2.sh load STATE_DIR IMAGE...    copies images from this engine into it (no registry here)
#   node2.sh down STATE_DIR    undoes all of that (leaves the swarm, stops the engine, removes
#                              its state, the namespace and the veth); safe to run twice
#   node2.sh docker STATE_DIR ARGS...   the docker CLI against that engine
#   node2.sh link STATE_DIR up|down     the worker's network: down is a node lost to the swarm
# Its own --data-root, --exec-root, socket and pidfile; traffic only between it and this host
# (10.231.249.1 here, .2 there). ip netns exec gives the engine a mount namespace of its own in
# which /sys is that of the namespace; this host's cgroup hierarchies are mounted there for it.
# Mounts on this host that are shared (the e2e's storage box mount point) propagate into it as
# slave mounts.
set -euo pipefail

cmd=${1:?usage: node2.sh up|down|docker|link STATE_DIR ...}
state=${2:?usage: node2.sh up|down|docker|link STATE_DIR ...}
shift 2
ns=pgsb-e2e-n2
host_if=pgsb-n2-host
node_if=pgsb-n2-node
host_ip=10.231.249.1
node_ip=10.231.249.2
root=/var/lib/pgsb-e2e-n2
run=/run/pgsb-e2e-n2
sock=unix://$run/docker.sock

d2() { docker -H "$sock" "$@"; }

# shellcheck source=test/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
d2_answers() { d2 info >/dev/null 2>&1; }
worker_ready() { [ "$(docker node inspect -f '{{.Status.State}}' "$(cat "$state/node")" 2>/dev/null)" = ready ]; }

# The namespace and the veth: before the swarm is initialised, which listens on $host_ip.
net() {
  mkdir -p "$state"
  # A run that was killed before its teardown leaves the namespace (and maybe its engine) behind.
  if ip netns list | grep -qw "$ns" || ip link show "$host_if" >/dev/null 2>&1 || [ -e "$run/dockerd.pid" ]; then
    echo "node2: the namespace $ns, its veth or its engine is left from an earlier run that did not end: removing them"
    down
  fi
  ip netns add "$ns"
  touch "$state/netns"
  ip link add "$host_if" type veth peer name "$node_if"
  ip link set "$node_if" netns "$ns"
  ip addr add "$host_ip/24" dev "$host_if"
  ip link set "$host_if" up
  ip netns exec "$ns" ip link set lo up
  ip netns exec "$ns" ip addr add "$node_ip/24" dev "$node_if"
  ip netns exec "$ns" ip link set "$node_if" up
  echo "node2: netns $ns, $host_ip <-> $node_ip"
}

up() {
  mkdir -p "$state" "$root" "$run"
  if [ "$(docker info --format '{{.Swarm.NodeAddr}}')" != "$host_ip" ]; then
    echo "node2: the swarm here is not advertised on $host_ip (a swarm found running, on $(docker info --format '{{.Swarm.NodeAddr}}')): the worker could not reach it; leave it (docker swarm leave --force) and run again" >&2
    return 1
  fi
  echo "node2: starting dockerd in netns $ns (log: $state/dockerd.log)"
  # setsid: the engine outlives a Ctrl-C of make until `down` stops it on purpose.
  # The engine's cgroups: ip netns exec mounts a fresh /sys, without this host's cgroup
  # hierarchies; they are mounted again there as they are here (v1 controllers and all, so that
  # CPU and memory limits work; a bare cgroup2 there would have no controllers left).
  awk '{ for (i = 7; $i != "-"; i++); if ($(i + 1) ~ /^cgroup2?$/) print $5, $(i + 1), $(i + 3) }' /proc/self/mountinfo >"$state/cgroups"
  # shellcheck disable=SC2016 # expanded by that sh, from its arguments
  setsid ip netns exec "$ns" sh -c '
    if [ -s "$4" ]; then
      mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup
      while read -r mp type opts; do mkdir -p "$mp" && mount -t "$type" -o "$opts" "$type" "$mp"; done <"$4"
    else
      mount -t cgroup2 none /sys/fs/cgroup
    fi
    exec dockerd --host "$1" --data-root "$2/docker" --exec-root "$3/exec" --pidfile "$3/dockerd.pid" \
      --bip 172.31.247.1/24 --default-address-pool base=172.31.96.0/19,size=24
  ' node2-dockerd "$sock" "$root" "$run" "$state/cgroups" >"$state/dockerd.log" 2>&1 </dev/null &
  echo $! >"$state/dockerd.started"
  wait_until 60 "an answer from the second dockerd" d2_answers || { tail -n 20 "$state/dockerd.log" >&2; return 1; }
  local token
  token=$(docker swarm join-token -q worker)
  timeout 60 docker -H "$sock" swarm join --token "$token" --advertise-addr "$node_ip" --listen-addr "$node_ip:2377" "$host_ip:2377" >/dev/null
  d2 info --format '{{.Swarm.NodeID}}' >"$state/node"
  wait_until 60 "the worker ready in the swarm" worker_ready
  docker node update --label-add pgsb-e2e-worker=true "$(cat "$state/node")" >/dev/null
  echo "node2: joined as worker $(cat "$state/node") at $node_ip"
}

load() { # IMAGE...: no registry here, so the worker gets images from this engine.
  docker save "$@" | d2 load -q >/dev/null
}

link() {
  ip netns exec "$ns" ip link set "$node_if" "$1"
}

down() {
  if [ -e "$state/node" ]; then
    timeout 20 docker -H "$sock" swarm leave --force >/dev/null 2>&1 || true
    docker node rm --force "$(cat "$state/node")" >/dev/null 2>&1 || true
    rm -f "$state/node"
  fi
  local pid=""
  if [ -e "$state/dockerd.started" ] || [ -e "$run/dockerd.pid" ]; then
    pid=$(cat "$run/dockerd.pid" 2>/dev/null || cat "$state/dockerd.started")
    # A pidfile left by an earlier run may name a process that is no longer that engine.
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ] || pid=""
  fi
  rm -f "$state/dockerd.started"
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    local deadline=$(($(date +%s) + 30))
    while kill -0 "$pid" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  # Whatever the engine left mounted under its roots (overlay layers, the netns files of containers).
  local m
  awk -v a="$root" -v b="$run" '$5 ~ "^"a || $5 ~ "^"b { print $5 }' /proc/self/mountinfo | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
  ip link delete "$host_if" 2>/dev/null || true
  if [ -e "$state/netns" ] || ip netns list | grep -qw "$ns"; then
    ip netns delete "$ns" 2>/dev/null || true
    rm -f "$state/netns"
  fi
  rm -rf --one-file-system "$root" "$run"
  echo "node2: removed"
}

case $cmd in
  net | up | down) "$cmd" ;;
  docker) d2 "$@" ;;
  load) load "$@" ;;
  link) link "$@" ;;
  *) echo "usage: node2.sh net|up|down|docker|load|link STATE_DIR ..." >&2; exit 2 ;;
esac
