// psql as the restore engine: one child per connection of a database's section (or for the
// globals) reading SQL on stdin with ON_ERROR_STOP, so the first error stops it; its error
// line is kept for the message. With continueOnError (restore --continue-on-error) psql runs
// every statement and each error it reports is collected with its input line. The connection
// comes from the environment (childEnv + the write-gate override); -w: never prompt, stdin is data.
// Backup content is someone else's bytes: psql's first input line is `\restrict KEY` with a
// fresh random key (lib/restore/restrict.ts) that never leaves this process, so psql itself
// refuses every meta-command of the file (\!, \o, \copy, \set …), whatever the client
// encoding or variable interpolation makes of the text, and nothing can lift it.
import type { Writable } from "node:stream";
import { dbnameConninfo } from "../postgres/connection.js";
import type { Secret } from "../core/secret.js";
import { exitOk, start } from "../core/proc.js";

/** psql reading a script names each error's input line: "psql:<stdin>:123: ERROR:  …". */
const ERROR_LINE = /^psql:<stdin>:(\d+): (?:ERROR|FATAL|PANIC|error):\s+(.*)$/m;
/** What restricted psql prints for a meta-command it refused. */
const RESTRICTED = "backslash commands are restricted";

export class PsqlFailure extends Error {
  /** Input line psql had reached when it stopped, or null when it did not say. */
  readonly line: number | null;
  /** How psql ended ("psql exited with 3") and what it printed. */
  readonly how: string;
  readonly detail: string;
  constructor(how: string, line: number | null, detail: string) {
    super(`${how}${line !== null ? ` at line ${line}` : ""}: ${detail}`);
    this.name = "PsqlFailure";
    [this.how, this.line, this.detail] = [how, line, detail];
  }

  /** psql stopped at a meta-command of the script that it refused (restricted): the file is not what pg_dump wrote. */
  get refusedMetaCommand(): boolean {
    return this.detail.includes(RESTRICTED);
  }

  /** The message with the line put in context, e.g. "of its section". */
  at(where: string): string {
    return this.line === null ? this.message : `${this.how} at line ${this.line} ${where}: ${this.detail}`;
  }
}

/** The error psql printed (with its LINE/DETAIL/CONTEXT lines), or the tail of stderr; `shift` maps psql's input lines to the caller's. */
export function describePsqlStderr(stderr: string, shift = 0): { line: number | null; text: string } {
  const m = ERROR_LINE.exec(stderr);
  if (m === null) return { line: null, text: stderr.trim().split("\n").slice(-4).join(" | ") };
  const following = stderr.slice(m.index + m[0].length + 1).split("\n").filter((l) => /^(LINE \d+|DETAIL|HINT|CONTEXT|\s+\^)/.test(l));
  const said = m[2] as string;
  const why = said.startsWith(RESTRICTED) ? `${said} (psql refused a meta-command of the file: pg_dump writes none there, so the file was altered after the backup)` : said;
  return { line: Number(m[1]) + shift, text: [`ERROR: ${why}`, ...following.slice(0, 4).map((l) => l.trim())].join(" | ") };
}

/** A statement psql reported as failed while it went on (continueOnError). */
export interface StatementError {
  line: number;
  error: string;
}

/** Errors kept per psql; past this only the count grows (a broken file can fail on every line). */
const MAX_KEPT_ERRORS = 1000;

/** Collects psql's "psql:<stdin>:N: ERROR: …" lines (and its own "error:" lines, a refused meta-command among them) from its stderr as it prints them. */
class ErrorCollector {
  readonly errors: StatementError[] = [];
  count = 0;
  private partial = "";
  constructor(private readonly shift: number) {}
  push(text: string): void {
    const lines = (this.partial + text).split("\n");
    this.partial = lines.pop() ?? "";
    for (const line of lines) {
      const m = /^psql:<stdin>:(\d+): (?:ERROR|error):\s+(.*)$/.exec(line);
      if (m === null) continue;
      this.count++;
      if (this.errors.length < MAX_KEPT_ERRORS) this.errors.push({ line: Number(m[1]) + this.shift, error: m[2] as string });
    }
  }
}

export interface PsqlProcess {
  /** Resolves when psql can take more (backpressure); a no-op once psql is gone, finish() then says why. */
  write(chunk: Buffer): Promise<void>;
  /** Ends the input and waits; throws PsqlFailure when psql did not exit 0. */
  finish(): Promise<void>;
  /** With continueOnError: the statements that failed so far, and how many in all. */
  readonly statementErrors: { kept: readonly StatementError[]; count: () => number };
  kill(): void;
}

export interface PsqlOptions {
  /** Run every statement and collect the failed ones instead of stopping at the first. */
  continueOnError?: boolean;
  /** The key psql restricts itself with before the first byte of the script; null only for signed content on a psql without \restrict. */
  restrictKey: string | null;
  /** The caller's line number of the script's first line, so errors name the caller's lines (a section's). */
  firstLine?: number;
}

export function spawnPsql(database: string, env: NodeJS.ProcessEnv, secrets: readonly (Secret | null)[], opts: PsqlOptions): PsqlProcess {
  const onError = opts.continueOnError === true ? [] : ["-v", "ON_ERROR_STOP=1"];
  const child = start("psql", ["-X", "-q", "-w", ...onError, "-f", "-", "-d", dbnameConninfo(database)], { env, stdin: "pipe", secrets });
  // psql numbers its input lines from 1, our \restrict line included.
  const shift = (opts.firstLine ?? 1) - 1 - (opts.restrictKey === null ? 0 : 1);
  const continueOnError = opts.continueOnError === true;
  const collector = new ErrorCollector(shift);
  if (continueOnError) child.process.stderr?.on("data", (d: Buffer) => collector.push(d.toString("utf8")));
  const stdin = child.stdin as Writable;
  let gone = false;
  stdin.on("error", () => (gone = true));
  void child.exit.then(() => (gone = true));
  if (opts.restrictKey !== null) stdin.write(`\\restrict ${opts.restrictKey}\n`);
  return {
    statementErrors: { kept: collector.errors, count: () => collector.count },
    async write(chunk) {
      // A stream that is already closed (psql never started, or exited) emits no further
      // event, so waiting for one would hang: the exit status is reported by finish().
      if (gone || stdin.destroyed || stdin.writableEnded) return;
      if (stdin.write(chunk)) return;
      await new Promise<void>((resolve) => {
        const done = () => {
          stdin.off("drain", done).off("error", done).off("close", done);
          resolve();
        };
        stdin.on("drain", done).on("error", done).on("close", done);
      });
    },
    async finish() {
      if (!stdin.writableEnded) stdin.end();
      const r = await child.exit;
      if (exitOk(r)) return;
      if (!r.started) throw new PsqlFailure("psql did not start", null, `${r.stderr}; install the PostgreSQL client`);
      const { line, text } = describePsqlStderr(r.stderr, shift);
      const how = r.signal !== null ? `psql was killed by ${r.signal}` : `psql exited with ${r.code ?? "?"}`;
      throw new PsqlFailure(how, line, text || "(no error output)");
    },
    kill() {
      gone = true;
      child.kill();
    },
  };
}
