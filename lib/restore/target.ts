// Pure: how one database is restored into the cluster, given what exists there now.
// A database is built under a temporary name and renamed into place when complete, so a
// failed or interrupted restore never leaves a half-restored database under the real name.
// template1 and postgres exist in every cluster; a fresh cluster's copies are empty and are
// restored into directly, as pg_dumpall does.
import { randomBytes } from "node:crypto";
import { isPreexisting } from "../backup/dump.js";

export type TargetState = "absent" | "empty" | "nonEmpty";

export type TargetAction =
  | { action: "refuse"; reason: string }
  | { action: "inPlace" }
  | {
      action: "swap";
      /** The section has no CREATE DATABASE (a template1/postgres section): the temporary database is created first. */
      createTemp: boolean;
      /** The target is the database the cluster lock lives in: replaced after everything else, since dropping it ends the lock's session. */
      last: boolean;
    };

const TEMP_PREFIX = "pgsb_restore_";
/** Prefixes of the databases this tool creates for itself (restore's temporary, verify's scratch ones); never a user's name. */
const RESERVED_PREFIXES = [TEMP_PREFIX, "pgsb_verify_"];
/** PostgreSQL keeps NAMEDATALEN - 1 bytes of a name and silently cuts the rest. */
export const MAX_NAME_BYTES = 63;

/**
 * The database setting that marks a temporary database as this tool's own: set as soon as the
 * database exists, removed just before it is renamed into place. Only marked databases are
 * ever dropped as leftovers; a user's database that merely has the prefix is never touched.
 */
export const TEMP_MARK = "pgsb.temporary_restore";

/** The statement that marks `temp` (a plain word, see tempName). */
export function markStatement(temp: string): string {
  return `ALTER DATABASE ${temp} SET ${TEMP_MARK} = 'on';`;
}

/** "pgsb_restore_<name as a plain word>_<random>": ASCII, under 63 bytes, recognisable in pg_database after a crash. */
export function tempName(target: string, random: string = randomBytes(4).toString("hex")): string {
  const word = target.toLowerCase().replace(/[^a-z0-9]+/g, "_").replace(/^_|_$/g, "").slice(0, 36);
  return `${TEMP_PREFIX}${word === "" ? "db" : word}_${random}`;
}

export function isTempName(name: string): boolean {
  return name.startsWith(TEMP_PREFIX);
}

/** Why `name` cannot be a restore target chosen by the user (--as), or null. */
export function targetNameProblem(name: string): string | null {
  const bytes = Buffer.byteLength(name, "utf8");
  if (bytes > MAX_NAME_BYTES) return `it is ${bytes} bytes long; PostgreSQL keeps only ${MAX_NAME_BYTES} and would cut it silently`;
  const reserved = RESERVED_PREFIXES.find((prefix) => name.startsWith(prefix));
  if (reserved !== undefined) return `names starting with ${reserved} are reserved for the databases pg-swarm-backup creates for itself`;
  return null;
}

/** Whether a database in `state` may be dropped to make room for the restored one. */
export function mayReplace(state: TargetState, dropExisting: boolean): boolean {
  return state !== "nonEmpty" || dropExisting;
}

export function refusal(target: string): string {
  return `database ${JSON.stringify(target)} exists and is not empty; pass --drop-existing to replace it (nothing was changed)`;
}

export function decideTarget(input: { source: string; target: string; state: TargetState; dropExisting: boolean; lockDatabase: string }): TargetAction {
  const { source, target, state } = input;
  if (target === "template0") return { action: "refuse", reason: "template0 is never restored into" };
  if (!mayReplace(state, input.dropExisting)) return { action: "refuse", reason: refusal(target) };
  const sectionCreates = !isPreexisting(source);
  if (state === "empty" && isPreexisting(target) && !sectionCreates) return { action: "inPlace" };
  return { action: "swap", createTemp: !sectionCreates, last: target === input.lockDatabase && state !== "absent" };
}
