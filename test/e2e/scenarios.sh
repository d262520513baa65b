#!/usr/bin/env bash
# The scenarios of issue 16 (sourced by run.sh). Each asserts on the host: files in the bind
# dir, task states and exit codes, psql in the postgres container. Each returns non-zero on the
# first failed check and says which. The stack runs signed and encrypted (ENCRYPTION=1, run.sh).

scenario_title() {
  case $1 in
    b) echo "scheduled full + no-change incremental" ;;
    c) echo "make one-offs (swarm-run-task.sh)" ;;
    u) echo "SIGNING=0 deploy, then signed again (upgrade)" ;;
    d) echo "full stopped mid-dump; LOCK_MODE=skip -> 3" ;;
    e) echo "disaster: wipe, redeploy, auto-restore" ;;
    f) echo "verify --restore job; flipped byte -> 5" ;;
    g) echo "cleanup --dry-run job changes nothing" ;;
    h) echo "two backups at once: the cluster lock" ;;
    p) echo "PITR, encrypted and signed: runbook:pitr" ;;
    k) echo "postgres killed mid-dump: exit 1 in bounded time" ;;
    w) echo "two nodes: worker backup, restore, node lost, wal move" ;;
    m) echo "box mounted late: exit 9, seen once mounted" ;;
    r) echo "runbook: db dropped, db damaged, restore-at" ;;
    l) echo "runbook: a lock held" ;;
    j) echo "runbook: a backup job failing" ;;
    x) echo "runbook: wiped, auto-restore refused" ;;
    s) echo "runbook: storage box lost, S3 mirror" ;;
    z) echo "runbook: keys rotated" ;;
  esac
}

fail() { log "FAILED: $*"; return 1; }
expect_eq() { [ "$1" = "$2" ] || fail "$3: expected '$2', got '$1'"; }

cron() { "$E2E_HERE/cronjob.sh" "${STACK}_$1" "${2:-600}"; }
one_off() { IMAGE="$REGISTRY/pg-swarm-backup-task:$VERSION" STORAGEBOX="$E2E_MNT" TASK_TIMEOUT_SECONDS=600 bash stack/swarm-run-task.sh "$@"; }
# A file's state in the bind dir, for "nothing changed" checks.
tree_state() { find "$E2E_BACKUP_DIR" -mindepth 1 ! -name backup.log -printf '%P %s %T@ %l\n' | sort; }
files_state() { find "$E2E_BACKUP_DIR" -mindepth 1 ! -type d ! -name backup.log -printf '%P %s %T@ %l\n' | sort; }
partials() { find "$E2E_BACKUP_DIR" -name '*.partial' ! -path '*/wal/*' | wc -l; }
# The latest pointer of a tier (an encrypted backup has its own, latest_<tier>.sql.bz2.age).
pointer() {
  local f=$E2E_BACKUP_DIR/$1/latest_$1.sql.bz2
  [ "${ENCRYPTION:-0}" = 0 ] || f=$f.age
  readlink "$f" 2>/dev/null || cat "$f.txt" 2>/dev/null || true
}
# pg_dumpall without pg_dump's random \restrict keys, and without the password of the role the
# tasks connect as: a restore keeps that role's current password (docs/restore.md "Restore").
dumpall() {
  docker exec "$(postgres_cid)" pg_dumpall -U postgres | grep -v -e '^\\restrict ' -e '^\\unrestrict ' \
    | sed -E "/^ALTER ROLE postgres /s/ PASSWORD '[^']*'//"
}
postgres_task_running() { case $(newest_task_state "${STACK}_postgres") in running*) return 0 ;; *) return 1 ;; esac; }
no_one_offs() { [ -z "$(docker service ls -q -f label=pgsb.one-off=true)" ]; }

scenario_a() {
  local node state
  node=$(cat "$E2E_STATE/engine/node")
  docker node update --label-rm database "$node" >/dev/null
  deploy
  wait_until 60 "a postgres task" sh -c "[ -n \"\$(docker service ps -q ${STACK}_postgres)\" ]" || return 1
  sleep 3
  state=$(newest_task_state "${STACK}_postgres")
  case $state in pending*"no suitable node"*) log "without database=true: $state" ;; *) fail "postgres task without the label: $state" || return 1 ;; esac
  docker node update --label-add database=true "$node" >/dev/null
  wait_until 240 "postgres healthy (HEALTHCHECK)" postgres_healthy || return 1
  # Swarm keeps a task "starting" until its container is healthy and records "running" a moment after.
  wait_until 30 "the postgres task running" postgres_task_running \
    || fail "postgres task not running: $(task_states "${STACK}_postgres" | tr '\n' ';')" || return 1
  # A fresh cluster: the write gate, through the stand-in entrypoint's initdb.d run, and the
  # empty application database POSTGRES_DB made, as the official image does.
  expect_eq "$(pg -c 'SHOW default_transaction_read_only')" on "write gate of the new cluster" || return 1
  expect_eq "$(pg -c "SELECT count(*) FROM pg_database WHERE datname = 'appdb'")" 1 "POSTGRES_DB=appdb created at initdb" || return 1
  # Deployed signed, as make deploy does by default: the backups hold the private key, readers the public one.
  docker service inspect -f '{{json .Spec.TaskTemplate.ContainerSpec.Env}}' "${STACK}_backup-full" | grep -q BACKUP_SIGNING_KEY_FILE \
    || fail "backup-full deployed without BACKUP_SIGNING_KEY_FILE" || return 1
  docker service inspect -f '{{json .Spec.TaskTemplate.ContainerSpec.Env}}' "${STACK}_auto-restore" | grep -q BACKUP_VERIFY_KEY_FILE \
    || fail "auto-restore deployed without BACKUP_VERIFY_KEY_FILE" || return 1
  # Encrypted (ENCRYPTION=1): the physical tier gets the recipients too, wal-receive its spool volume.
  local svc
  for svc in backup-full backup-base wal-receive; do
    docker service inspect -f '{{json .Spec.TaskTemplate.ContainerSpec.Env}}' "${STACK}_$svc" | grep -q AGE_RECIPIENTS_FILE \
      || fail "$svc deployed without AGE_RECIPIENTS_FILE" || return 1
  done
  docker service inspect -f '{{json .Spec.TaskTemplate.ContainerSpec}}' "${STACK}_wal-receive" | grep -q '"Target":"/var/lib/pgsb-wal-spool"' \
    || fail "wal-receive deployed without its spool volume" || return 1
  # auto-restore with no backups at all opens it (the scheduled run, once a minute).
  expect_eq "$(cron auto-restore 300)" "complete|0|" "auto-restore with no backups" || return 1
  expect_eq "$(pg -c 'SHOW default_transaction_read_only')" off "write gate after auto-restore" || return 1
  pg <<'SQL'
CREATE ROLE app LOGIN PASSWORD 'app-e2e';
ALTER DATABASE appdb OWNER TO app;
\c appdb
SET ROLE app;
CREATE TABLE items (id int PRIMARY KEY, label text);
INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 1000) g;
SQL
}

scenario_b() {
  local before name incr_before
  before=$(pointer full)
  expect_eq "$(cron backup-full)" "complete|0|" "scheduled backup-full" || return 1
  name=$(backups_of full | tail -n 1)
  [ -n "$name" ] && [ "$name" != "$before" ] || fail "no new full in $E2E_BACKUP_DIR/full" || return 1
  expect_eq "$(stat -c %u:%g "$E2E_BACKUP_DIR/full/$name")" 1000:1000 "owner of $name (BACKUP_UID)" || return 1
  (cd "$E2E_BACKUP_DIR/full" && sha256sum -c --quiet "$name.sha256") || fail "sha256sum -c $name.sha256" || return 1
  # Signed: checked with stock tools and the public key make deploy wrote (docs/security.md "Signing").
  openssl pkeyutl -verify -pubin -inkey "$E2E_STATE/keys/verify.pem" -rawin -in "$E2E_BACKUP_DIR/full/$name.sha256" \
    -sigfile "$E2E_BACKUP_DIR/full/$name.sha256.sig" >/dev/null || fail "openssl pkeyutl -verify of $name.sha256.sig" || return 1
  expect_eq "$(pointer full)" "$name" "latest_full pointer" || return 1
  incr_before=$(backups_of incremental | wc -l)
  expect_eq "$(cron backup-incremental)" "complete|0|" "scheduled incremental, nothing changed" || return 1
  expect_eq "$(backups_of incremental | wc -l)" "$incr_before" "incrementals after a no-change run" || return 1
}

scenario_c() {
  local out name
  export STORAGEBOX=$E2E_MNT
  out=$(make --no-print-directory backup-full 2>&1) || fail "make backup-full: $out" || return 1
  grep -q 'complete, exit code 0' <<<"$out" || fail "make backup-full printed no end state: $out" || return 1
  pg -d appdb -c "INSERT INTO items VALUES (1001, 'one more')" || return 1
  out=$(make --no-print-directory backup-incr 2>&1) || fail "make backup-incr: $out" || return 1
  name=$(backups_of incremental | tail -n 1)
  [ -n "$name" ] || fail "no incremental after make backup-incr" || return 1
  out=$(make --no-print-directory backup-list 2>&1) || fail "make backup-list: $out" || return 1
  grep -q "$name" <<<"$out" || fail "make backup-list does not show $name: $out" || return 1
  out=$(make --no-print-directory backup-restore ARGS="restore-database $name appdb --as appdb_copy" 2>&1) \
    || fail "make backup-restore: $out" || return 1
  expect_eq "$(pg -d appdb_copy -c 'SELECT count(*) FROM items')" 1001 "rows restored into appdb_copy" || return 1
  pg -c 'DROP DATABASE appdb_copy' || return 1
  # A one-off that fails: make fails with it and no service is left behind.
  if out=$(make --no-print-directory backup-restore ARGS="list-databases 20000101_000000_full.sql.bz2" 2>&1); then
    fail "a failing one-off made make exit 0: $out" || return 1
  fi
  no_one_offs || fail "one-off services left: $(docker service ls -f label=pgsb.one-off=true)" || return 1
}

# SIGNING=0 keeps working (an unsigned backup, restorable only when SIGNING=0 is given for that
# one restore), and the way back is docs/security.md's upgrade path: deploy signed, a signed full at once.
scenario_u() {
  local name rc=0 out
  # make deploy refuses ENCRYPTION=1 without signing.
  SIGNING=0 ENCRYPTION=0 deploy || return 1
  docker service inspect -f '{{json .Spec.TaskTemplate.ContainerSpec.Env}}' "${STACK}_backup-incremental" | grep -q _KEY_FILE \
    && { fail "SIGNING=0 deployed a key to backup-incremental"; return 1; }
  pg -d appdb -c "INSERT INTO items VALUES (4001, 'unsigned')" || return 1
  expect_eq "$(cron backup-incremental)" "complete|0|" "an unsigned scheduled incremental" || return 1
  name=$(backups_of incremental | tail -n 1)
  [ ! -e "$E2E_BACKUP_DIR/incremental/$name.sha256.sig" ] || fail "$name is signed although SIGNING=0" || return 1
  export STORAGEBOX=$E2E_MNT
  # make itself exits 2 for any failed recipe; the runner names the task's own exit code.
  out=$(make --no-print-directory backup-restore ARGS="restore-database $name appdb --as appdb_u" 2>&1) || rc=$?
  [ "$rc" -ne 0 ] && grep -q 'exit code 4' <<<"$out" && grep -q 'signature .* is missing: the backup is unsigned' <<<"$out" \
    || fail "restore of the unsigned $name with the verify key: not refused with exit 4: $out" || return 1
  out=$(make --no-print-directory backup-restore SIGNING=0 ARGS="restore-database $name appdb --as appdb_u" 2>&1) \
    || fail "restore of the unsigned $name with SIGNING=0: $out" || return 1
  expect_eq "$(pg -d appdb_u -c "SELECT count(*) FROM items WHERE id = 4001")" 1 "the unsigned backup's row restored" || return 1
  pg -c 'DROP DATABASE appdb_u' || return 1
  deploy || return 1
  out=$(make --no-print-directory backup-full 2>&1) || fail "the first signed full after signing is back: $out" || return 1
  name=$(backups_of full | tail -n 1)
  [ -s "$E2E_BACKUP_DIR/full/$name.sha256.sig" ] || fail "$name has no signature" || return 1
}

scenario_e() {
  local before after
  cron backup-incremental >/dev/null
  before=$(dumpall)
  docker stack rm "$STACK" >/dev/null
  wait_until 90 "the stack's containers to go" sh -c "[ -z \"\$(docker ps -aq -f label=com.docker.stack.namespace=$STACK)\" ]" || return 1
  wait_until 30 "the data volume removed" docker volume rm "${STACK}_postgres-data" >/dev/null || return 1
  # The network of a removed stack lingers a moment; deploy retries until Swarm accepts it.
  wait_until 60 "the stack to deploy again" deploy || return 1
  wait_until 240 "postgres healthy after the wipe" postgres_healthy || return 1
  expect_eq "$(pg -c 'SHOW default_transaction_read_only')" on "write gate of the wiped cluster" || return 1
  if pg -c 'CREATE TABLE must_fail ()' 2>/dev/null; then fail "a write went through the closed gate" || return 1; fi
  # The new cluster has POSTGRES_DB's empty appdb, as the official image makes it: still a wipe.
  # The scheduled backup refuses (exit 4) and writes nothing, no empty full (issue 25).
  local files
  files=$(files_state)
  expect_eq "$(cron backup-incremental)" "failed|4|task: non-zero exit (4)" "scheduled incremental on the wiped cluster with POSTGRES_DB" || return 1
  expect_eq "$(files_state)" "$files" "BACKUP_DIR's files after the refused backup" || return 1
  expect_eq "$(cron auto-restore 600)" "complete|0|" "auto-restore of the wiped cluster" || return 1
  after=$(dumpall)
  [ "$before" = "$after" ] || { diff <(echo "$before") <(echo "$after") | head -n 20 >&2; fail "pg_dumpall differs after the restore" || return 1; }
  expect_eq "$(pg -c 'SHOW default_transaction_read_only')" off "write gate after the restore" || return 1
  # What the runbook has the operator check after a wipe.
  runbook_run wiped-check || return 1
  docker exec "$(postgres_cid)" psql -X -q -U app -d appdb -c "INSERT INTO items VALUES (1002, 'after restore')" \
    || fail "the application role cannot write after the restore" || return 1
}

scenario_f() {
  local file copy
  expect_eq "$(cron verify 900)" "complete|0|" "verify --restore" || return 1
  file=$E2E_BACKUP_DIR/full/$(backups_of full | tail -n 1)
  copy=$E2E_STATE/original
  cp -p "$file" "$copy"
  # One byte in the middle, xor 1.
  local size off byte
  size=$(stat -c %s "$file")
  off=$((size / 2))
  byte=$(od -An -tu1 -j "$off" -N1 "$file" | tr -d ' ')
  printf '%b' "\\$(printf %03o $((byte ^ 1)))" | dd of="$file" bs=1 seek="$off" conv=notrunc status=none
  local got
  got=$(cron verify 900)
  cp -p "$copy" "$file"
  expect_eq "$got" "failed|5|task: non-zero exit (5)" "verify after a flipped byte" || return 1
}

scenario_g() {
  local before out
  before=$(tree_state)
  out=$(one_off cleanup-dry -- cleanup --dry-run 2>&1) || fail "cleanup --dry-run: $out" || return 1
  expect_eq "$(tree_state)" "$before" "BACKUP_DIR after cleanup --dry-run" || return 1
}

# Task containers dumping right now: distinct client addresses of sessions copying table data out.
dumpers() { pg -c "SELECT count(DISTINCT client_addr) FROM pg_stat_activity WHERE query LIKE 'COPY % TO stdout%' AND pid <> pg_backend_pid()"; }
# "startedAt finishedAt" of a backup, from its manifest.
span() { node -e 'const m = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); console.log(Date.parse(m.startedAt), Date.parse(m.finishedAt))' "$1"; }

scenario_h() {
  local fulls a b max=0 n
  fulls=$(backups_of full | wc -l)
  # --force: both dump although nothing changed (else the second, after waiting, skips).
  LOCK_MODE="wait" one_off lock-a -- backup full --force >"$E2E_STATE/h-a.log" 2>&1 &
  a=$!
  LOCK_MODE="wait" one_off lock-b -- backup full --force >"$E2E_STATE/h-b.log" 2>&1 &
  b=$!
  while kill -0 "$a" 2>/dev/null || kill -0 "$b" 2>/dev/null; do
    n=$(dumpers) || n=0
    [ "$n" -gt "$max" ] && max=$n
    sleep 0.3
  done
  wait "$a" || fail "first backup job: $(cat "$E2E_STATE/h-a.log")" || return 1
  wait "$b" || fail "second backup job: $(cat "$E2E_STATE/h-b.log")" || return 1
  [ "$max" -le 1 ] || fail "$max task containers were dumping at once" || return 1
  expect_eq "$(backups_of full | wc -l)" $((fulls + 2)) "fulls after two jobs" || return 1
  local first second
  read -r -a first <<<"$(span "$E2E_BACKUP_DIR/full/$(backups_of full | tail -n 2 | head -n 1).json")"
  read -r -a second <<<"$(span "$E2E_BACKUP_DIR/full/$(backups_of full | tail -n 1).json")"
  [ "${first[1]}" -le "${second[0]}" ] || fail "the two fulls overlap: ${first[*]} and ${second[*]}" || return 1
  (cd "$E2E_BACKUP_DIR/full" && sha256sum -c --quiet ./*.sha256) || fail "sha256sum -c of the fulls" || return 1
}

scenario_d() {
  local pointer_before fulls bg got rc=0 out
  # About 300 MB of rows, so the dump takes many seconds on the task's 1 CPU.
  pg -d appdb -c "CREATE TABLE big AS SELECT g, md5(g::text) || md5((g + 1)::text) AS t FROM generate_series(1, 4000000) g" || return 1
  pointer_before=$(pointer full)
  fulls=$(backups_of full)
  "$E2E_HERE/cronjob.sh" "${STACK}_backup-full" 600 >"$E2E_STATE/d.out" 2>&1 &
  bg=$!
  wait_until 90 "the scheduled full dumping table big" sh -c "[ \"\$(docker exec $(postgres_cid) psql -X -At -U postgres -c \"SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY public.big %'\")\" -ge 1 ]" || return 1
  sleep 2
  # While it holds the cluster lock, a run under LOCK_MODE=skip does nothing and exits 3 (with
  # --force: a run with nothing changed skips before it asks for the lock).
  out=$(LOCK_MODE=skip one_off lock-skip -- backup incremental --force 2>&1) || rc=$?
  expect_eq "$rc" 3 "an incremental under LOCK_MODE=skip during the full ($out)" || return 1
  local t0 code
  t0=$(date +%s)
  docker service scale --detach "${STACK}_backup-full=0" >/dev/null
  wait "$bg" || true
  got=$(cat "$E2E_STATE/d.out")
  # Swarm deletes the task of a service scaled down, so its exit code comes from the engine's events;
  # the task may be gone before its container has died (its cleanup runs): look again, bounded.
  local tries
  for tries in $(seq 1 30); do
    code=$(docker events --since "$t0" --until "$(date +%s)" --filter type=container --filter event=die \
      --filter "label=com.docker.swarm.service.name=${STACK}_backup-full" --format '{{index .Actor.Attributes "exitCode"}}' | tail -n 1)
    [ -n "$code" ] && break
    [ "$tries" -lt 30 ] && sleep 1
  done
  log "the stopped full: $got; the container's exit code: $code"
  expect_eq "$code" 143 "exit code of the full stopped by SIGTERM" || return 1
  # pg_dump runs in the task container; what it leaves in the postgres container is its backend.
  wait_until 30 "no dump session left in postgres" sh -c "[ \"\$(docker exec $(postgres_cid) psql -X -At -U postgres -c \"SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pg-swarm-backup%'\")\" = 0 ]" || return 1
  [ -z "$(docker ps -q -f "name=${STACK}_backup-full.")" ] || fail "the stopped task's container still runs" || return 1
  expect_eq "$(backups_of full)" "$fulls" "fulls after the stopped backup" || return 1
  expect_eq "$(find "$E2E_BACKUP_DIR" -name '*.partial' | wc -l)" 0 "partial files left" || return 1
  expect_eq "$(pointer full)" "$pointer_before" "latest_full pointer after the stopped backup" || return 1
  expect_eq "$(cron backup-full 600)" "complete|0|" "the next full" || return 1
}

# Point-in-time recovery on the Swarm (issues 19, 24, 27), signed and encrypted: wal-receive streams
# through its spool volume into the bind dir (each file encrypted and signed), a base backup as a
# one-off (encrypted, signed), two marked rows with a time between them, then the runbook's commands
# (runbook:pitr: the plan, make restore-pitr AT=…; runbook:pitr-done: the old data directory removed,
# a new base backup); the restore job reads the base
# backup and the WAL with the identity and checks them with the verify key. The first row is there,
# the second is not.
scenario_p() {
  local at pg_uid rows spool
  # The big table of scenario d would only make the base backup slow.
  pg -d appdb -c "DROP TABLE IF EXISTS big" || return 1
  # A physical tier of this cluster only (scenario e replaced the one wal-receive could have seen),
  # with no receiver running while wal/ goes.
  timeout 180 docker service scale --detach=false "${STACK}_wal-receive=0" >/dev/null 2>&1 || true
  rm -rf "${E2E_BACKUP_DIR:?}/wal" "${E2E_BACKUP_DIR:?}/base"
  timeout 180 docker service scale --detach=false "${STACK}_wal-receive=1" >/dev/null 2>&1 || fail "wal-receive did not start" || return 1
  # The snapshot of the segment being received, encrypted (….gz.partial.age).
  wait_until 120 "wal-receive shipping a .partial.age into wal/" sh -c "ls '$E2E_BACKUP_DIR/wal' 2>/dev/null | grep -q '\.partial\.age$'" \
    || { docker service logs --tail 30 "${STACK}_wal-receive" >&2; return 1; }
  one_off base -- backup base >"$E2E_STATE/p-base.log" 2>&1 || { tail -n 20 "$E2E_STATE/p-base.log" >&2; fail "backup base"; return 1; }
  pg -c "CREATE TABLE pitr_marks (id int PRIMARY KEY)" -c "INSERT INTO pitr_marks VALUES (1)" || return 1
  sleep 2
  at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  sleep 2
  pg -c "INSERT INTO pitr_marks VALUES (2)" || return 1
  # A segment switch: the WAL holding both rows completes and ships at once (the snapshot of a
  # segment still being received ships every status interval too).
  pg -c "SELECT pg_switch_wal()" >/dev/null || return 1
  wait_until 60 "the switched segment shipped (two complete segments in wal/)" sh -c "[ \$(ls '$E2E_BACKUP_DIR/wal' | grep -cE '^[0-9A-F]{24}\.gz\.age$') -ge 2 ]" || return 1
  # Stored encrypted and signed only: no plaintext WAL or base backup, a signature beside each file,
  # and no table name readable in any of them.
  [ -z "$(find "$E2E_BACKUP_DIR/wal" "$E2E_BACKUP_DIR/base" -maxdepth 1 -type f \( -name '*.gz' -o -name '*.gz.partial' -o -name '*.tar.zst' \))" ] \
    || fail "plaintext WAL or base backup in the box: $(find "$E2E_BACKUP_DIR/wal" "$E2E_BACKUP_DIR/base" -maxdepth 1 -type f \( -name '*.gz' -o -name '*.tar.zst' \) | head -n 3)" || return 1
  local f
  # Completed segments only: a snapshot (….partial.age) is replaced while it grows.
  for f in "$E2E_BACKUP_DIR"/wal/*.gz.age "$E2E_BACKUP_DIR"/base/*.tar.zst.age; do
    [ -e "$f" ] || fail "no encrypted file in $(dirname "$f")" || return 1
    case $f in */base/*) [ -s "$f.sha256.sig" ] ;; *) [ -s "$f.sig" ] ;; esac || fail "$f has no signature" || return 1
  done
  ! grep -rlq pitr_marks "$E2E_BACKUP_DIR/wal" "$E2E_BACKUP_DIR/base" || fail "the table name pitr_marks is readable in wal/ or base/" || return 1
  # The spool: a named volume, private to the backup user (Dockerfile.task's folder, copied into it).
  spool=$(docker volume inspect -f '{{.Mountpoint}}' "${STACK}_wal-spool") || fail "no volume ${STACK}_wal-spool" || return 1
  expect_eq "$(stat -c '%u %a' "$spool")" "1000 700" "owner and mode of the spool volume" || return 1
  pg_uid=$(docker run --rm --network none --entrypoint sh "$REGISTRY/pg-swarm-backup-postgres:$VERSION" -c 'echo "$(id -u postgres):$(id -g postgres)"')
  log "runbook:pitr to $at (postgres runs as $pg_uid)"
  runbook_run pitr AT="$at" PG_UID="$pg_uid" TASK_TIMEOUT_SECONDS=600 RECOVERY_TIMEOUT_SECONDS=300 || return 1
  wait_until 240 "postgres healthy after restore-pitr" postgres_healthy || return 1
  rows=$(pg -c "SELECT string_agg(id::text, ',' ORDER BY id) FROM pitr_marks") || return 1
  expect_eq "$rows" 1 "rows of pitr_marks after restore-pitr to a time between them" || return 1
  expect_eq "$(pg -c 'SELECT pg_is_in_recovery()')" f "recovery state" || return 1
  runbook_run pitr-done || return 1
  [ -z "$(docker exec "$(postgres_cid)" sh -c 'ls -d /var/lib/postgresql/data/.pgsb-moved-* 2>/dev/null')" ] \
    || fail "the moved-aside data directory is still in the volume after runbook:pitr-done" || return 1
  no_one_offs || fail "one-off services left: $(docker service ls -f label=pgsb.one-off=true)" || return 1
  # The next scenarios run without a receiver, as the ones before did.
  timeout 180 docker service scale --detach=false "${STACK}_wal-receive=0" >/dev/null 2>&1 || true
}
