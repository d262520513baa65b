#!/bin/sh
# STAND-IN for the official postgres image's docker-entrypoint.sh, used only in the e2e's local
# Debian base (no registry here to pull postgres:16-alpine from). It reproduces only what the
# stack relies on, the way the official script does it:
#   - started as root: create PGDATA (0700) and the socket directory, then re-exec as postgres;
#   - POSTGRES_PASSWORD / POSTGRES_PASSWORD_FILE (one of them required on an empty volume);
#   - initdb of an empty PGDATA with POSTGRES_INITDB_ARGS, `host all all all scram-sha-256`
#     appended to pg_hba.conf;
#   - a temporary server on the local socket only (listen_addresses='', with the CMD's own
#     arguments, e.g. config_file), running /docker-entrypoint-initdb.d/*: *.sh executed when
#     executable, sourced otherwise; *.sql through psql; then a fast stop;
#   - exec of the CMD as postgres (STOPSIGNAL SIGINT is set on the image).
# Not reproduced: POSTGRES_DB/POSTGRES_USER other than postgres, *.sql.gz/xz/zst, POSTGRES_HOST_AUTH_METHOD.
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
  printf '\nhost all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"

  shift
  pg_ctl -D "$PGDATA" -o "$* -c listen_addresses='' -p 5432" -w start >/dev/null
  set -- postgres "$@"
  export PGPASSWORD="$POSTGRES_PASSWORD"
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
        psql -v ON_ERROR_STOP=1 --username "$user" --no-password --no-psqlrc --dbname postgres -f "$f"
        ;;
      *) [ -e "$f" ] && echo "stand-in entrypoint: ignoring $f" ;;
    esac
  done
  unset PGPASSWORD
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "stand-in entrypoint: PostgreSQL init process complete; ready for start up."
fi

exec "$@"
