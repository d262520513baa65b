// pg_basebackup as a stream: `pg_basebackup -D - -Ft -X fetch` writes one tar (data files,
// the WAL the backup needs, and backup_manifest last) to stdout; it is relayed into the
// compressor's stdin while a tar tap hashes backup_manifest and keeps its end, where the
// WAL-Ranges name the start and end LSN and the timeline. A failure of pg_basebackup becomes
// a TaskError that names the server setting to fix.
import type { Writable } from "node:stream";
import type { PgConfig } from "../config/config.js";
import { ExitCode, TaskError } from "../core/errors.js";
import { ProcessError, start } from "../core/proc.js";
import type { Secret } from "../core/secret.js";
import { relay } from "../backup/sink.js";
import { KEEPALIVE_CONNINFO } from "../postgres/connection.js";
import { parseLsn } from "../physical/layout.js";
import { TarMemberTap } from "./tarMemberTap.js";
import type { TappedMember } from "./tarMemberTap.js";

export const BACKUP_MANIFEST_MEMBER = "backup_manifest";
/** The WAL-Ranges and Manifest-Checksum close the backup_manifest; a few KB hold them, even for many timelines. */
const MANIFEST_TAIL_BYTES = 64 * 1024;

export interface WalRange {
  timeline: number;
  startLsn: string;
  stopLsn: string;
}

export function pgBasebackupArgs(checkpoint: "fast" | "spread"): string[] {
  return ["-D", "-", "-Ft", "-X", "fetch", "-v", `--checkpoint=${checkpoint}`, "--no-sync"];
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
    return fail(ExitCode.refused, "the cluster has tablespaces besides pg_default and pg_global; backup base streams one tar and supports only the default tablespaces");
  }
  if (/wal_level|WAL level/i.test(said)) {
    return fail(ExitCode.database, "the server's wal_level does not allow a base backup; set wal_level = replica in postgresql.conf and restart the server");
  }
  return fail(ExitCode.failed, "pg_basebackup failed; nothing was written");
}

export interface StreamedBase {
  rawBytes: number;
  backupManifest: TappedMember;
  range: WalRange;
}

export interface StreamOptions {
  env: NodeJS.ProcessEnv;
  pg: PgConfig;
  checkpoint: "fast" | "spread";
  secrets: readonly (Secret | null)[];
  /** Called with every chunk's length (progress). */
  onBytes: (n: number) => void;
}

/** Runs pg_basebackup into `sink` (the compressor's stdin); resolves once it exited 0 and its tar held a backup_manifest with WAL-Ranges. */
export async function streamBaseBackup(sink: Writable, opts: StreamOptions): Promise<StreamedBase> {
  const tap = new TarMemberTap(BACKUP_MANIFEST_MEMBER, MANIFEST_TAIL_BYTES);
  let rawBytes = 0;
  // Dead-peer detection (keepalives, tcp_user_timeout); the rest of the connection comes from the environment.
  const child = start("pg_basebackup", [...pgBasebackupArgs(opts.checkpoint), `--dbname=${KEEPALIVE_CONNINFO}`], { env: opts.env, stdout: "pipe", secrets: opts.secrets });
  try {
    await Promise.all([
      relay(child.stdout as NonNullable<typeof child.stdout>, sink, (b) => {
        rawBytes += b.length;
        tap.push(b);
        opts.onBytes(b.length);
      }),
      child.done,
    ]);
  } catch (err) {
    // A compressor that stopped reading is the compressor's failure (writeCompressed reports it); stop pg_basebackup too.
    child.kill();
    throw basebackupFailure(err, opts.pg);
  }
  const backupManifest = tap.result();
  if (backupManifest === null) {
    throw new TaskError(ExitCode.failed, "backup base: pg_basebackup's tar holds no backup_manifest (pg_basebackup 13 or later writes one unless --no-manifest); nothing was written");
  }
  const range = walRangeOf(backupManifest.tail);
  if (range === null) throw new TaskError(ExitCode.failed, "backup base: the backup_manifest pg_basebackup wrote has no WAL-Ranges; nothing was written");
  return { rawBytes, backupManifest, range };
}
