// What a restore needs to know about the cluster it restores into, one named query each.
import type { PgConfig } from "../config/config.js";
import type { ClusterGlobals } from "./globalsFilter.js";
import type { Logger } from "../core/log.js";
import type { Client } from "../postgres/connection.js";
import { withClient } from "../postgres/connection.js";
import type { TargetState } from "./target.js";
import { TEMP_MARK } from "./target.js";
import { isEmptyDatabase } from "../postgres/wipedCluster.js";

/** Each name's state; a database that refuses connections counts as not empty. */
export async function databaseStates(cfg: PgConfig, admin: Client, names: readonly string[], log: Logger): Promise<Map<string, TargetState>> {
  const r = await admin.query<{ datname: string; datallowconn: boolean }>(
    "SELECT datname, datallowconn FROM pg_database WHERE datname = ANY($1::text[])",
    [names],
  );
  const found = new Map(r.rows.map((row) => [row.datname, row.datallowconn]));
  const states = new Map<string, TargetState>();
  for (const name of names) {
    const allow = found.get(name);
    if (allow === undefined) states.set(name, "absent");
    else if (!allow) states.set(name, "nonEmpty");
    else states.set(name, (await withClient(cfg, name, isEmptyDatabase, log)) ? "empty" : "nonEmpty");
  }
  return states;
}

export async function clusterGlobals(admin: Client): Promise<ClusterGlobals> {
  const roles = await admin.query<{ rolname: string }>("SELECT rolname FROM pg_roles");
  const spaces = await admin.query<{ spcname: string }>("SELECT spcname FROM pg_tablespace");
  const me = await admin.query<{ u: string }>("SELECT current_user AS u");
  return {
    roles: new Set(roles.rows.map((row) => row.rolname)),
    tablespaces: new Set(spaces.rows.map((row) => row.spcname)),
    currentUser: me.rows[0]?.u ?? "",
  };
}

/** Temporary databases this tool created and has not renamed into place: those carrying TEMP_MARK. */
export async function markedTempDatabases(admin: Client): Promise<string[]> {
  const r = await admin.query<{ datname: string }>(
    `SELECT d.datname FROM pg_database d JOIN pg_db_role_setting s ON s.setdatabase = d.oid AND s.setrole = 0
     WHERE EXISTS (SELECT 1 FROM unnest(s.setconfig) c WHERE c LIKE $1) ORDER BY d.datname`,
    [`${TEMP_MARK}=%`],
  );
  return r.rows.map((row) => row.datname);
}
