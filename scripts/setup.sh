#!/usr/bin/env bash
# Installs what the tests, the demo and the benchmark need on a fresh Debian machine:
# PostgreSQL server binaries, the compressors, shellcheck, promtool (Debian's prometheus
# package; checks stack/monitoring/), and the npm dependencies.
# Idempotent: each step is skipped when its result is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
pg_bindir() {
  if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then return 0; fi
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}
pg_bindir || need+=(postgresql postgresql-contrib)
command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
command -v bzip2 >/dev/null 2>&1 || need+=(bzip2)
command -v lbzip2 >/dev/null 2>&1 || need+=(lbzip2)
command -v zstd >/dev/null 2>&1 || need+=(zstd)
# age encrypts backups (AGE_RECIPIENTS_FILE); ssh-keygen makes the SSH keys its tests use as recipients.
command -v age >/dev/null 2>&1 || need+=(age)
command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
# lz4 reads pg_receivewal's .lz4 WAL (WAL_COMPRESSION=lz4) for restore-pitr and its tests.
command -v lz4 >/dev/null 2>&1 || need+=(lz4)
command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
# GNU time measures peak RSS in the large-restore tests; openssl checks signatures the stock way.
[ -x /usr/bin/time ] || need+=(time)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v sudo >/dev/null 2>&1 || command -v runuser >/dev/null 2>&1 || need+=(util-linux)

if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages ${need[*]}; run as root or install them: apt-get install ${need[*]}" >&2
    exit 1
  fi
  echo "setup: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The Debian packages start a PostgreSQL cluster (port 5432) and, where systemd runs, a
# Prometheus server (port 9090) of their own; the tests use neither (only promtool).
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
