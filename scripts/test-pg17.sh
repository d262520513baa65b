#!/usr/bin/env bash
# make test-pg17: integration test files run inside the e2e's Debian trixie image
# (pgsb-e2e/node-base:trixie from test/e2e/bases.sh: Node 20, PostgreSQL 17 server and client,
# the compressors, age, openssl), so the restore and verify code meets pg_dump 17 (its \restrict
# lines) while this host has PostgreSQL 15. As root: it starts a Docker engine when none answers
# (test/e2e/engine.sh, without a swarm), builds or reuses the base images, and runs the tests in
# one container as root (the tests run their clusters as the postgres OS user via runuser).
#   scripts/test-pg17.sh [TEST_FILE...]     default: the restore, auto-restore, verify, encryption
#                                           and signing integration tests
# The repository is copied into the container (its dist/ and vitest's cache stay the container's
# own) with this host's node_modules: no network (--network none); the packages are plain
# JavaScript, and esbuild's linux-x64 binary runs on trixie's glibc as here. Everything it started
# (the container, the engine) is removed at the end, also on failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

[ "$(id -u)" -eq 0 ] || { echo "test-pg17: needs root (dockerd); run it as root" >&2; exit 1; }
[ -d node_modules ] || { echo "test-pg17: no node_modules here; run npm ci (make test does) first" >&2; exit 1; }

files=("$@")
if [ ${#files[@]} -eq 0 ]; then
  files=(test/integration/restore*.test.ts test/integration/autoRestore.test.ts test/integration/verify.test.ts
    test/integration/encryption.test.ts test/integration/signing.test.ts)
fi
for f in "${files[@]}"; do [ -f "$f" ] || { echo "test-pg17: no test file $f" >&2; exit 2; }; done

state=$(mktemp -d /tmp/pgsb-pg17.XXXXXX)
name=pgsb-test-pg17-$$
started=$(date +%s)
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  docker rm -f "$name" >/dev/null 2>&1 || true
  test/e2e/engine.sh down "$state/engine" || true
  rm -rf --one-file-system "$state"
  echo "test-pg17: $(($(date +%s) - started)) s in all, exit $rc" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ENGINE_SWARM=0 test/e2e/engine.sh up "$state/engine"
test/e2e/bases.sh
image=pgsb-e2e/node-base:trixie

echo "test-pg17: ${#files[@]} file(s) in $image: ${files[*]}" >&2
# The copy leaves out .git and the host's build output; node_modules comes along as it is.
# shellcheck disable=SC2016 # expanded by the container's bash
docker run --name "$name" --network none --user 0:0 -e CI="${CI:-}" \
  -v "$repo:/src:ro" "$image" bash -euo pipefail -c '
    mkdir /work && tar -C /src --exclude=./.git --exclude=./dist -cf - . | tar -C /work -xf -
    cd /work
    echo "test-pg17: $(node --version), $(psql --version), server $(ls /usr/lib/postgresql)" >&2
    npm run --silent build
    exec npx vitest run --project integration "$@"
  ' test-pg17 "${files[@]}"
