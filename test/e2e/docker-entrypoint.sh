#!/bin/sh
# STAND-IN for the official postgres image's docker-entrypoint.sh, used only in the e2e's local
# Debian base (no registry here to pull postgres:16-alpine from). It reproduces only what the
# stack relies on, the way the official script does it:
#   - started as root: create PGDATA (0700) and the socket directory, then re-exec as postgres;
#   - POSTGRES_PASSWORD / POSTGRES_PASSWORD_FILE (one of them required on an empty volume);
#   - POSTGRES_USER (default postgres): the bootstrap superuser initdb creates;
#   - initdb of an empty PGDATA with POSTGRES_INITDB_ARGS, `host all all all $POSTGRES_HOST_AUTH_METHOD`
#     (default scram-sha-256) appended to pg_hba.conf;
#   - a temporary server on the local socket only (listen_addresses='', with the CMD's own
#     arguments, e.g. config_file);
#   - POSTGRES_DB (default: POSTGRES_USER): created with CREATE DATABASE unless it is "postgres",
#     an empty database in the new cluster, exactly as the official script's docker_setup_db;
#   - /docker-entrypoint-initdb.d/*, in name order: *.sh executed when executable, sourced
#     otherwise; *.sql, *.sql.gz and *.sql.zst through psql as POSTGRES_USER into POSTGRES_DB
#     (PGPASSWORD set); then a fast stop;
#   - exec of the CMD as postgres (STOPSIGNAL SIGINT is set on the image).
# Not reproduced: *.sql.xz, POSTGRES_INITDB_WALDIR.
set -eu

if [ "${1#-}" != "$1" ]; then
  set -- postgres "$@"
fi

if [ "$1" = postgres ] && [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 0700 "$PGDATA"
  chmod 3777 /var/run/postgresql
  # The official image uses gosu; coreutils' chroot onto / switches user the same way.
  exec chroot --userspec=postgres:postgres --skip-chdir / "$0" "$@"
fi

if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
    POSTGRES_PASSWORD=$(cat "$POSTGRES_PASSWORD_FILE")
  fi
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "stand-in entrypoint: the database is uninitialized and no POSTGRES_PASSWORD(_FILE) is set" >&2
    exit 1
  fi
  user=${POSTGRES_USER:-postgres}
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of words, as in the official script
  initdb --username="$user" --pwfile="$pwfile" --encoding=UTF8 --locale=C.UTF-8 ${POSTGRES_INITDB_ARGS:-} >/dev/null
  rm -f "$pwfile"
  printf '\nhost all all all %s\n' "${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}" >>"$PGDATA/pg_hba.conf"

  shift
  pg_ctl -D "$PGDATA" -o "$* -c listen_addresses='' -p 5432" -w start >/dev/null
  set -- postgres "$@"
  export PGPASSWORD="$POSTGRES_PASSWORD"
  db=${POSTGRES_DB:-$user}
  export POSTGRES_USER="$user" POSTGRES_DB="$db"
  sql() { psql -v ON_ERROR_STOP=1 --username "$user" --no-password --no-psqlrc --dbname "$db" "$@"; }
  if [ "$db" != postgres ]; then
    echo "stand-in entrypoint: CREATE DATABASE \"$db\" (POSTGRES_DB)"
    # From stdin, as the official script does: psql interpolates :"db" (quoted as an identifier) there.
    echo 'CREATE DATABASE :"db" ;' | psql -v ON_ERROR_STOP=1 --username "$user" --no-password --no-psqlrc --dbname postgres --set db="$db" >/dev/null
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case $f in
      *.sh)
        if [ -x "$f" ]; then
          echo "stand-in entrypoint: running $f"
          "$f"
        else
          echo "stand-in entrypoint: sourcing $f"
          # shellcheck disable=SC1090
          . "$f"
        fi
        ;;
      *.sql)
        echo "stand-in entrypoint: running $f"
        sql -f "$f"
        ;;
      *.sql.gz)
        echo "stand-in entrypoint: running $f"
        gunzip -c "$f" | sql
        ;;
      *.sql.zst)
        echo "stand-in entrypoint: running $f"
        zstd -dc "$f" | sql
        ;;
      *) [ -e "$f" ] && echo "stand-in entrypoint: ignoring $f" ;;
    esac
  done
  unset PGPASSWORD
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "stand-in entrypoint: PostgreSQL init process complete; ready for start up."
fi

exec "$@"
