#!/usr/bin/env bash
# The main job end to end on a throwaway local cluster and folder: sample data, a full
# backup, list, the file proven with stock tools (sha256sum -c, bunzip2 -t), an
# incremental that is skipped because nothing changed (its healthcheck pings arriving at a
# local listener) and one that holds only the changed database, verify --restore, and restore-latest into a second empty cluster
# compared with the source by pg_dumpall; then an age-encrypted full restored with the stock pipeline
# (age -d | bunzip2 | psql) into a third cluster. Everything lives under one temp folder.
set -euo pipefail
cd "$(dirname "$0")/.."

npm run build --silent

bindir=""
if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
  bindir="$(pg_config --bindir)"
else
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && bindir="$d"; done
fi
[ -n "$bindir" ] || { echo "demo: PostgreSQL server binaries not found; run scripts/setup.sh" >&2; exit 1; }

root="$(mktemp -d /tmp/pgsb-demo-XXXXXX)"
chmod 755 "$root"
data="$root/data"
sock="$root/sock"
backups="$root/backups"
mkdir -p "$sock" "$backups"
port=$((20000 + RANDOM % 20000))

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
[ "$(id -u)" -eq 0 ] && chown postgres: "$root" "$sock"

listener_pid=""
clusters=()
stop() {
  [ -n "$listener_pid" ] && kill "$listener_pid" 2>/dev/null
  local d
  for d in "${clusters[@]}"; do as_pg "$bindir/pg_ctl" -D "$d" -m fast -w stop >/dev/null 2>&1 || true; done
}
trap stop EXIT

# start_cluster DIR PORT: a new throwaway cluster on the shared socket folder, stopped on exit.
start_cluster() {
  as_pg "$bindir/initdb" -D "$1" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
  clusters+=("$1")
  as_pg "$bindir/pg_ctl" -D "$1" -l "$1.log" -w -o "-p $2 -k $sock -c listen_addresses=''" start >/dev/null
}

echo "== throwaway cluster in $data (port $port, socket $sock)"
start_cluster "$data" "$port"

export PGHOST="$sock" PGPORT="$port" PGUSER=postgres PGDATABASE=postgres
export BACKUP_DIR="$backups" TZ="${TZ:-Europe/Berlin}" LOG_FILE="$root/backup.log"
psql_q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }

echo "== sample data: roles, three databases (one named with a space and a quote), a large object"
psql_q <<'SQL'
CREATE ROLE app_owner LOGIN PASSWORD 'demo-only';
CREATE ROLE reader NOLOGIN;
GRANT reader TO app_owner;
CREATE DATABASE shop OWNER app_owner;
CREATE DATABASE analytics;
CREATE DATABASE "it's a demo";
SQL
psql_q -d shop <<'SQL'
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, note jsonb);
INSERT INTO customers (name, note) SELECT 'customer ' || g, jsonb_build_object('n', g) FROM generate_series(1, 50000) g;
CREATE TABLE orders (id bigserial PRIMARY KEY, customer int REFERENCES customers, total numeric(10,2));
INSERT INTO orders (customer, total) SELECT 1 + g % 50000, g * 1.5 FROM generate_series(1, 100000) g;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader;
SELECT lo_from_bytea(0, 'a large object'::bytea);
SQL
psql_q -d analytics -c "CREATE TABLE events AS SELECT g AS id, now() - g * interval '1 minute' AS at FROM generate_series(1, 20000) g"
psql_q -d "it's a demo" -c "CREATE TABLE t (v text); INSERT INTO t VALUES ('-- Database \"x\" dump'), ('\\connect x')"

cli() { node dist/tasks/cli.js "$@" 2>>"$root/demo-stderr.log"; }

echo; echo "== backup full"
cli backup full
echo; echo "== list"
cli list
fulls=("$backups"/full/*_full.sql.bz2)
full="${fulls[0]}"
echo; echo "== checksum with stock tools (in $backups/full)"
(cd "$backups/full" && sha256sum -c ./*.sha256)
echo; echo "== bunzip2 -t"
bunzip2 -t "$full" && echo "$(basename "$full"): bzip2 stream OK"

echo; echo "== backup incremental, nothing changed (expect: skipped), pinging a local stand-in for Healthchecks.io"
# Records each request's method and path; a real monitor answers the same way (200 OK).
node -e '
const http = require("node:http"), fs = require("node:fs");
const [log, portFile] = process.argv.slice(1);
const server = http.createServer((req, res) => {
  req.resume();
  req.on("end", () => { fs.appendFileSync(log, req.method + " " + req.url + "\n"); res.end("OK"); });
});
server.listen(0, "127.0.0.1", () => fs.writeFileSync(portFile, String(server.address().port)));
' "$root/pings.log" "$root/listener.port" &
listener_pid=$!
for _ in $(seq 50); do [ -s "$root/listener.port" ] && break; sleep 0.1; done
HEALTHCHECK_URL="http://127.0.0.1:$(cat "$root/listener.port")/ping/demo-check-uuid" cli backup incremental
grep -o '"msg":"skipped[^"]*"' "$root/demo-stderr.log" | tail -n 1
echo "the listener received (start, then success: a skipped run keeps the monitor green):"
sed 's/^/  /' "$root/pings.log"
sleep 1
echo; echo "== change one database, then backup incremental --dry-run and for real"
psql_q -d analytics -c "INSERT INTO events VALUES (0, now())"
sleep 1.5   # statistics are flushed by backends within a second
cli backup incremental --dry-run
cli backup incremental
cli list

echo; echo "== verify --restore: checksums, chain, and a restore into a throwaway cluster compared row by row"
cli verify --restore

echo; echo "== restore-latest (full + incremental) into a second, empty cluster"
data2="$root/data2"
port2=$((port + 1))
start_cluster "$data2" "$port2"
PGPORT="$port2" cli restore-latest --dry-run
PGPORT="$port2" cli restore-latest
normalised_dump() { PGTZ=UTC pg_dumpall -p "$1" | sed -E '/^\\(un)?restrict /d; /^-- Dumped (from|by) /d; /^ALTER ROLE postgres WITH /d'; }
if diff <(normalised_dump "$port") <(normalised_dump "$port2") >"$root/restore.diff"; then
  echo "pg_dumpall of the source and of the restored cluster: identical"
else
  echo "pg_dumpall differs after restore; see $root/restore.diff" >&2
  exit 1
fi

echo; echo "== encryption at rest: a full encrypted with age, restored with the stock pipeline"
mkdir -p "$root/backups-age"
age-keygen -o "$root/identity.txt" 2>/dev/null
age-keygen -y "$root/identity.txt" > "$root/recipients.txt"
BACKUP_DIR="$root/backups-age" AGE_RECIPIENTS_FILE="$root/recipients.txt" cli backup full
agefulls=("$root"/backups-age/full/*_full.sql.bz2.age)
agefull="${agefulls[0]}"
echo "$(basename "$agefull"): $(head -c 21 "$agefull"); plaintext 'CREATE ROLE' in the file: $(grep -c 'CREATE ROLE' "$agefull" || true) times"
data3="$root/data3"
port3=$((port + 2))
start_cluster "$data3" "$port3"
echo "age -d -i identity.txt $(basename "$agefull") | bunzip2 | psql -X -d postgres"
age -d -i "$root/identity.txt" "$agefull" | bunzip2 | psql -X -q -p "$port3" -d postgres 2>"$root/stock-restore.log" >/dev/null || true
if diff <(normalised_dump "$port") <(normalised_dump "$port3") >"$root/stock-restore.diff"; then
  echo "pg_dumpall of the source and of the cluster restored from the encrypted file: identical"
else
  echo "pg_dumpall differs after the stock restore of the encrypted full; see $root/stock-restore.diff" >&2
  exit 1
fi

echo; echo "== done"
echo "backups:      $backups"
echo "log (JSON):   $root/backup.log"
echo "server log:   $data.log"
echo "restore with stock tools into an empty cluster:  bunzip2 -c $full | psql -X -d postgres"
echo "(the throwaway cluster is stopped now; rm -rf $root removes everything)"
