// The Ed25519 keys that sign and check backups (BACKUP_SIGNING_KEY_FILE, BACKUP_VERIFY_KEY_FILE),
// read at start like the other secret files, so a wrong key fails with exit 2 before any work.
import { createPrivateKey, createPublicKey } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { ConfigError, errnoCode } from "../core/errors.js";

export interface SigningConfig {
  /** Signs each new backup's .sha256 file; only the backup services hold it. */
  key: KeyObject | null;
  keyFile: string | null;
  /** When set, nothing is restored, listed or counted as valid without a matching signature. */
  verifyKey: KeyObject | null;
  verifyKeyFile: string | null;
}

type Env = Readonly<Record<string, string | undefined>>;

const MAKE_KEYS = "make a pair with `openssl genpkey -algorithm ed25519 -out sign.pem` and `openssl pkey -in sign.pem -pubout -out verify.pem`";
const PRIVATE_PEM = /-----BEGIN (?:ENCRYPTED )?PRIVATE KEY-----/;

function readPem(name: string, path: string, fix: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError(`${name}=${path} is not readable (${errnoCode(err) ?? "error"}); ${fix}`, { cause: err });
  }
}

function requireEd25519(name: string, path: string, key: KeyObject, what: string): KeyObject {
  if (key.asymmetricKeyType !== "ed25519") {
    throw new ConfigError(`${name}=${path} holds ${what} of type ${key.asymmetricKeyType ?? "unknown"}, not an Ed25519 key; ${MAKE_KEYS}`);
  }
  return key;
}

function signingKey(path: string): KeyObject {
  const name = "BACKUP_SIGNING_KEY_FILE";
  const pem = readPem(name, path, "mount the backup_signing_key secret or unset the variable");
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    const why = /ENCRYPTED PRIVATE KEY/.test(pem) ? "is passphrase-protected; store it unencrypted (the Docker secret protects it)" : "is not a PEM private key";
    throw new ConfigError(`${name}=${path} ${why}; ${MAKE_KEYS}`, { cause: err });
  }
  return requireEd25519(name, path, key, "a private key");
}

function verifyKey(path: string): KeyObject {
  const name = "BACKUP_VERIFY_KEY_FILE";
  const pem = readPem(name, path, "mount the backup_verify_key secret or unset the variable");
  // The public key could be derived from a private one, but a private key here would let every
  // verifying service (restore, verify, cleanup) sign forged backups: refused, not tolerated.
  if (PRIVATE_PEM.test(pem)) {
    throw new ConfigError(`${name}=${path} holds a private key; give the verifying services only the public key: \`openssl pkey -in sign.pem -pubout -out verify.pem\``);
  }
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (err) {
    throw new ConfigError(`${name}=${path} is not a PEM public key; ${MAKE_KEYS}`, { cause: err });
  }
  return requireEd25519(name, path, key, "a public key");
}

function fileVar(env: Env, name: string): string | null {
  const v = env[name];
  return v === undefined || v === "" ? null : v;
}

export function signingConfig(env: Env): SigningConfig {
  const keyFile = fileVar(env, "BACKUP_SIGNING_KEY_FILE");
  const verifyKeyFile = fileVar(env, "BACKUP_VERIFY_KEY_FILE");
  const key = keyFile === null ? null : signingKey(keyFile);
  const verify = verifyKeyFile === null ? null : verifyKey(verifyKeyFile);
  if (key !== null && verify !== null && !createPublicKey(key).equals(verify)) {
    throw new ConfigError(
      `BACKUP_SIGNING_KEY_FILE=${keyFile} and BACKUP_VERIFY_KEY_FILE=${verifyKeyFile} are not a pair: backups signed with this key would be refused; derive the public key again with \`openssl pkey -in sign.pem -pubout -out verify.pem\``,
    );
  }
  return Object.freeze({ key, keyFile, verifyKey: verify, verifyKeyFile });
}
