// Feeding SQL sections into one psql process, as `bunzip2 -c FILE | psql` would, but with
// backpressure and with psql's error lines collected, so verify can tell an expected error
// (CREATE ROLE postgres in a cluster that has it) from a real one.
import { createInterface } from "node:readline";
import type { Readable, Writable } from "node:stream";
import { finished } from "node:stream/promises";
import { execa } from "execa";
import { dbnameConninfo } from "./pg.js";

export interface PsqlError {
  /** Line of psql's input the error belongs to; null when psql printed none. */
  line: number | null;
  /** The server's message, e.g. `role "postgres" already exists`. */
  text: string;
}

export interface PsqlOutcome {
  /** Why psql itself failed (exit status, killed), or null. */
  failure: string | null;
  errors: PsqlError[];
  /** All error lines, including those beyond the kept `errors`. */
  errorCount: number;
}

export interface PsqlFeed {
  write(chunk: Buffer): Promise<void>;
  /** Ends psql's input and waits for it to exit. */
  finish(): Promise<PsqlOutcome>;
}

const KEEP_ERRORS = 200;
/** Without the "psql:<stdin>:N:" prefix the line is unknown; such an error is never tolerated. */
const ERROR_LINE = /^(?:psql:<stdin>:(\d+): )?(?:ERROR|FATAL|PANIC|error):\s+(.*)$/;

/** An error line of psql reading stdin, or null for DETAIL/HINT/NOTICE and other lines. */
export function parsePsqlError(line: string): PsqlError | null {
  const m = ERROR_LINE.exec(line);
  return m === null ? null : { line: m[1] === undefined ? null : Number(m[1]), text: m[2] as string };
}

/**
 * psql -X (no psqlrc) -q, errors do not stop it (like a stock restore), connected to
 * `database`. `-f -` rather than plain stdin: only then does psql prefix each error with
 * "psql:<stdin>:LINE:", which tells the globals' errors from the databases'.
 */
export function startPsql(database: string, env: NodeJS.ProcessEnv): PsqlFeed {
  const child = execa("psql", ["-X", "-q", "-v", "ON_ERROR_STOP=0", "-f", "-", "-d", dbnameConninfo(database)], {
    env,
    extendEnv: false,
    stdin: "pipe",
    stdout: "ignore",
    stderr: "pipe",
    buffer: false,
    reject: false,
  });
  const errors: PsqlError[] = [];
  let errorCount = 0;
  const other: string[] = [];
  const stderr = child.stderr as Readable;
  // psql's exit can be seen before its last stderr lines are read; finish() waits for both.
  // finished() also settles when the pipe is torn down without an end (psql never started).
  const stderrRead = finished(stderr).catch(() => undefined);
  createInterface({ input: stderr, crlfDelay: Infinity }).on("line", (line) => {
    const e = parsePsqlError(line);
    if (e === null) {
      if (other.length < 20) other.push(line);
      return;
    }
    errorCount++;
    if (errors.length < KEEP_ERRORS) errors.push(e);
  });
  const stdin = child.stdin as Writable;
  let broken: Error | null = null;
  stdin.on("error", (err: Error) => (broken ??= err));
  const exited = child.then((r) => r);
  return {
    async write(chunk) {
      if (broken !== null || stdin.destroyed) throw new Error(`psql stopped reading its input${broken ? ` (${broken.message})` : ""}`);
      if (!stdin.write(chunk)) await drained(stdin);
    },
    async finish() {
      if (!stdin.writableEnded && !stdin.destroyed) stdin.end();
      const [r] = await Promise.all([exited, stderrRead]);
      let failure: string | null = null;
      if (r.signal !== undefined) failure = `psql was killed by ${r.signal}`;
      else if (r.exitCode !== 0) {
        const why = other.length > 0 ? other.slice(-5).join(" | ") : (r as { shortMessage?: string }).shortMessage;
        failure = `psql exited with ${r.exitCode ?? "?"}${why ? `: ${why}` : ""}`;
      }
      return { failure, errors, errorCount };
    },
  };
}

/** Waits for room in psql's input; fails instead of hanging when psql goes away (EPIPE, closed pipe). */
function drained(stdin: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      stdin.off("drain", onDrain).off("error", done).off("close", onClose);
      if (err === undefined) resolve();
      else reject(err);
    };
    const onDrain = () => done();
    const onClose = () => done(new Error("psql closed its input before the end of the restore"));
    stdin.on("drain", onDrain).on("error", done).on("close", onClose);
  });
}

const CONNECT = Buffer.from("\n\\connect ");
/** The preamble before a section's \connect is a few SET lines and CREATE/ALTER DATABASE. */
const MAX_PREAMBLE = 1 << 20;

/**
 * Drops a database section's lines up to and including its first `\connect` line: the
 * CREATE DATABASE preamble of a `pg_dump --create` section, or the `\connect template1`
 * that precedes a template1/postgres section. What is left restores into whichever
 * database psql is connected to. pg_dump refuses names with CR/LF, so no name can fake
 * that line before the real one.
 */
export class ConnectStripper {
  private pending: Buffer[] = [];
  private size = 0;
  found = false;

  /** The bytes to pass on (possibly empty). */
  push(chunk: Buffer): Buffer {
    if (this.found) return chunk;
    this.pending.push(Buffer.from(chunk));
    this.size += chunk.length;
    const buf = Buffer.concat(this.pending);
    const at = buf.indexOf(CONNECT);
    const eol = at < 0 ? -1 : buf.indexOf(0x0a, at + 1);
    if (eol < 0) {
      if (this.size > MAX_PREAMBLE) throw new Error(`no \\connect line in the first ${MAX_PREAMBLE} bytes of the section`);
      this.pending = [buf];
      return Buffer.alloc(0);
    }
    this.found = true;
    this.pending = [];
    return buf.subarray(eol + 1);
  }
}
