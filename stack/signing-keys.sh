#!/usr/bin/env bash
# Signed out of the box (issue 24): run by `make deploy` before the stack is deployed signed.
# When neither Swarm secret exists, it makes an Ed25519 pair on this manager, creates the two
# secrets (backup_signing_key: the private key, for the backup services and wal-receive only;
# backup_verify_key: the public key, for everything that reads backups back), writes the private
# key to SIGNING_KEY_OUT for its offline copy and says where that copy must go. When both exist
# it does nothing. When only one exists it refuses: a half-made pair cannot sign and verify.
#
#   stack/signing-keys.sh
# Environment (defaults in brackets):
#   SIGNING_KEY_OUT   where the private key's one copy outside the swarm is written [./backup_signing_key.pem]
#   VERIFY_KEY_OUT    where the public key is written, to keep beside the backups' records [./backup_verify_key.pem]
#   BACKUP_SIGNING_KEY_SECRET, BACKUP_VERIFY_KEY_SECRET  the secrets' names, as stack/docker-compose.signing.yml
#                     reads them (new names after a rotation) [backup_signing_key, backup_verify_key]
# Exit codes: 0 ready (made or found); 2 a half pair, or SIGNING_KEY_OUT exists; 1 openssl or docker failed.
set -euo pipefail

private_out=${SIGNING_KEY_OUT:-./backup_signing_key.pem}
public_out=${VERIFY_KEY_OUT:-./backup_verify_key.pem}
signing_secret=${BACKUP_SIGNING_KEY_SECRET:-backup_signing_key}
verify_secret=${BACKUP_VERIFY_KEY_SECRET:-backup_verify_key}

has_secret() { docker secret inspect "$1" >/dev/null 2>&1; }

signing=false
verify=false
has_secret "$signing_secret" && signing=true
has_secret "$verify_secret" && verify=true
if $signing && $verify; then
  echo "signing: the secrets $signing_secret and $verify_secret exist; deploying signed" >&2
  exit 0
fi
if $signing || $verify; then
  echo "signing: only one of the secrets $signing_secret and $verify_secret exists; a pair needs both." >&2
  echo "  Create the missing one from your offline copy (docker secret create …, docs/security.md \"Signing\"), or remove the other and deploy again to make a new pair." >&2
  exit 2
fi
for f in "$private_out" "$public_out"; do
  if [ -e "$f" ]; then
    echo "signing: $f exists; not overwriting it. Move it away (it may be the offline copy of an earlier key) or set SIGNING_KEY_OUT/VERIFY_KEY_OUT" >&2
    exit 2
  fi
done

command -v openssl >/dev/null || { echo "signing: openssl (3.0 or newer) is needed to make the key pair on this manager" >&2; exit 1; }
umask 077
openssl genpkey -algorithm ed25519 -out "$private_out"
openssl pkey -in "$private_out" -pubout -out "$public_out"
chmod 0600 "$private_out"
chmod 0644 "$public_out"
docker secret create "$signing_secret" "$private_out" >/dev/null
docker secret create "$verify_secret" "$public_out" >/dev/null

cat >&2 <<EOF
signing: made an Ed25519 key pair and the Swarm secrets $signing_secret (private) and
  $verify_secret (public); from now on every backup is signed and every restore checks it.

  The private key's only copy outside the swarm is $(realpath "$private_out") (mode 0600).
  Put it offline NOW, where the backups are not: a password manager or an offline vault.
  Then delete it from this host:   shred -u $(realpath "$private_out")
  Without that copy, a lost swarm means a new key (older backups still verify with the public key).

  The public key is $(realpath "$public_out"): keep a copy with your runbook; it checks backups
  with stock tools (docs/security.md "Signing").
EOF
