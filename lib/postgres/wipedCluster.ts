// One definition of a wiped cluster, used by the backup guard (logical and base backups) and by
// auto-restore (issue 25). The official postgres image creates POSTGRES_DB (an empty database,
// often named after the application) at initdb, so "no user databases" is not what a fresh
// cluster looks like: a database counts as data only when it holds a user object. A cluster is
// wiped when none of its databases holds one, its system_identifier is not one any backup was
// taken from (a new data directory), and the newest backup had data: then there is something to
// lose, and it is a disaster, not a change.
import type { Logger } from "../core/log.js";
import type { PgConfig } from "../config/config.js";
import type { Client } from "./connection.js";
import { withClient } from "./connection.js";
import type { DatabaseInfo } from "./server.js";

/**
 * Objects a restore would collide with or overwrite, and whose loss is a loss: relations,
 * routines, types, schemas besides public, extensions besides plpgsql, large objects. A
 * database where this is 0 makes pg_dump print nothing to restore.
 */
export const USER_OBJECTS_EXPR = `
  (WITH user_ns AS (
    SELECT oid FROM pg_namespace
    WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname NOT LIKE 'pg\\_toast%' AND nspname NOT LIKE 'pg\\_temp%')
  SELECT (SELECT count(*) FROM pg_class WHERE relnamespace IN (SELECT oid FROM user_ns))
       + (SELECT count(*) FROM pg_proc WHERE pronamespace IN (SELECT oid FROM user_ns))
       + (SELECT count(*) FROM pg_type WHERE typnamespace IN (SELECT oid FROM user_ns))
       + (SELECT count(*) FROM pg_namespace WHERE oid IN (SELECT oid FROM user_ns) AND nspname <> 'public')
       + (SELECT count(*) FROM pg_extension WHERE extname <> 'plpgsql')
       + (SELECT count(*) FROM pg_largeobject_metadata))`;

export async function userObjectCount(client: Client): Promise<number> {
  const r = await client.query<{ n: string }>(`SELECT ${USER_OBJECTS_EXPR} AS n`);
  return Number(r.rows[0]?.n ?? 0);
}

export async function isEmptyDatabase(client: Client): Promise<boolean> {
  return (await userObjectCount(client)) === 0;
}

/**
 * The databases of `dbs` (template1 and postgres included) that hold a user object, leaving out
 * `skip`; one connection each, and no more once `limit` are found (1: is the cluster live?).
 */
export async function databasesWithObjects(cfg: PgConfig, dbs: readonly DatabaseInfo[], skip: ReadonlySet<string>, log?: Logger, limit = Infinity): Promise<string[]> {
  const out: string[] = [];
  for (const d of dbs) {
    if (out.length >= limit) break;
    if (!skip.has(d.name) && !(await withClient(cfg, d.name, isEmptyDatabase, log))) out.push(d.name);
  }
  return out;
}

/** What a backup's manifest tells about the cluster it was taken from. */
export interface BackupFacts {
  name: string;
  systemIdentifier: string | null;
  /** Whether the cluster held a user object when the backup was taken (see backupHadData). */
  hadData: boolean;
}

/**
 * Whether the cluster a manifest describes held data. Manifests record it per database
 * (fingerprint.databases[db].userObjects); older ones are judged by their row counts (a table
 * listed), and an encrypted one without the record (its row counts sealed), or a base backup,
 * counts as data: refusing a fresh cluster then is the safe side. Pure.
 */
export function backupHadData(m: {
  fingerprint?: { databases?: Record<string, { userObjects?: number }> };
  rowCounts?: Record<string, Record<string, number>>;
  encryption?: unknown;
}): boolean {
  const recorded = Object.values(m.fingerprint?.databases ?? {}).map((d) => d.userObjects);
  if (recorded.length > 0 && recorded.every((n) => typeof n === "number")) return recorded.some((n) => (n ?? 0) > 0);
  if (m.rowCounts === undefined || m.encryption !== undefined) return true;
  return Object.values(m.rowCounts).some((tables) => Object.keys(tables).length > 0);
}

export type ClusterVerdict =
  /** A database holds a user object. */
  | { kind: "live"; database: string }
  /** No data, but a backup was taken from this very data directory (its data was dropped on purpose). */
  | { kind: "known"; backup: string }
  /** No data, and no backup that had any: a new installation. */
  | { kind: "new"; reason: string }
  /** No data, a new data directory, and the newest backup had data: a wiped volume. */
  | { kind: "wiped"; newest: BackupFacts };

/**
 * The one definition (pure). `backups`: every usable backup, newest first or in any order
 * (the newest by `newest`); `databasesWithObjects` as databasesWithObjects() found them.
 */
export function judgeCluster(cluster: { systemIdentifier: string; databasesWithObjects: readonly string[] }, backups: readonly BackupFacts[], newest: BackupFacts | undefined): ClusterVerdict {
  const live = cluster.databasesWithObjects[0];
  if (live !== undefined) return { kind: "live", database: live };
  const own = backups.find((b) => b.systemIdentifier === cluster.systemIdentifier);
  if (own !== undefined) return { kind: "known", backup: own.name };
  if (newest === undefined) return { kind: "new", reason: "there are no backups" };
  if (!newest.hadData) return { kind: "new", reason: `the newest backup ${newest.name} holds no user object either` };
  return { kind: "wiped", newest };
}

/** The backup guard's refusal (exit 4) for a wiped cluster, or null. */
export function wipedClusterRefusal(verdict: ClusterVerdict, cluster: { systemIdentifier: string; allowNewCluster: boolean }): string | null {
  if (verdict.kind !== "wiped" || cluster.allowNewCluster) return null;
  return (
    `this cluster (system_identifier ${cluster.systemIdentifier}) is freshly initialised: none of its databases holds a table, view, function, type, schema, extension or large object ` +
    `(an empty database such as the postgres image's POSTGRES_DB does not count), ` +
    `but the newest backup ${verdict.newest.name} is of another cluster (${verdict.newest.systemIdentifier ?? "unknown"}) that had data: that looks like a wiped data volume, not a change. ` +
    "Run `pg-swarm-backup auto-restore` to restore it, or pass --allow-new-cluster to start a new backup chain deliberately"
  );
}
