#!/usr/bin/env bash
# Builds the e2e's local base images, because no container registry is reachable here:
#   pgsb-e2e/rootfs:trixie         Debian trixie (debootstrap minbase) with every package both images
#                                  need, imported with `docker import`; cached, as it takes minutes
#   pgsb-e2e/postgres-base:trixie  stands in for postgres:16-alpine: PostgreSQL 17 and the stand-in
#                                  entrypoint (test/e2e/docker-entrypoint.sh)
#   pgsb-e2e/node-base:trixie      stands in for node:22-trixie-slim: Node 20.19, npm, the task's tools
# The two small images are rebuilt every run (seconds); E2E_REBUILD_BASES=1 rebuilds the root file system.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
suite=trixie
pg_major=17
rootfs_tag=pgsb-e2e/rootfs:$suite
postgres_tag=pgsb-e2e/postgres-base:$suite
node_tag=pgsb-e2e/node-base:$suite
mirror=${E2E_DEBIAN_MIRROR:-http://deb.debian.org/debian}

packages=(
  # PostgreSQL server (the postgres image; the task's verify --restore) and client
  "postgresql-$pg_major" "postgresql-client-$pg_major"
  # the task image's build stage and runtime
  nodejs npm ca-certificates
  bzip2 lbzip2 zstd gzip tzdata tini
  # make test-pg17 runs integration tests in the node base: what scripts/setup.sh installs for them
  age lz4 openssh-client openssl time procps util-linux
)

root=
ctx=$(mktemp -d)
# debootstrap mounts proc and sys inside the target, and so does the apt-get step; a failed run
# may leave them there.
cleanup() {
  if [ -n "$root" ]; then
    umount -l "$root/proc" "$root/sys" 2>/dev/null || true
    rm -rf --one-file-system "$root" "$root.log"
  fi
  rm -rf "$ctx"
}
trap cleanup EXIT

build_rootfs() {
  root=$(mktemp -d /var/tmp/pgsb-e2e-rootfs.XXXXXX)
  echo "bases: debootstrap $suite into $root (a few minutes)"
  timeout 900 debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$root.log" 2>&1 || {
    tail -n 30 "$root.log" "$root/debootstrap/debootstrap.log" >&2
    echo "bases: debootstrap failed" >&2
    return 1
  }
  # The packages through apt in a chroot, not debootstrap --include: debootstrap configures its
  # packages without dependency order and npm's postinst then fails. No service may start here.
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 0755 "$root/usr/sbin/policy-rc.d"
  mount -t proc proc "$root/proc"
  if ! DEBIAN_FRONTEND=noninteractive timeout 900 chroot "$root" sh -c \
    "apt-get update && apt-get install -y --no-install-recommends ${packages[*]}" >"$root.log" 2>&1; then
    tail -n 30 "$root.log" >&2
    echo "bases: apt-get install in the chroot failed" >&2
    return 1
  fi
  umount "$root/proc"
  rm -f "$root/usr/sbin/policy-rc.d" "$root/etc/resolv.conf"
  # The package's own cluster (17/main) is not used: the entrypoint initializes PGDATA.
  rm -rf "$root/var/lib/postgresql/$pg_major" "$root/etc/postgresql/$pg_major"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | docker import - "$rootfs_tag" >/dev/null
}

if [ -n "${E2E_REBUILD_BASES:-}" ] || ! docker image inspect "$rootfs_tag" >/dev/null 2>&1; then
  build_rootfs
else
  echo "bases: $rootfs_tag cached"
fi

# `docker import --change` takes no STOPSIGNAL, so the images' settings come from Dockerfiles.
path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
cp "$here/docker-entrypoint.sh" "$ctx/"
# This host's own extra trust anchors (a TLS-inspecting egress proxy, for one), so `npm ci` in
# the task image's build stage reaches the npm registry as the host does.
mkdir "$ctx/ca"
cp /usr/local/share/ca-certificates/*.crt "$ctx/ca/" 2>/dev/null || true

# What the official postgres image declares, so Dockerfile.postgres builds on it unchanged.
docker build -q -t "$postgres_tag" -f - "$ctx" >/dev/null <<DOCKERFILE
FROM $rootfs_tag
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN chmod 0755 /usr/local/bin/docker-entrypoint.sh && install -d -m 0755 /docker-entrypoint-initdb.d
ENV PATH=/usr/lib/postgresql/$pg_major/bin:$path PG_MAJOR=$pg_major PGDATA=/var/lib/postgresql/data
ENTRYPOINT ["docker-entrypoint.sh"]
STOPSIGNAL SIGINT
EXPOSE 5432
CMD ["postgres"]
DOCKERFILE
docker build -q -t "$node_tag" -f - "$ctx" >/dev/null <<DOCKERFILE
FROM $rootfs_tag
COPY ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates >/dev/null
ENV PATH=$path NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
CMD ["node"]
DOCKERFILE
echo "bases: built $postgres_tag and $node_tag"
