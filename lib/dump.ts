// The dump stream: a pg_dumpall-shaped plain-SQL stream composed from `pg_dumpall
// --globals-only` and one `pg_dump` per database, byte for byte what pg_dumpall prints,
// but for a chosen subset of databases (differential, incremental) and with each
// pg_dump's exit status and "dump complete" trailer checked.
import { execa } from "execa";
import type { Readable } from "node:stream";
import { ExitCode, TaskError } from "./errors.js";
import { dbnameConninfo } from "./pg.js";
import { toProcessError, ProcessError } from "./proc.js";
import { RowCounter } from "./rowCounter.js";
import type { Secret } from "./secret.js";

export const CLUSTER_TRAILER = "--\n-- PostgreSQL database cluster dump complete\n--\n\n";
/**
 * pg_dump writes a few KB at a time. Handing the stream on in pieces of about this size makes
 * every per-piece cost after the read (row counting, the generator, the write into the
 * compressor) rarer by two orders of magnitude; measured in bench/ (see README, Performance).
 */
export const BATCH_BYTES = 1 << 20;
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
}

export interface DumpResult {
  rowCounts: Record<string, Record<string, number>>;
  rawBytes: number;
}

function dumpError(what: string, err: unknown): TaskError {
  const detail = err instanceof Error ? err.message : String(err);
  return new TaskError(ExitCode.failed, `${what} failed: ${detail}`, { cause: err });
}

async function globals(opts: DumpOptions): Promise<Buffer> {
  let out: Buffer;
  try {
    const r = await execa("pg_dumpall", ["--globals-only", `--dbname=${dbnameConninfo(opts.maintenanceDb)}`], {
      env: opts.env,
      extendEnv: false,
      encoding: "buffer",
      stripFinalNewline: false,
    });
    out = Buffer.from(r.stdout);
  } catch (err) {
    throw dumpError("pg_dumpall --globals-only", toProcessError("pg_dumpall", err, opts.secrets));
  }
  const text = out.subarray(-CLUSTER_TRAILER.length).toString("utf8");
  if (text !== CLUSTER_TRAILER) throw dumpError("pg_dumpall --globals-only", new Error("output lacks the \"cluster dump complete\" trailer"));
  return out.subarray(0, out.length - CLUSTER_TRAILER.length);
}

/**
 * The chunks of `stream` joined into pieces of at least `size` bytes (the last may be
 * smaller). Reads through 'data' events, cheaper per chunk than an async iterator, and
 * pauses the stream while a full piece waits for the consumer, so memory stays bounded.
 */
export async function* batches(stream: Readable, size: number): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let length = 0;
  let ended = false;
  let failure: { error: unknown } | null = null;
  let wake: (() => void) | null = null;
  const signal = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  const onData = (chunk: Buffer) => {
    parts.push(chunk);
    length += chunk.length;
    if (length >= size) {
      stream.pause();
      signal();
    }
  };
  const onEnd = () => {
    ended = true;
    signal();
  };
  const onError = (error: unknown) => {
    failure = { error };
    signal();
  };
  stream.on("data", onData);
  stream.once("end", onEnd);
  stream.once("close", onEnd);
  stream.once("error", onError);
  try {
    for (;;) {
      if (failure !== null) throw (failure as { error: unknown }).error;
      if (length >= size || (ended && length > 0)) {
        const piece = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, length);
        parts = [];
        length = 0;
        if (!ended) stream.resume();
        yield piece;
        continue;
      }
      if (ended) return;
      await new Promise<void>((resolve) => (wake = resolve));
    }
  } finally {
    stream.off("data", onData);
    stream.off("end", onEnd);
    stream.off("close", onEnd);
    stream.off("error", onError);
  }
}

/**
 * Yields the SQL stream; `result` is filled in as it goes. The caller's stream machinery
 * provides backpressure; if the consumer stops early, the running pg_dump is killed.
 */
export async function* dumpStream(opts: DumpOptions, result: DumpResult): AsyncGenerator<Buffer> {
  const emit = (b: Buffer) => {
    result.rawBytes += b.length;
    return b;
  };
  yield emit(await globals(opts));
  yield emit(Buffer.from(DATABASES_HEADER));
  for (const db of opts.databases) {
    opts.onDatabase?.(db);
    yield emit(Buffer.from(sectionHeader(db)));
    if (isPreexisting(db)) yield emit(Buffer.from(`\\connect ${db}\n\n`));
    const args = [...(isPreexisting(db) ? [] : ["--create"]), `--dbname=${dbnameConninfo(db)}`];
    const child = execa("pg_dump", args, {
      env: opts.env,
      extendEnv: false,
      buffer: { stdout: false, stderr: true },
      encoding: "buffer",
      stdin: "ignore",
    });
    // Awaited below on the normal path; when the consumer stops early the kill in `finally`
    // rejects it, which must not surface as an unhandled rejection.
    child.catch(() => undefined);
    const counter = new RowCounter();
    let last: Buffer = Buffer.alloc(0);
    try {
      for await (const b of batches(child.stdout as Readable, BATCH_BYTES)) {
        counter.push(b);
        last = b.length >= TAIL_BYTES ? b.subarray(-TAIL_BYTES) : Buffer.concat([last, b]).subarray(-TAIL_BYTES);
        yield emit(b);
      }
      await child;
    } catch (err) {
      throw dumpError(`pg_dump of database "${db}"`, err instanceof ProcessError ? err : toProcessError("pg_dump", err, opts.secrets));
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
    if (!last.toString("utf8").includes(DATABASE_TRAILER) || counter.inCopy) {
      throw dumpError(`pg_dump of database "${db}"`, new Error(`output ended without the "${DATABASE_TRAILER}" trailer (truncated)`));
    }
    result.rowCounts[db] = counter.toObject();
  }
  yield emit(Buffer.from(CLUSTER_TRAILER));
}
