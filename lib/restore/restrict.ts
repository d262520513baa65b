// psql's restricted mode as the restore's safety boundary. `\restrict KEY` (psql 13.22, 14.19,
// 15.14, 16.10, 17.6 and every later release) makes psql refuse every meta-command but
// `\unrestrict KEY`; each psql a restore starts gets a fresh random key that is never logged,
// written down or put in argv (it goes in on stdin), so no byte of a backup can lift it.
// An older psql cannot restrict itself: it may run content the verify key vouches for, never
// anything else.
import { randomBytes } from "node:crypto";
import { ConfigError } from "../core/errors.js";
import { runCommand } from "../core/proc.js";

/** The first minor release of each major that knows \restrict; every major after the last listed has it. */
const RESTRICT_SINCE: Readonly<Record<number, number>> = { 13: 22, 14: 19, 15: 14, 16: 10, 17: 6 };
const LAST_LISTED = 17;

export interface PsqlVersion {
  /** As psql printed it, e.g. "15.18". */
  text: string;
  major: number;
  minor: number;
}

/** "psql (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)" → 15.18; a development build ("18devel", "18beta1") counts as minor 0. */
export function parsePsqlVersion(output: string): PsqlVersion | null {
  const m = /\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?/.exec(output);
  if (m === null) return null;
  const major = Number(m[1]);
  const minor = m[2] === undefined ? 0 : Number(m[2]);
  return { text: m[2] === undefined ? `${major}` : `${major}.${minor}`, major, minor };
}

export function canRestrict(v: PsqlVersion): boolean {
  if (v.major > LAST_LISTED) return true;
  const since = RESTRICT_SINCE[v.major];
  return since !== undefined && v.minor >= since;
}

/** A key psql accepts (letters and digits), 256 bits, for one psql process. */
export function restrictKey(): string {
  return randomBytes(32).toString("hex");
}

const probed = new Map<string, Promise<PsqlVersion | null>>();

/** The version of the psql on `env`'s PATH, asked once per PATH. */
export function psqlVersion(env: NodeJS.ProcessEnv): Promise<PsqlVersion | null> {
  const path = env.PATH ?? "";
  let found = probed.get(path);
  if (found === undefined) {
    found = runCommand("psql", ["--version"], { env: { PATH: path } }).then(parsePsqlVersion, () => null);
    probed.set(path, found);
  }
  return found;
}

/**
 * How the restore's psql processes run: restricted when psql can, else unrestricted only for
 * signed content (the verify key vouches for every byte, chunk by chunk). Throws the
 * ConfigError (exit 2) for unsigned content and a psql that cannot restrict itself.
 */
export async function restrictMode(env: NodeJS.ProcessEnv, signed: boolean): Promise<{ restricted: boolean; version: string }> {
  const v = await psqlVersion(env);
  if (v !== null && canRestrict(v)) return { restricted: true, version: v.text };
  if (signed) return { restricted: false, version: v?.text ?? "unknown" };
  const which = v === null ? "the psql on PATH did not report its version" : `psql ${v.text} cannot restrict itself`;
  throw new ConfigError(
    `${which} (\\restrict needs psql 13.22, 14.19, 15.14, 16.10, 17.6 or later), so it is not given unsigned backup content, whose meta-commands it would run; ` +
      "install a current PostgreSQL client (the task image's postgresql-client), or sign backups (BACKUP_SIGNING_KEY_FILE) and restore with BACKUP_VERIFY_KEY_FILE",
  );
}
