// Facts about the PostgreSQL cluster a task talks to, one small named query each.
import type { Client } from "./connection.js";

export interface DatabaseInfo {
  name: string;
  oid: number;
}

export interface ServerInfo {
  systemIdentifier: string;
  version: string;
  versionNum: number;
}

/** Databases pg_dumpall would dump, in its order (template1 first, then by name); template0 and invalid ones excluded. */
const DATABASES_SQL = `
  SELECT datname, oid::int8 AS oid FROM pg_database
  WHERE datallowconn AND datconnlimit <> -2
  ORDER BY (datname <> 'template1'), datname`;

export async function listDatabases(client: Client): Promise<DatabaseInfo[]> {
  const r = await client.query<{ datname: string; oid: string }>(DATABASES_SQL);
  return r.rows.map((row) => ({ name: row.datname, oid: Number(row.oid) }));
}

export async function serverInfo(client: Client): Promise<ServerInfo> {
  const r = await client.query<{ sysid: string; version: string; num: string }>(
    "SELECT system_identifier::text AS sysid, current_setting('server_version') AS version, current_setting('server_version_num') AS num FROM pg_control_system()",
  );
  const row = r.rows[0];
  if (row === undefined) throw new Error("pg_control_system() returned no row");
  return { systemIdentifier: row.sysid, version: row.version, versionNum: Number(row.num) };
}
