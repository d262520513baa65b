// Change detection. The fingerprint is taken before a dump starts and stored in its
// manifest; the next run compares against it. It is built so that it sees every change
// and never moves on an idle cluster:
// - globals: a hash of the shared catalogs' contents (roles and passwords, memberships,
//   role settings, tablespaces, the database list and ACLs) — exact, no statistics lag.
// - per database: a hash of every table's insert/update/delete counters (catalogs included,
//   so DDL, GRANT, TRUNCATE's new relfilenode and large objects count), of every sequence's
//   position (nextval writes no table row), and of the database's stats reset time.
//   pg_statistic (and its TOAST table) is left out: autoanalyze rewrites it, even in an idle
//   template1 after CREATE DATABASE, and would fire again.
//   Shared catalogs are left out too: every database sees their counters, so a CREATE ROLE
//   would otherwise mark every database changed; the globals hash covers them exactly.
// - statsEpoch: pg_stat_archiver's reset time, which survives a clean restart but moves
//   when a crash discards the counters, so counters that fell back are never trusted.
// Counters are flushed by backends with a delay (up to ~1 s, longer when idle); because the
// fingerprint precedes the dump, a change not yet visible is caught by the next run.
import type { DatabaseFingerprint, Fingerprint } from "../store/manifest.js";
import type { Client } from "../postgres/connection.js";
import { USER_OBJECTS_EXPR } from "../postgres/wipedCluster.js";

export const GLOBALS_SQL = `
SELECT md5(concat_ws('|',
  (SELECT string_agg(row_to_json(a)::text, ';' ORDER BY a.oid) FROM pg_authid a),
  (SELECT string_agg(row_to_json(m)::text, ';' ORDER BY m.roleid, m.member, m.grantor) FROM pg_auth_members m),
  (SELECT string_agg(row_to_json(s)::text, ';' ORDER BY s.setdatabase, s.setrole) FROM pg_db_role_setting s),
  (SELECT string_agg(concat_ws(',', t.oid, t.spcname, t.spcowner, t.spcacl, t.spcoptions, pg_tablespace_location(t.oid)), ';' ORDER BY t.oid) FROM pg_tablespace t),
  (SELECT string_agg(concat_ws(',', d.oid, d.datname, d.datdba, d.encoding, d.datistemplate, d.datallowconn, d.datconnlimit, d.datacl), ';' ORDER BY d.oid) FROM pg_database d)
)) AS hash, (SELECT stats_reset::text FROM pg_stat_archiver) AS epoch`;

// The statistics functions directly over pg_class, not the pg_stat_all_tables view: the
// view computes a dozen more columns per table, and this runs once per database per run.
export const DATABASE_SQL = `
WITH excluded AS (
  SELECT x.oid FROM pg_class x WHERE x.oid IN ('pg_catalog.pg_statistic'::regclass, 'pg_catalog.pg_statistic_ext_data'::regclass)
  UNION SELECT x.reltoastrelid FROM pg_class x WHERE x.oid IN ('pg_catalog.pg_statistic'::regclass, 'pg_catalog.pg_statistic_ext_data'::regclass)
)
SELECT md5(concat_ws('|',
  (SELECT string_agg(concat_ws(',', c.oid, pg_stat_get_tuples_inserted(c.oid), pg_stat_get_tuples_updated(c.oid), pg_stat_get_tuples_deleted(c.oid)), ';' ORDER BY c.oid)
     FROM pg_class c
    WHERE c.relkind IN ('r', 't', 'm', 'p') AND NOT c.relisshared AND c.oid NOT IN (SELECT oid FROM excluded)),
  (SELECT string_agg(concat_ws(',', schemaname, sequencename, last_value), ';' ORDER BY schemaname, sequencename) FROM pg_sequences),
  (SELECT stats_reset::text FROM pg_stat_database WHERE datname = current_database())
)) AS hash, ${USER_OBJECTS_EXPR} AS user_objects`;

export async function globalsFingerprint(client: Client): Promise<{ globals: string; statsEpoch: string }> {
  const r = await client.query<{ hash: string; epoch: string | null }>(GLOBALS_SQL);
  const row = r.rows[0];
  return { globals: row?.hash ?? "", statsEpoch: row?.epoch ?? "" };
}

/** With the database's count of user objects (lib/postgres/wipedCluster.ts): the wipe check reads it, change detection does not. */
export async function databaseFingerprint(client: Client, oid: number): Promise<DatabaseFingerprint> {
  const r = await client.query<{ hash: string; user_objects: string }>(DATABASE_SQL);
  return { oid, hash: r.rows[0]?.hash ?? "", userObjects: Number(r.rows[0]?.user_objects ?? 0) };
}

export type ChangeReason = "new database" | "recreated (new oid)" | "written" | "statistics lost (crash restart or reset)" | "no reference" | "unchanged";

export interface ChangeReport {
  globalsChanged: boolean;
  /** Databases to dump, in the order of `current`, with why. */
  changed: { name: string; reason: ChangeReason }[];
  unchanged: string[];
  /** Databases in the reference that no longer exist (recorded by the new manifest's database list). */
  dropped: string[];
}

/** Pure: what changed between the reference backup's fingerprint and now. */
export function detectChanges(reference: Fingerprint | null, current: Fingerprint): ChangeReport {
  const names = Object.keys(current.databases);
  if (reference === null) {
    return { globalsChanged: true, changed: names.map((name) => ({ name, reason: "no reference" })), unchanged: [], dropped: [] };
  }
  const epochMoved = reference.statsEpoch !== current.statsEpoch;
  const changed: ChangeReport["changed"] = [];
  const unchanged: string[] = [];
  for (const name of names) {
    const now = current.databases[name] as DatabaseFingerprint;
    const then = reference.databases[name];
    let reason: ChangeReason = "unchanged";
    if (then === undefined) reason = "new database";
    else if (then.oid !== now.oid) reason = "recreated (new oid)";
    else if (epochMoved) reason = "statistics lost (crash restart or reset)";
    else if (then.hash !== now.hash) reason = "written";
    if (reason === "unchanged") unchanged.push(name);
    else changed.push({ name, reason });
  }
  const dropped = Object.keys(reference.databases).filter((n) => !(n in current.databases));
  return { globalsChanged: reference.globals !== current.globals, changed, unchanged, dropped };
}

/** Whether anything at all differs: a changed or dropped database, or changed globals. */
export function hasChanges(report: ChangeReport): boolean {
  return report.globalsChanged || report.changed.length > 0 || report.dropped.length > 0;
}
