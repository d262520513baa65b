// Which of this task's secrets a scratch cluster could read. `verify --restore` runs the
// backup's SQL as a superuser in a server it starts inside this task, and a superuser's
// `COPY … TO PROGRAM` runs any command as the server's OS user. Unsigned SQL was chosen by
// whoever can write BACKUP_DIR, so it never runs where a secret can be read: the age identity,
// the signing key, the database password, S3 keys, or any other Docker secret. A server that
// runs as this task's own user reads all of them (files, and /proc/<pid>/environ for the ones
// in the environment); one that runs as another OS user (a root-run task starts it as
// `postgres`) reads only files whose mode lets it.
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";

/** A secret of this task: a file, or a value in the environment. */
export interface SecretRef {
  /** The setting, for the message: "AGE_IDENTITY_FILE=/run/secrets/age_identity", "PGPASSWORD". */
  setting: string;
  /** null: the value is in the environment. */
  file: { uid: number; gid: number; mode: number } | null;
}

export interface OsUser {
  uid: number;
  gid: number;
}

/** Whether `user` can read the secret, from its owner, group and mode (root reads everything). */
export function canRead(secret: SecretRef, user: OsUser, self: OsUser): boolean {
  if (user.uid === 0 || user.uid === self.uid) return true;
  const f = secret.file;
  if (f === null) return false;
  if (f.uid === user.uid) return (f.mode & 0o400) !== 0;
  if (f.gid === user.gid) return (f.mode & 0o040) !== 0;
  return (f.mode & 0o004) !== 0;
}

/** Variables holding a secret's path; AGE_RECIPIENTS_FILE and BACKUP_VERIFY_KEY_FILE hold public keys. */
const SECRET_FILES = ["AGE_IDENTITY_FILE", "BACKUP_SIGNING_KEY_FILE", "POSTGRES_PASSWORD_FILE", "PGPASSFILE", "AWS_ACCESS_KEY_ID_FILE", "AWS_SECRET_ACCESS_KEY_FILE", "AWS_SHARED_CREDENTIALS_FILE"];
/** Any other variable ending in _URL_FILE holds a URL with a token (the notification settings). */
const URL_FILE = /_URL_FILE$/;
const SECRET_VALUES = ["PGPASSWORD", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"];
const URL_VALUE = /^(HEALTHCHECK|WEBHOOK)_URL$|_URL$/;
const DOCKER_SECRETS = "/run/secrets";

async function fileRef(setting: string, path: string): Promise<SecretRef | null> {
  const s = await stat(path).catch(() => null);
  return s === null || !s.isFile() ? null : { setting, file: { uid: s.uid, gid: s.gid, mode: s.mode } };
}

/** Every secret this task holds: the variables above, and every Docker secret mounted in /run/secrets. */
export async function taskSecrets(env: NodeJS.ProcessEnv, secretsDir = DOCKER_SECRETS): Promise<SecretRef[]> {
  const out: SecretRef[] = [];
  const seen = new Set<string>();
  const add = async (setting: string, path: string) => {
    if (seen.has(path)) return;
    seen.add(path);
    const ref = await fileRef(setting, path);
    if (ref !== null) out.push(ref);
  };
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || value === "") continue;
    if (SECRET_FILES.includes(name) || URL_FILE.test(name)) await add(`${name}=${value}`, value);
    else if (SECRET_VALUES.includes(name) || (URL_VALUE.test(name) && /^https?:/.test(value))) out.push({ setting: name, file: null });
  }
  for (const name of await readdir(secretsDir).catch(() => [] as string[])) await add(`the Docker secret ${join(secretsDir, name)}`, join(secretsDir, name));
  return out;
}

/** The settings of the secrets a server running as `server` could read; empty when it could read none. */
export function exposedTo(secrets: readonly SecretRef[], server: OsUser, self: OsUser): string[] {
  return secrets.filter((s) => canRead(s, server, self)).map((s) => s.setting);
}
