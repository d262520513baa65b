// What pg_basebackup is asked and what it says: its arguments, the WAL range it reports on
// stderr with -v ("write-ahead log start point: 0/2000028 on timeline 1", "… end point:
// 0/2000100"), the WAL-Ranges at the end of the backup_manifest in its tar (which a restore
// compares with the range recorded), and its failures as TaskErrors naming the server setting
// to fix. The bytes themselves go from pg_basebackup to the compressor through an OS pipe
// (lib/base/baseWriter.ts), not through this process.
import type { PgConfig } from "../config/config.js";
import { ExitCode, TaskError } from "../core/errors.js";
import { ProcessError } from "../core/proc.js";
import { KEEPALIVE_CONNINFO } from "../postgres/connection.js";
import { parseLsn } from "../physical/layout.js";

export const BACKUP_MANIFEST_MEMBER = "backup_manifest";
/** The WAL-Ranges and Manifest-Checksum close the backup_manifest; a few KB hold them, even for many timelines. */
export const MANIFEST_TAIL_BYTES = 64 * 1024;

export interface WalRange {
  timeline: number;
  startLsn: string;
  stopLsn: string;
}

export function pgBasebackupArgs(checkpoint: "fast" | "spread"): string[] {
  // Dead-peer detection (keepalives, tcp_user_timeout); the rest of the connection comes from the environment.
  return ["-D", "-", "-Ft", "-X", "fetch", "-v", `--checkpoint=${checkpoint}`, "--no-sync", `--dbname=${KEEPALIVE_CONNINFO}`];
}

const START_RE = /write-ahead log start point: ([0-9A-Fa-f]+\/[0-9A-Fa-f]+) on timeline (\d+)/;
const END_RE = /write-ahead log end point: ([0-9A-Fa-f]+\/[0-9A-Fa-f]+)/;

/**
 * The WAL range from pg_basebackup -v's stderr lines (run with LC_ALL=C, so the messages are
 * untranslated), or null when either line is missing: the start point and its timeline, and the
 * end point (after a promotion during the backup, on a later timeline; restore follows it).
 */
export function reportedWalRange(lines: readonly string[]): WalRange | null {
  let start: RegExpExecArray | null = null;
  let end: RegExpExecArray | null = null;
  for (const line of lines) {
    start ??= START_RE.exec(line);
    end = END_RE.exec(line) ?? end;
  }
  if (start === null || end === null) return null;
  const [, startLsn, timeline] = start as unknown as [string, string, string];
  const stopLsn = end[1] as string;
  const a = parseLsn(startLsn);
  const b = parseLsn(stopLsn);
  if (a === null || b === null || b < a || Number(timeline) < 1) return null;
  return { timeline: Number(timeline), startLsn: startLsn.toUpperCase(), stopLsn: stopLsn.toUpperCase() };
}

const RANGE_RE = /\{\s*"Timeline":\s*(\d+),\s*"Start-LSN":\s*"([0-9A-Fa-f]+\/[0-9A-Fa-f]+)",\s*"End-LSN":\s*"([0-9A-Fa-f]+\/[0-9A-Fa-f]+)"\s*\}/g;

/**
 * The WAL the backup needs, from the end of its backup_manifest: the start of the first range
 * (the timeline the backup started on) to the end of the last (a promotion during the backup
 * adds a range). null when the tail holds no WAL-Ranges.
 */
export function walRangeOf(manifestTail: Buffer): WalRange | null {
  const text = manifestTail.toString("utf8");
  const at = text.lastIndexOf('"WAL-Ranges"');
  if (at === -1) return null;
  const ranges = [...text.slice(at).matchAll(RANGE_RE)];
  const first = ranges[0];
  const last = ranges.at(-1);
  if (first === undefined || last === undefined) return null;
  const [, timeline, startLsn] = first as unknown as [string, string, string];
  const stopLsn = last[3] as string;
  if (parseLsn(startLsn) === null || parseLsn(stopLsn) === null) return null;
  return { timeline: Number(timeline), startLsn: startLsn.toUpperCase(), stopLsn: stopLsn.toUpperCase() };
}

/** pg_basebackup's failure as the operator's fix: pg_hba, the REPLICATION attribute, max_wal_senders, tablespaces. */
export function basebackupFailure(err: unknown, pg: Pick<PgConfig, "user" | "host" | "port">): unknown {
  if (!(err instanceof ProcessError)) return err;
  const said = err.stderrTail;
  const where = `PGUSER=${pg.user} at ${pg.host}:${pg.port}`;
  const fail = (code: ExitCode, text: string) => new TaskError(code, `backup base: ${text} (pg_basebackup said: ${said.split("\n").filter((l) => /error|FATAL/i.test(l)).join(" ") || said})`, { cause: err });
  if (/no pg_hba\.conf entry for replication connection/i.test(said)) {
    return fail(ExitCode.database, `PostgreSQL has no pg_hba.conf line allowing ${where} a replication connection; add "host replication ${pg.user} <the task network, e.g. 10.0.0.0/8> scram-sha-256" to pg_hba.conf and reload (SELECT pg_reload_conf())`);
  }
  if (/must be superuser or replication role|permission denied to start WAL sender|must have (the )?REPLICATION/i.test(said)) {
    return fail(ExitCode.database, `the role ${pg.user} may not start a replication connection; run ALTER ROLE ${JSON.stringify(pg.user)} REPLICATION (or use a role that has it)`);
  }
  if (/exceeds max_wal_senders|max_wal_senders/i.test(said)) {
    return fail(ExitCode.database, `PostgreSQL has no free WAL sender (max_wal_senders is 0 or every sender is busy: wal-receive and standbys use one each); raise max_wal_senders in postgresql.conf and restart the server`);
  }
  if (/password authentication failed|no password supplied/i.test(said)) {
    return fail(ExitCode.database, `PostgreSQL rejected the password of ${where} for the replication connection; check the postgres_password secret or PGPASSWORD`);
  }
  if (/can only write single tablespace to stdout/i.test(said)) {
    return fail(
      ExitCode.refused,
      "the cluster has tablespaces besides pg_default and pg_global; backup base streams one tar, which cannot hold them (docs/pitr.md \"Extra tablespaces\"): move their tables, indexes and databases into pg_default (ALTER TABLE … SET TABLESPACE pg_default, ALTER DATABASE … SET TABLESPACE pg_default) and drop the tablespaces, or rely on the logical tiers for this cluster",
    );
  }
  if (/wal_level|WAL level/i.test(said)) {
    return fail(ExitCode.database, "the server's wal_level does not allow a base backup; set wal_level = replica in postgresql.conf and restart the server");
  }
  return fail(ExitCode.failed, "pg_basebackup failed; nothing was written");
}
