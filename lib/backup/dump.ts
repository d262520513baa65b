// The dump stream: a pg_dumpall-shaped plain-SQL stream composed from `pg_dumpall
// --globals-only` and one `pg_dump` per database, byte for byte what pg_dumpall prints,
// but for a chosen subset of databases (differential, incremental) and with each
// pg_dump's exit status and "dump complete" trailer checked.
//
// The hot path: each pg_dump chunk is counted (rows per COPY block, one native indexOf per
// line) and handed straight to the compressor's stdin from the 'data' handler, with the
// stream paused while the compressor is behind. No async iteration, no re-batching: per
// chunk there is one handler call and one write (see docs/performance.md).
import type { Readable, Writable } from "node:stream";
import { ExitCode, TaskError } from "../core/errors.js";
import { dbnameConninfo } from "../postgres/connection.js";
import { put, relay, SinkClosedError } from "./sink.js";
import { runCommandBytes, start } from "../core/proc.js";
import { RowCounter } from "./rowCounter.js";
import type { Secret } from "../core/secret.js";
import { DumpStalledError } from "../postgres/vanished.js";

export const CLUSTER_TRAILER = "--\n-- PostgreSQL database cluster dump complete\n--\n\n";
const TAIL_BYTES = 512;
export const DATABASE_TRAILER = "-- PostgreSQL database dump complete";
const DATABASES_HEADER = "--\n-- Databases\n--\n\n";

/** pg_dumpall's section header; a CR/LF in a name would end the comment line, so it is shown as a space (the manifest keeps the real name). */
export function sectionHeader(name: string): string {
  return `--\n-- Database "${name.replace(/[\r\n]/g, " ")}" dump\n--\n\n`;
}

/** template1 and postgres exist in every target cluster, so pg_dumpall restores into them instead of creating them. */
export function isPreexisting(name: string): boolean {
  return name === "template1" || name === "postgres";
}

export interface DumpOptions {
  env: NodeJS.ProcessEnv;
  maintenanceDb: string;
  databases: readonly string[];
  secrets: readonly (Secret | null)[];
  onDatabase?: (name: string) => void;
  /**
   * Asked when a pg_dump fails before writing anything: false means the database was
   * dropped after the plan was made, and it is left out instead of failing the backup.
   */
  databaseExists?: (name: string) => Promise<boolean>;
  /**
   * DUMP_STALL_TIMEOUT_SECONDS: a pg_dump that delivers no byte for this long is stopped and the
   * dump fails with DumpStalledError (a server that hangs without dropping the connection).
   */
  stallSeconds?: number;
}

export interface DumpResult {
  rowCounts: Record<string, Record<string, number>>;
  rawBytes: number;
  /** Planned databases that no longer existed when their turn came (not in the file). */
  dropped: string[];
}

function dumpError(what: string, err: unknown): TaskError {
  const detail = err instanceof Error ? err.message : String(err);
  return new TaskError(ExitCode.failed, `${what} failed: ${detail}`, { cause: err });
}

/** The globals part of the stream: pg_dumpall --globals-only without its closing trailer. */
export async function dumpGlobals(opts: Pick<DumpOptions, "env" | "maintenanceDb" | "secrets">): Promise<Buffer> {
  let out: Buffer;
  try {
    out = await runCommandBytes("pg_dumpall", ["--globals-only", `--dbname=${dbnameConninfo(opts.maintenanceDb)}`], { env: opts.env, secrets: opts.secrets });
  } catch (err) {
    throw dumpError("pg_dumpall --globals-only", err);
  }
  const text = out.subarray(-CLUSTER_TRAILER.length).toString("utf8");
  if (text !== CLUSTER_TRAILER) throw dumpError("pg_dumpall --globals-only", new Error("output lacks the \"cluster dump complete\" trailer"));
  return out.subarray(0, out.length - CLUSTER_TRAILER.length);
}

/**
 * One database's section: its header (written just before pg_dump's first bytes, so a
 * database dropped meanwhile leaves nothing behind) and pg_dump's output. Returns false
 * when the database was dropped before pg_dump could connect.
 */
async function dumpDatabase(sink: Writable, db: string, opts: DumpOptions, result: DumpResult): Promise<boolean> {
  const child = start("pg_dump", [...(isPreexisting(db) ? [] : ["--create"]), `--dbname=${dbnameConninfo(db)}`], { env: opts.env, stdout: "pipe", secrets: opts.secrets });
  const counter = new RowCounter();
  let last: Buffer | null = null;
  const what = `pg_dump of database "${db}"`;
  const header = Buffer.from(sectionHeader(db) + (isPreexisting(db) ? `\\connect ${db}\n\n` : ""));
  let lastByteAt = Date.now();
  let stalled = false;
  const stallMs = (opts.stallSeconds ?? 0) * 1000;
  const watchdog =
    stallMs > 0
      ? setInterval(() => {
          if (Date.now() - lastByteAt < stallMs) return;
          stalled = true;
          child.kill();
        }, Math.min(1000, stallMs))
      : null;
  try {
    await relay(child.stdout as Readable, sink, (b) => {
      lastByteAt = Date.now();
      if (last === null) {
        result.rawBytes += header.length;
        sink.write(header);
      }
      result.rawBytes += b.length;
      counter.push(b);
      last = b.length >= TAIL_BYTES || last === null ? b : Buffer.concat([last, b]).subarray(-TAIL_BYTES);
    });
    await child.done;
  } catch (err) {
    if (err instanceof SinkClosedError) throw err;
    if (stalled) throw new DumpStalledError(what, opts.stallSeconds ?? 0);
    if (last === null && opts.databaseExists !== undefined && !(await opts.databaseExists(db))) return false;
    throw dumpError(what, err);
  } finally {
    if (watchdog !== null) clearInterval(watchdog);
    child.kill();
  }
  const tail = last === null ? "" : (last as Buffer).subarray(-TAIL_BYTES).toString("utf8");
  if (!tail.includes(DATABASE_TRAILER) || counter.inCopy) {
    throw dumpError(what, new Error(`output ended without the "${DATABASE_TRAILER}" trailer (truncated)`));
  }
  result.rowCounts[db] = counter.toObject();
  return true;
}

/**
 * Writes the whole SQL stream into `sink`: the globals (dumped beforehand, see dumpGlobals),
 * one section per database, the cluster trailer. Does not end the sink. On failure the
 * running pg_dump is killed; when the sink closed early, SinkClosedError is thrown and the
 * sink's owner reports the reason.
 */
export async function dumpInto(sink: Writable, globals: Buffer, opts: DumpOptions, result: DumpResult): Promise<void> {
  const emit = (b: Buffer) => {
    result.rawBytes += b.length;
    return put(sink, b);
  };
  await emit(globals);
  await emit(Buffer.from(DATABASES_HEADER));
  for (const db of opts.databases) {
    opts.onDatabase?.(db);
    if (!(await dumpDatabase(sink, db, opts, result))) result.dropped.push(db);
  }
  await emit(Buffer.from(CLUSTER_TRAILER));
}
