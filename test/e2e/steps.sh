#!/usr/bin/env bash
# The set-up steps of test/e2e/run.sh (sourced into each step's own bash, see run_step in lib.sh).

step_netns() { "$E2E_HERE/node2.sh" net "$E2E_STATE/node2"; }
step_engine() { SWARM_ADDR=$E2E_SWARM_ADDR "$E2E_HERE/engine.sh" up "$E2E_STATE/engine"; }
# The worker gets the task image only: postgres stays on the node labelled database=true.
step_node2() {
  "$E2E_HERE/node2.sh" up "$E2E_STATE/node2"
  "$E2E_HERE/node2.sh" load "$E2E_STATE/node2" "$REGISTRY/pg-swarm-backup-task:$VERSION"
}
step_bases() { "$E2E_HERE/bases.sh"; }

# The project's own Dockerfiles through `make build`, with build args only. Containers here
# cannot resolve names, so the build gets the host's address for Debian's mirror (apt-get update)
# and the npm registry (npm ci) and nothing else.
step_build() {
  local host hosts=() ip
  for host in deb.debian.org registry.npmjs.org; do
    ip=$(getent ahostsv4 "$host" | awk 'NR == 1 { print $1 }')
    [ -n "$ip" ] || { log "cannot resolve $host on this host"; return 1; }
    hosts+=(--add-host "$host:$ip")
  done
  # COPY --chmod needs BuildKit: a docker CLI without the buildx plugin falls back to the
  # legacy builder, so use the engine package's own CLI, whose BuildKit is built in.
  local bin=$E2E_STATE/bin
  mkdir -p "$bin"
  if ! docker buildx version >/dev/null 2>&1 && [ -x /usr/bin/docker ]; then ln -sf /usr/bin/docker "$bin/docker"; fi
  PATH="$bin:$PATH" DOCKER_BUILDKIT=1 make --no-print-directory build BUILD_ARGS="--build-arg NODE_IMAGE=pgsb-e2e/node-base:trixie \
    --build-arg POSTGRES_IMAGE=pgsb-e2e/postgres-base:trixie --build-arg PG_MAJOR=17 --build-arg PG_APT=debian ${hosts[*]}" \
    >"$E2E_STATE/build.log" 2>&1 || { tail -n 40 "$E2E_STATE/build.log" >&2; return 1; }
}

# What docs/deploy.md tells users to create once, outside the stack; refuses to touch existing ones.
step_prerequisites() {
  local kind name
  for kind in "secret postgres_password" "config postgresql-conf" "network backend-net"; do
    name=${kind#* }
    if docker "${kind% *}" inspect "$name" >/dev/null 2>&1; then
      log "a ${kind% *} $name exists already: this engine holds a real stack; not touching it"
      return 1
    fi
  done
  if docker stack ls --format '{{.Name}}' | grep -qx "$STACK"; then log "a stack $STACK exists already"; return 1; fi
  openssl rand -hex 24 | docker secret create postgres_password - >/dev/null
  echo "secret rm postgres_password" >>"$E2E_STATE/created"
  docker config create postgresql-conf stack/postgresql.conf >/dev/null
  echo "config rm postgresql-conf" >>"$E2E_STATE/created"
  docker network create --driver overlay --attachable backend-net >/dev/null
  echo "network rm backend-net" >>"$E2E_STATE/created"
  # Signed by default, as make deploy does it: the pair and both secrets made on first deploy.
  for name in backup_signing_key backup_verify_key; do
    if docker secret inspect "$name" >/dev/null 2>&1; then log "a secret $name exists already; not touching it"; return 1; fi
  done
  mkdir -p "$E2E_STATE/keys"
  SIGNING_KEY_OUT=$E2E_STATE/keys/sign.pem VERIFY_KEY_OUT=$E2E_STATE/keys/verify.pem bash stack/signing-keys.sh 2>"$E2E_STATE/keys/out.log" \
    || { cat "$E2E_STATE/keys/out.log" >&2; return 1; }
  printf 'secret rm backup_signing_key\nsecret rm backup_verify_key\n' >>"$E2E_STATE/created"
  # Encrypted (ENCRYPTION=1, run.sh): the age key as docs/security.md "Encryption at rest" makes it.
  for name in age_recipients age_identity; do
    if docker secret inspect "$name" >/dev/null 2>&1 || docker config inspect "$name" >/dev/null 2>&1; then log "a secret or config $name exists already; not touching it"; return 1; fi
  done
  age-keygen -o "$E2E_STATE/keys/identity.txt" 2>/dev/null
  age-keygen -y "$E2E_STATE/keys/identity.txt" | docker config create age_recipients - >/dev/null
  echo "config rm age_recipients" >>"$E2E_STATE/created"
  docker secret create age_identity "$E2E_STATE/keys/identity.txt" >/dev/null
  echo "secret rm age_identity" >>"$E2E_STATE/created"
}

# Before the worker's engine starts: its mount namespace copies this host's mounts as slaves, and
# only a mount that exists then (and is shared) passes later mounts on to it.
step_storagebox() {
  # The mount point: shared, because the stack binds it with rslave, which Docker refuses on a
  # private mount such as this machine's / (systemd hosts mount / shared); a mount made on it later
  # propagates into the containers of both nodes. Then the box mounted onto it, holding the
  # backups folder owned by the task image's BACKUP_UID/GID (1000), as docs/deploy.md asks.
  install -d -m 0755 "$E2E_MNT"
  mount --bind "$E2E_MNT" "$E2E_MNT"
  mount --make-shared "$E2E_MNT"
  install -d -m 0755 "$E2E_BOX" "$E2E_BOX/backups"
  install -d -o 1000 -g 1000 -m 0750 "$E2E_BACKUP_DIR"
  mount_box
}

# The storage box mounted onto its mount point, and taken off again (scenario m).
mount_box() { mount --bind "$E2E_BOX" "$E2E_MNT"; }
unmount_box() { umount "$E2E_MNT"; }

# make deploy itself: signed unless SIGNING=0 (scenario u), encrypted with ENCRYPTION=1 (run.sh), the
# S3 mirror with S3_BUCKET (scenario s), test/e2e/docker-compose.e2e.yml last (EXTRA_STACK_FILES).
deploy() {
  make --no-print-directory deploy >"$E2E_STATE/deploy.log" 2>&1 || { cat "$E2E_STATE/deploy.log" >&2; return 1; }
}

