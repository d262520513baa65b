#!/usr/bin/env bash
# The runbook's situations (docs/runbook.md, issue 26), each staged on the deployed stack and then
# handled with the page's own commands (runbook_run, test/e2e/runbook.sh); sourced by run.sh's steps,
# like scenarios.sh. What the page promises is checked on the host afterwards: rows, files, the gate.
#   r  one database dropped, one damaged, all restored to a time (logical)
#   l  a lock held by a session left open: found by pid and ended
#   j  a backup job failing (the box unmounted): its state, exit code and message; run again
#   x  a wiped cluster whose auto-restore refused (a damaged backup): restored by hand to a time
#   s  the storage box lost: a new, empty box; the S3 mirror (s3rver on this host) lists and restores,
#      and restore-pitr --source s3 recovers to a time from the bucket alone
#   z  keys rotated: a new signing pair and age key as new secrets, deployed; old backups with the old key
# (The wiped cluster that auto-restore heals is scenario e, the point in time scenario p.)

# A psql session that holds the cluster lock, as one left open would (scenario l).
LOCK_KEY=1885827938
lock_holders() { pg -c "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $LOCK_KEY AND granted"; }
left_open_holds() { [ "$(pg -c "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE l.locktype = 'advisory' AND l.objid = $LOCK_KEY AND l.granted AND a.application_name = 'left-open'")" = 1 ]; }
end_left_open() { pg -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'left-open'" >/dev/null 2>&1 || true; }

scenario_r() {
  local name at
  # A database of its own, so the restores touch nothing the other scenarios look at.
  pg -c "CREATE DATABASE shop" || return 1
  pg -d shop -c "CREATE TABLE orders (id int PRIMARY KEY, item text)" -c "INSERT INTO orders SELECT g, 'order ' || g FROM generate_series(1, 100) g" || return 1
  expect_eq "$(cron backup-incremental)" "complete|0|" "the incremental holding shop" || return 1
  # An incremental, or the full it became when there was none (E2E_ONLY without b).
  name=$( (backups_of full; backups_of incremental) | sort | tail -n 1)
  # Damaged, not dropped: restored beside it.
  pg -d shop -c "DELETE FROM orders WHERE id > 50" || return 1
  runbook_run db-side FILE="$name" DB=shop || return 1
  expect_eq "$(pg -d shop_restored -c 'SELECT count(*) FROM orders')" 100 "rows of shop_restored (runbook:db-side)" || return 1
  pg -c "DROP DATABASE shop_restored" || return 1
  # Dropped: back under its own name.
  pg -c "DROP DATABASE shop" || return 1
  runbook_run db-dropped FILE="$name" DB=shop || return 1
  expect_eq "$(pg -d shop -c 'SELECT count(*) FROM orders')" 100 "rows of shop after runbook:db-dropped" || return 1
  # To a time between two backups: the first row is back, the second is not.
  pg -d shop -c "CREATE TABLE marks (id int)" -c "INSERT INTO marks VALUES (1)" || return 1
  expect_eq "$(cron backup-incremental)" "complete|0|" "the incremental before the time" || return 1
  sleep 2
  at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  sleep 2
  pg -d shop -c "INSERT INTO marks VALUES (2)" || return 1
  expect_eq "$(cron backup-incremental)" "complete|0|" "the incremental after the time" || return 1
  runbook_run restore-at AT="$at" || return 1
  expect_eq "$(pg -d shop -c 'SELECT string_agg(id::text, $$,$$ ORDER BY id) FROM marks')" 1 "marks after runbook:restore-at to $at" || return 1
  expect_eq "$(pg -d appdb -c 'SELECT count(*) > 0 FROM items')" t "appdb restored too" || return 1
}

scenario_l() {
  local bg pid out rc=0
  # Whatever happens below, the left-open session does not outlive the scenario.
  trap end_left_open EXIT
  docker exec "$(postgres_cid)" psql -X -q -U postgres -d postgres -c "SET application_name = 'left-open'" \
    -c "SELECT pg_advisory_lock($LOCK_KEY)" -c "SELECT pg_sleep(300)" >/dev/null 2>&1 &
  bg=$!
  wait_until 30 "the left-open session holding the lock" left_open_holds || return 1
  touch_appdb || return 1
  # A task that does not wait gives up at once, naming the holder (an unchanged cluster would skip before asking).
  out=$(make --no-print-directory backup-incr LOCK_MODE=skip 2>&1) || rc=$?
  [ "$rc" -ne 0 ] && grep -q 'exit code 3' <<<"$out" && grep -q 'lock busy: .*left-open' <<<"$out" \
    || fail "make backup-incr LOCK_MODE=skip while left-open holds the lock: not exit 3 naming it: $out" || return 1
  runbook_run lock-held || return 1
  pid=$(awk -F'|' '$2 ~ /left-open/ { gsub(/ /, "", $1); print $1 }' "$(runbook_log lock-held)")
  [[ $pid =~ ^[0-9]+$ ]] || fail "no pid of left-open in the output of runbook:lock-held" || return 1
  runbook_run lock-release PID="$pid" || return 1
  wait "$bg" || true
  expect_eq "$(lock_holders)" 0 "sessions holding the cluster lock after runbook:lock-release" || return 1
}

scenario_j() {
  local got
  touch_appdb || return 1
  unmount_box
  got=$(cron backup-incremental)
  mount_box
  expect_eq "$got" "failed|9|task: non-zero exit (9)" "the scheduled incremental without the box" || return 1
  runbook_run job-failed || return 1
  runbook_run job-rerun || return 1
}

# The data volume lost under a running stack: postgres stopped, its containers and volume removed,
# started again on an empty volume (scenario e does it with docker stack rm and a new deploy).
# Every container that has the volume mounted goes first: postgres's stopped ones, and the one-off
# jobs of scenario p (restore-pitr, restore-pitr-clean), whose containers outlive their services.
# postgres is started again whether or not the volume could be removed.
volume_removed() {
  docker ps -aq -f "volume=${STACK}_postgres-data" | xargs -r docker rm -f >/dev/null 2>&1
  docker volume rm "${STACK}_postgres-data" >/dev/null 2>&1
}
wipe_volume() {
  local rc=0
  timeout 180 docker service scale --detach=false "${STACK}_postgres=0" >/dev/null 2>&1 || return 1
  wait_until 30 "the data volume removed" volume_removed || rc=1
  timeout 180 docker service scale --detach=false "${STACK}_postgres=1" >/dev/null 2>&1 || rc=1
  wait_until 240 "postgres healthy on the empty volume" postgres_healthy || rc=1
  return "$rc"
}

# Flips one byte in the middle of FILE (xor 1); FILE.orig keeps the original.
flip_byte() {
  local file=$1 off byte
  cp -p "$file" "$file.orig"
  off=$(($(stat -c %s "$file") / 2))
  byte=$(od -An -tu1 -j "$off" -N1 "$file" | tr -d ' ')
  printf '%b' "\\$(printf %03o $((byte ^ 1)))" | dd of="$file" bs=1 seek="$off" conv=notrunc status=none
}

scenario_x() {
  local before at damaged got
  pg -d appdb -c "INSERT INTO items VALUES (3001, 'before the damaged backup')" || return 1
  expect_eq "$(cron backup-incremental)" "complete|0|" "the incremental before the time" || return 1
  before=$(dumpall)
  sleep 2
  at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  sleep 2
  pg -d appdb -c "INSERT INTO items VALUES (3002, 'in the damaged backup')" || return 1
  expect_eq "$(cron backup-incremental)" "complete|0|" "the incremental to be damaged" || return 1
  damaged=$E2E_BACKUP_DIR/incremental/$(backups_of incremental | tail -n 1)
  # Its signed checksum and manifest stay as they were: the damage shows in the read that restores it.
  flip_byte "$damaged"
  wipe_volume || { mv "$damaged.orig" "$damaged"; return 1; }
  expect_eq "$(pg -c 'SHOW default_transaction_read_only')" on "write gate of the wiped cluster" || { mv "$damaged.orig" "$damaged"; return 1; }
  got=$(cron auto-restore 600)
  expect_eq "$got" "failed|4|task: non-zero exit (4)" "auto-restore of the wiped cluster whose newest backup is damaged" || { mv "$damaged.orig" "$damaged"; return 1; }
  expect_eq "$(pg -c 'SHOW default_transaction_read_only')" on "write gate after the refused auto-restore" || { mv "$damaged.orig" "$damaged"; return 1; }
  runbook_run wiped-refused || { mv "$damaged.orig" "$damaged"; return 1; }
  grep -q "$(basename "$damaged").*checksum mismatch in chunk" "$(runbook_log wiped-refused)" \
    || { mv "$damaged.orig" "$damaged"; fail "runbook:wiped-refused does not name $(basename "$damaged") as damaged"; return 1; }
  runbook_run wiped-restore AT="$at" || { mv "$damaged.orig" "$damaged"; return 1; }
  mv "$damaged.orig" "$damaged"
  [ "$before" = "$(dumpall)" ] || { diff <(echo "$before") <(dumpall) | head -n 20 >&2; fail "pg_dumpall after runbook:wiped-restore differs from the one at $at"; return 1; }
  docker exec "$(postgres_cid)" psql -X -q -U app -d appdb -c "INSERT INTO items VALUES (3003, 'after the restore')" \
    || fail "the application role cannot write after runbook:wiped-restore" || return 1
}

# s3rver on this host, on the veth's address (private: both nodes reach it, nothing else does).
S3_PORT=19000
s3rver_up() {
  local dir=$E2E_STATE/s3
  [ -e node_modules/s3rver/bin/s3rver.js ] || { log "node_modules/s3rver is missing: run npm ci (make test does)"; return 1; }
  mkdir -p "$dir/data"
  setsid node node_modules/s3rver/bin/s3rver.js -d "$dir/data" -a "$E2E_SWARM_ADDR" -p "$S3_PORT" --configure-bucket pgsb-e2e \
    >"$dir/s3rver.log" 2>&1 </dev/null &
  echo $! >"$dir/pid"
  wait_until 30 "s3rver answering on $E2E_SWARM_ADDR:$S3_PORT" bash -c "(exec 3<>/dev/tcp/$E2E_SWARM_ADDR/$S3_PORT) 2>/dev/null" \
    || { tail -n 20 "$dir/s3rver.log" >&2; return 1; }
}
s3rver_down() {
  local pid
  pid=$(cat "$E2E_STATE/s3/pid" 2>/dev/null) || return 0
  kill "$pid" 2>/dev/null || true
  rm -f "$E2E_STATE/s3/pid"
}

# The old box mounted again in place of the new one (scenario s, also when it fails).
old_box_back() {
  if findmnt -n -o SOURCE "$E2E_MNT" | grep -q 'box2\]$'; then
    umount "$E2E_MNT"
    mount_box
  fi
}

scenario_s() {
  local full incr rows
  trap 'old_box_back; s3rver_down' EXIT
  s3rver_up || return 1
  # s3rver's own credentials, as the secrets stack/docker-compose.s3.yml names.
  printf 'S3RVER' | docker secret create s3_access_key_id - >/dev/null && echo "secret rm s3_access_key_id" >>"$E2E_STATE/created"
  printf 'S3RVER' | docker secret create s3_secret_access_key - >/dev/null && echo "secret rm s3_secret_access_key" >>"$E2E_STATE/created"
  export S3_BUCKET=pgsb-e2e S3_ENDPOINT=http://$E2E_SWARM_ADDR:$S3_PORT
  deploy || return 1
  docker service inspect -f '{{json .Spec.TaskTemplate.ContainerSpec.Env}}' "${STACK}_backup-full" | grep -q '"S3_BUCKET=pgsb-e2e"' \
    || fail "make deploy with S3_BUCKET did not give backup-full the mirror" || return 1
  touch_appdb || return 1
  expect_eq "$(cron backup-full)" "complete|0|" "a scheduled full, mirrored" || return 1
  full=$(backups_of full | tail -n 1)
  pg -d appdb -c "INSERT INTO items VALUES (5001, 'mirrored')" || return 1
  expect_eq "$(cron backup-incremental)" "complete|0|" "a scheduled incremental, mirrored" || return 1
  incr=$(backups_of incremental | tail -n 1)
  rows=$(pg -d appdb -c 'SELECT count(*) FROM items')
  # The box lost: an empty one mounted in its place (the old box's folder stays out of reach).
  unmount_box
  install -d -m 0755 "$E2E_STATE/box2"
  mount --bind "$E2E_STATE/box2" "$E2E_MNT"
  runbook_run box-lost || return 1
  if ! grep -q "$full" "$(runbook_log box-lost)" || ! grep -q "$incr" "$(runbook_log box-lost)"; then
    fail "runbook:box-lost: list --source s3 does not show $full and $incr"
    return 1
  fi
  runbook_run box-lost-restore FILE="$incr" DB=appdb || return 1
  expect_eq "$(pg -d appdb_from_s3 -c 'SELECT count(*) FROM items')" "$rows" "rows of appdb restored from the mirror" || return 1
  [ -s "$E2E_STATE/box2/backups/postgresql/incremental/$incr" ] || fail "$incr was not downloaded into the new box" || return 1
  pg -c 'DROP DATABASE appdb_from_s3' || return 1
  pitr_from_bucket || return 1
  # The old box back, the stack without the mirror.
  old_box_back
  unset S3_BUCKET S3_ENDPOINT
  deploy
}

# Point in time from the mirror (runbook:pitr-s3), on the new box of scenario s: wal-receive
# archives into it and uploads to the bucket, a base backup goes to both, two rows are committed
# around a time; then the box loses its physical tier and restore-pitr --source s3 recovers to that
# time from the bucket alone (signed and encrypted, as the e2e deploys).
completed_segments() { find "$1" -maxdepth 1 -regextype posix-extended -regex '.*/[0-9A-F]{24}\.gz\.age' -printf '%f\n' 2>/dev/null | sort; }
pitr_from_bucket() {
  local box=$E2E_STATE/box2/backups/postgresql bucket=$E2E_STATE/s3/data/pgsb-e2e at pg_uid
  timeout 180 docker service scale --detach=false "${STACK}_wal-receive=1" >/dev/null 2>&1 || fail "wal-receive did not start" || return 1
  wait_until 120 "wal-receive uploading the segment being received to the bucket" \
    sh -c "ls '$bucket/wal-partial' 2>/dev/null | grep -q '\.partial\.age\._S3rver_object$'" \
    || { docker service logs --tail 30 "${STACK}_wal-receive" >&2; return 1; }
  one_off base -- backup base >"$E2E_STATE/s-base.log" 2>&1 || { tail -n 20 "$E2E_STATE/s-base.log" >&2; fail "backup base with the mirror"; return 1; }
  grep -q 'uploaded' "$E2E_STATE/s-base.log" || log "backup base's output does not say it uploaded (see $E2E_STATE/s-base.log)"
  compgen -G "$bucket/base/*_base.tar.zst.age.json._S3rver_object" >/dev/null \
    || fail "no base backup manifest in the bucket after backup base: $(find "$bucket" -maxdepth 2 -printf '%P ' 2>/dev/null | cut -c1-400)" || return 1
  pg -c "CREATE TABLE s3_marks (id int PRIMARY KEY)" -c "INSERT INTO s3_marks VALUES (1)" || return 1
  sleep 2
  at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  sleep 2
  local before newest
  before=$(completed_segments "$box/wal" | wc -l)
  pg -c "INSERT INTO s3_marks VALUES (2)" -c "SELECT pg_switch_wal()" >/dev/null || return 1
  # The segment holding both rows, complete in the box and then in the bucket.
  wait_until 60 "the switched segment in the box" sh -c "[ \$(find '$box/wal' -maxdepth 1 -regextype posix-extended -regex '.*/[0-9A-F]{24}\.gz\.age' | wc -l) -gt $before ]" || return 1
  newest=$(completed_segments "$box/wal" | tail -n 1)
  wait_until 60 "$newest uploaded to the bucket" test -e "$bucket/wal/$newest._S3rver_object" \
    || { docker service logs --tail 30 "${STACK}_wal-receive" >&2; return 1; }
  timeout 180 docker service scale --detach=false "${STACK}_wal-receive=0" >/dev/null 2>&1 || true
  # The box loses its physical tier: only the bucket has it now.
  rm -rf "${box:?}/wal" "${box:?}/base"
  pg_uid=$(docker run --rm --network none --entrypoint sh "$REGISTRY/pg-swarm-backup-postgres:$VERSION" -c 'echo "$(id -u postgres):$(id -g postgres)"')
  runbook_run pitr-s3 AT="$at" PG_UID="$pg_uid" TASK_TIMEOUT_SECONDS=600 RECOVERY_TIMEOUT_SECONDS=300 || return 1
  wait_until 240 "postgres healthy after restore-pitr --source s3" postgres_healthy || return 1
  expect_eq "$(pg -c "SELECT string_agg(id::text, ',' ORDER BY id) FROM s3_marks")" 1 "rows of s3_marks after restore-pitr --source s3 to a time between them" || return 1
  [ ! -e "$box/base" ] && [ ! -e "$box/wal" ] || fail "restore-pitr --source s3 wrote into the box: $(ls "$box")" || return 1
  runbook_run pitr-done || return 1
  pg -c 'DROP TABLE s3_marks' || return 1
}

scenario_z() {
  local keys=$E2E_STATE/keys old new out rc=0 recipient
  old=$(backups_of full | tail -n 1)
  for what in "secret rm backup_signing_key_2" "secret rm backup_verify_key_2" "config rm age_recipients_2" "secret rm age_identity_2"; do
    echo "$what" >>"$E2E_STATE/created"
  done
  touch_appdb || return 1
  runbook_run rotate-keys KEYDIR="$keys" || return 1
  # What the operator keeps in the environment from now on.
  export BACKUP_SIGNING_KEY_SECRET=backup_signing_key_2 BACKUP_VERIFY_KEY_SECRET=backup_verify_key_2 AGE_RECIPIENTS_CONFIG=age_recipients_2 AGE_IDENTITY_SECRET=age_identity_2
  new=$(backups_of full | tail -n 1)
  [ "$new" != "$old" ] || fail "runbook:rotate-keys wrote no full" || return 1
  # Signed with the new key only, encrypted to the new recipient only (checked with stock tools).
  openssl pkeyutl -verify -pubin -inkey "$keys/backup_verify_key_2.pem" -rawin -in "$E2E_BACKUP_DIR/full/$new.sha256" \
    -sigfile "$E2E_BACKUP_DIR/full/$new.sha256.sig" >/dev/null || fail "$new.sha256.sig does not verify with the new public key" || return 1
  if openssl pkeyutl -verify -pubin -inkey "$keys/verify.pem" -rawin -in "$E2E_BACKUP_DIR/full/$new.sha256" -sigfile "$E2E_BACKUP_DIR/full/$new.sha256.sig" >/dev/null 2>&1; then
    fail "$new.sha256.sig verifies with the old public key" || return 1
  fi
  recipient=$(age-keygen -y "$keys/identity_2.txt")
  expect_eq "$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).encryption.recipients.join(","))' "$E2E_BACKUP_DIR/full/$new.json")" \
    "$recipient" "recipients of $new" || return 1
  # Into a file: grep -q ends early, and pipefail would count bunzip2's SIGPIPE.
  age -d -i "$keys/identity_2.txt" "$E2E_BACKUP_DIR/full/$new" | bunzip2 >"$E2E_STATE/z-new.sql" \
    && grep -q 'PostgreSQL database cluster dump complete' "$E2E_STATE/z-new.sql" \
    || fail "$new does not decrypt with identity_2.txt (age -d | bunzip2)" || return 1
  ! docker secret inspect backup_signing_key >/dev/null 2>&1 || fail "the old signing key's secret is still there" || return 1
  # The old full with the new public key: refused; with the old one, as the page says: restored.
  out=$(make --no-print-directory backup-restore ARGS="list-databases $old" 2>&1) || rc=$?
  [ "$rc" -ne 0 ] && grep -q 'exit code 4' <<<"$out" || fail "list-databases of $old (old key) with the new verify key: not refused with exit 4: $out" || return 1
  runbook_run rotate-old-restore FILE="$old" DB=appdb || return 1
  expect_eq "$(pg -d appdb_before_rotation -c 'SELECT count(*) > 0 FROM items')" t "rows of appdb_before_rotation" || return 1
  pg -c 'DROP DATABASE appdb_before_rotation' || return 1
}

