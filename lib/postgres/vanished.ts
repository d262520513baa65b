// A server that went away mid-task (container killed, restarted, node lost). libpq and pg say
// so in a dozen ways; a task reports it as one thing an operator can act on: PostgreSQL went
// away, and whether (and when) it came back, instead of "Client has encountered a connection
// error and is not queryable" or a bare pg_dump exit status.
import type { PgConfig } from "../config/config.js";
import { ExitCode, TaskError } from "../core/errors.js";
import type { Logger } from "../core/log.js";
import { ProcessError } from "../core/proc.js";
import { redact } from "../core/secret.js";
import { connect } from "./connection.js";

/** What libpq (pg_dump, psql, …) and node-postgres print when the server's end of the connection is gone. */
const LOST =
  /server closed the connection unexpectedly|connection to server .*lost|could not receive data from server|could not send data to server|no connection to the server|terminating connection due to (administrator command|crash of another server process|unexpected postmaster exit)|the database system is (shutting down|in recovery mode)|[Cc]onnection timed out|[Cc]onnection reset by peer|Connection terminated( unexpectedly)?|Client has encountered a connection error|ECONNRESET|ETIMEDOUT|EHOSTUNREACH/;

/** Marks a dump that made no progress for DUMP_STALL_TIMEOUT_SECONDS (its pg_dump was stopped). */
export class DumpStalledError extends Error {
  constructor(
    readonly what: string,
    readonly seconds: number,
  ) {
    super(`${what} made no progress for ${seconds} s (DUMP_STALL_TIMEOUT_SECONDS) and was stopped`);
    this.name = "DumpStalledError";
  }
}

/** `err` and its causes, at most five deep. */
function causes(err: unknown): unknown[] {
  const out: unknown[] = [];
  for (let e: unknown = err; e !== undefined && e !== null && out.length < 5; e = (e as { cause?: unknown }).cause) out.push(e);
  return out;
}

/** The text of an error and its causes, for matching. */
function texts(err: unknown): string {
  return causes(err)
    .map((e) => (e instanceof ProcessError ? `${e.message}\n${e.stderrTail}` : e instanceof Error ? `${e.message} ${(e as { code?: string }).code ?? ""}` : String(e)))
    .join("\n");
}

/** Whether `err` (or a cause of it) says the server's end of the connection went away, or the dump stalled. Pure. */
export function isServerGone(err: unknown): boolean {
  return causes(err).some((e) => e instanceof DumpStalledError) || LOST.test(texts(err));
}

/** What failed (the error's first line) and, when another line says so, how the connection was lost; without the password. */
function firstDetail(err: unknown, cfg: PgConfig): string {
  const lines = texts(err).split("\n").map((l) => l.trim());
  const first = (lines[0] ?? "").slice(0, 300);
  const lost = lines.find((l) => LOST.test(l));
  return redact(lost === undefined || first.includes(lost) ? first : `${first} … ${lost.slice(0, 300)}`, [cfg.password]);
}

/**
 * Asks the server, for up to `waitSeconds`, when its postmaster started: after a crash or a
 * restart that is after the task began. Never throws; says what it found.
 */
export async function restartNote(cfg: PgConfig, since: Date, waitSeconds: number, log?: Logger): Promise<string> {
  try {
    const client = await connect(cfg, cfg.database, undefined, waitSeconds);
    try {
      const r = await client.query<{ t: Date }>("SELECT pg_postmaster_start_time() AS t");
      const t = r.rows[0]?.t;
      if (t === undefined) return "it answers again";
      return t.getTime() >= since.getTime() - 1000
        ? `it restarted at ${t.toISOString()} (a crash, or a restart of the postgres service or its node)`
        : `it answers again and has run since ${t.toISOString()} (it did not restart: the connection itself was dropped, by the network between this task and ${cfg.host} or by pg_terminate_backend)`;
    } finally {
      await client.end().catch(() => undefined);
    }
  } catch (err) {
    log?.debug({ err: (err as Error).message }, "no answer from PostgreSQL after it went away");
    return `it has not answered again within ${waitSeconds} s`;
  }
}

/** For an error no task explained: the same words, without asking the server again (tasks/cli.ts). */
export function serverGoneMessage(task: string, host: string, message: string): string {
  return `PostgreSQL at ${host} went away during ${task} (${message}); check \`docker service ps\` of the postgres service and its logs: it was stopped, restarted or its node was lost. The next run starts afresh`;
}

/**
 * The task's error for a server that went away during `what` ("mid-dump", "mid-restore"): exit 1,
 * naming the host, what the client saw and whether the server came back, with `outcome` (what
 * was left as it was). `err` stays the cause.
 */
export async function serverGoneError(cfg: PgConfig, what: string, outcome: string, err: unknown, since: Date, log?: Logger): Promise<TaskError> {
  const note = await restartNote(cfg, since, Math.min(cfg.connectTimeoutSeconds, 30), log);
  const detail = firstDetail(err, cfg);
  return new TaskError(
    ExitCode.failed,
    `PostgreSQL went away ${what} (${cfg.host}:${cfg.port}: ${detail}); ${note}. ${outcome}. The next scheduled run starts afresh`,
    { cause: err },
  );
}
