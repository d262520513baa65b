// Pure: the globals (roles, memberships, tablespaces) of a backup, adjusted to the cluster
// they are applied to, so psql can run them with ON_ERROR_STOP and every remaining error
// is a real one:
// - CREATE ROLE / CREATE TABLESPACE of a name that exists is left out (pg_dumpall | psql
//   would print "already exists" and go on; the ALTER ROLE that follows still applies the
//   backup's attributes, as pg_dumpall intends);
// - the role the task connects as keeps its current password: the backup may hold an old
//   one, and restoring it would lock the tasks out after a secret rotation;
// - "missingRoles" (restore-database into a live cluster) applies only what concerns roles
//   the cluster lacks: their creation, attributes, settings, comments and memberships.
//   Existing roles and tablespaces are not touched.
// Left-out statements are replaced by their newlines only, so psql's line numbers are
// still the file's line numbers.
import { IDENT, identName } from "../sql/ident.js";
import { splitStatements } from "../sql/scanner.js";

export type GlobalsMode = "all" | "missingRoles";

export interface ClusterGlobals {
  roles: ReadonlySet<string>;
  tablespaces: ReadonlySet<string>;
  /** The role the task is connected as. */
  currentUser: string;
}

export interface FilteredGlobals {
  sql: Buffer;
  /** Roles the SQL creates. */
  created: string[];
  /** Roles and tablespaces of the backup that exist already. */
  existing: string[];
}

const rx = (src: string) => new RegExp(`^${src}`, "i");
const CREATE_ROLE = rx(String.raw`CREATE\s+ROLE\s+(${IDENT})`);
const ABOUT_ROLE = rx(String.raw`(?:ALTER\s+ROLE|COMMENT\s+ON\s+ROLE|SECURITY\s+LABEL\s+(?:FOR\s+${IDENT}\s+)?ON\s+ROLE)\s+(${IDENT})`);
const MEMBERSHIP = rx(String.raw`GRANT\s+(${IDENT})\s+TO\s+(${IDENT})`);
const CREATE_TABLESPACE = rx(String.raw`CREATE\s+TABLESPACE\s+(${IDENT})`);
const SESSION_SETUP = rx(String.raw`SET\s`);
const PASSWORD = /\s+PASSWORD\s+'(?:[^']|'')*'/i;

type Verdict = "keep" | "drop" | "dropPassword";

function judge(stmt: string, mode: GlobalsMode, cluster: ClusterGlobals, out: FilteredGlobals): Verdict {
  const missing = (name: string) => !cluster.roles.has(name);
  let m = CREATE_ROLE.exec(stmt);
  if (m !== null) {
    const role = identName(m[1] as string);
    if (!missing(role)) {
      out.existing.push(role);
      return "drop";
    }
    out.created.push(role);
    return "keep";
  }
  if ((m = ABOUT_ROLE.exec(stmt)) !== null) {
    const role = identName(m[1] as string);
    if (mode === "missingRoles") return missing(role) ? "keep" : "drop";
    return role === cluster.currentUser && /^ALTER/i.test(stmt) ? "dropPassword" : "keep";
  }
  if ((m = MEMBERSHIP.exec(stmt)) !== null) {
    if (mode === "all") return "keep";
    return missing(identName(m[1] as string)) || missing(identName(m[2] as string)) ? "keep" : "drop";
  }
  if ((m = CREATE_TABLESPACE.exec(stmt)) !== null) {
    const name = identName(m[1] as string);
    if (cluster.tablespaces.has(name)) out.existing.push(`tablespace ${name}`);
    return mode === "all" && !cluster.tablespaces.has(name) ? "keep" : "drop";
  }
  return mode === "all" || SESSION_SETUP.test(stmt) ? "keep" : "drop";
}

export function filterGlobals(globals: Buffer, mode: GlobalsMode, cluster: ClusterGlobals): FilteredGlobals {
  const text = globals.toString("latin1");
  const out: FilteredGlobals = { sql: globals, created: [], existing: [] };
  const parts: string[] = [];
  let pos = 0;
  for (const { start, end } of splitStatements(globals)) {
    const stmt = text.slice(start, end);
    const verdict = judge(stmt, mode, cluster, out);
    if (verdict === "keep") continue;
    parts.push(text.slice(pos, start), verdict === "drop" ? stmt.replace(/[^\n]/g, "") : stmt.replace(PASSWORD, ""));
    pos = end;
  }
  parts.push(text.slice(pos));
  out.sql = Buffer.from(parts.join(""), "latin1");
  return out;
}
