// Executes a restore: every file's checksum first, then the targets checked (refusing
// before anything changes), the globals applied, and the databases restored, each through
// its own psql (lib/restore/database.ts), up to `parallel` at once. Every file is read once,
// in its own stream, so files restore concurrently; within a file, a database's psql
// finishes its indexes and constraints while the next section already streams. Sections are
// streamed with backpressure rather than spooled, so memory and disk use stay bounded.
// The caller holds the cluster lock; verify, restoring into a scratch cluster or scratch
// databases, takes none (RestoreContext.exclusive).
import type { KeyObject } from "node:crypto";
import { availableParallelism } from "node:os";
import type { Config, PgConfig } from "../config/config.js";
import type { JobContext, JobOutcome, JobSpec, StatementErrors } from "./database.js";
import { DatabaseJob, dropTemp } from "./database.js";
import { openSqlStream } from "./decompress.js";
import type { ReadOptions, SqlSource } from "./decompress.js";
import type { AgeIdentity } from "../keys/ageIdentity.js";
import { ExitCode, TaskError } from "../core/errors.js";
import type { GlobalsMode } from "./globalsFilter.js";
import { GlobalsFilter } from "./globalsFilter.js";
import type { Logger } from "../core/log.js";
import { childEnv } from "../postgres/connection.js";
import type { Client } from "../postgres/connection.js";
import { PsqlFailure, spawnPsql } from "./psql.js";
import { decideTarget } from "./target.js";
import { extractSections, readSections } from "../sql/sections.js";
import { ScriptGuard, ScriptRefusal, refusalText } from "../sql/metaCommands.js";
import { verifyFiles } from "./prescan.js";
import { clusterGlobals, databaseStates, markedTempDatabases } from "./targetState.js";
import { connectWritable, writableEnv } from "./writeGate.js";

export interface RestoreFile extends SqlSource {
  /** The manifest's sha256, checked against the sidecar too; null for a file without manifest. */
  sha256: string | null;
}

export interface RestoreRequest {
  files: RestoreFile[];
  globals: { file: RestoreFile; mode: GlobalsMode } | null;
  databases: { file: RestoreFile; source: string; target: string }[];
  dropExisting: boolean;
  /** Run every statement and list the failed ones (exit 10) instead of failing a database at its first error. */
  continueOnError: boolean;
}

export interface RestoreContext {
  pg: PgConfig;
  /** Base environment for child processes (PATH, locale). */
  env: NodeJS.ProcessEnv;
  threads: number;
  parallel: number;
  log: Logger;
  /**
   * No other restore can run against the cluster (the caller holds its lock, or the cluster
   * is private): temporary databases found there are leftovers to drop. false on a server
   * others may restore into too.
   */
  exclusive: boolean;
  /** BACKUP_VERIFY_KEY_FILE's key: every file's signature is checked with its checksums; null: checksums only. */
  verifyKey: KeyObject | null;
  /** AGE_IDENTITY_FILE: decrypts encrypted files; null: an encrypted file is refused before anything is touched. */
  identity: AgeIdentity | null;
}

/** How the files of a restore are read: its cores for the decompressor, its identity for age. */
export function readOptions(ctx: RestoreContext): ReadOptions {
  return { threads: ctx.threads, env: childEnv(ctx.pg, ctx.env), identity: ctx.identity };
}

/** The context for restoring into the configured cluster, under its lock: all cores for psql processes and the decompressor. */
export function restoreContext(config: Config, env: NodeJS.ProcessEnv, log: Logger): RestoreContext {
  return { pg: config.pg, env, threads: config.compression.threads, parallel: availableParallelism(), log, exclusive: true, verifyKey: config.signing.verifyKey, identity: config.encryption.identity };
}

export interface RestoreOutcome {
  restored: string[];
  createdRoles: string[];
  seconds: number;
  /** --continue-on-error: the statements that failed, per database (the globals as database null). */
  statementErrors: FailedStatements[];
}

export interface FailedStatements {
  database: string | null;
  file: string;
  errors: StatementErrors;
}

/** A restore that failed for some databases (the message says why); the others were restored. */
export class RestoreFailure extends TaskError {
  constructor(
    message: string,
    /** Each failed database and the file its section came from, in the request's file order. */
    readonly failures: readonly { target: string; file: string }[],
    readonly restored: readonly string[],
  ) {
    super(ExitCode.failed, message);
  }
}

const PROGRESS_MS = 5000;

/** Streams the globals part of a file to `onChunk` (with backpressure), up to its first database section, where the reader stops. */
export async function streamGlobals(ctx: RestoreContext, file: RestoreFile, onChunk: (chunk: Buffer) => void | Promise<void>): Promise<void> {
  const sql = openSqlStream(file, readOptions(ctx));
  const stop = new Error("globals read");
  try {
    await readSections(sql.stream, { onGlobals: onChunk, onDatabaseStart: () => Promise.reject(stop) });
    await sql.done;
  } catch (err) {
    sql.cancel();
    await sql.done.catch(() => undefined);
    if (err !== stop) throw err;
  }
}

/** Roles and tablespaces, streamed from the file through the filter and the script guard into psql. */
async function applyGlobals(
  ctx: RestoreContext,
  admin: Client,
  env: NodeJS.ProcessEnv,
  req: NonNullable<RestoreRequest["globals"]>,
  continueOnError: boolean,
): Promise<{ created: string[]; errors: StatementErrors }> {
  const filter = new GlobalsFilter(req.mode, await clusterGlobals(admin));
  const part = { globals: true } as const;
  const guard = new ScriptGuard(part);
  const psql = spawnPsql(ctx.pg.database, env, [ctx.pg.password], continueOnError);
  const send = async (chunks: Buffer[]) => {
    for (const chunk of chunks) await psql.write(chunk);
  };
  try {
    await streamGlobals(ctx, req.file, (chunk) => send(guard.push(filter.push(chunk))));
    await send([...guard.push(filter.end()), ...guard.end()]);
  } catch (err) {
    psql.kill();
    await psql.finish().catch(() => undefined);
    // The pre-scan passed this file: it changed since, and psql may have applied the globals before this line.
    const why = err instanceof ScriptRefusal ? `${refusalText(req.file.name, part, err)}; the file changed after it was checked` : `cannot read the globals of ${req.file.name}: ${(err as Error).message}`;
    throw new TaskError(ExitCode.failed, `applying the roles and tablespaces of ${req.file.name} stopped: ${why}; roles before that point may have been applied, no database was restored`, { cause: err });
  }
  try {
    await psql.finish();
  } catch (err) {
    const why = err instanceof PsqlFailure ? err.at(`of ${req.file.name}`) : (err as Error).message;
    throw new TaskError(ExitCode.failed, `applying the roles and tablespaces of ${req.file.name} failed: ${why}; no database was restored`, { cause: err });
  }
  ctx.log.info({ backup: req.file.name, created: filter.created, existing: filter.existing }, `globals applied: ${filter.created.length} role(s) created`);
  return { created: filter.created, errors: { kept: psql.statementErrors.kept, count: psql.statementErrors.count() } };
}

class Slots {
  private free: number;
  private waiting: (() => void)[] = [];
  constructor(n: number) {
    this.free = Math.max(1, n);
  }
  async take(): Promise<void> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
  }
  give(): void {
    const next = this.waiting.shift();
    if (next !== undefined) next();
    else this.free++;
  }
}

interface Settled {
  spec: JobSpec;
  job: DatabaseJob | null;
  outcome: JobOutcome;
}

/** Streams one file, handing each wanted section to its job; returns every job's outcome (promises: jobs finish after the reader moves on). */
async function restoreFile(ctx: RestoreContext, jc: JobContext, file: RestoreFile, specs: JobSpec[], slots: Slots, progress: Map<string, number>): Promise<Promise<Settled>[]> {
  const bySource = new Map(specs.map((s) => [s.source, s]));
  const outcomes: Promise<Settled>[] = [];
  const settle = (job: DatabaseJob, p: Promise<JobOutcome>) => outcomes.push(p.then((outcome) => ({ spec: job.spec, job, outcome })).finally(() => slots.give()));
  const started = new Set<string>();
  let current: DatabaseJob | null = null;
  const sql = openSqlStream(file, readOptions(ctx));
  let failure: string | null = null;
  try {
    const r = await extractSections(sql.stream, bySource.keys(), {
      onDatabaseStart: async (name) => {
        started.add(name);
        await slots.take();
        current = new DatabaseJob(jc, bySource.get(name) as JobSpec);
        await current.begin();
      },
      onDatabaseData: async (_name, chunk) => {
        progress.set(file.name, (progress.get(file.name) ?? 0) + chunk.length);
        await current?.feed(chunk);
      },
      onDatabaseEnd: (_name, complete) => {
        const job = current as DatabaseJob;
        current = null;
        settle(job, job.endInput(complete));
      },
    });
    await sql.done;
    if (r.missing.length > 0) failure = `${file.name} holds no section for ${r.missing.map((d) => JSON.stringify(d)).join(", ")}`;
  } catch (err) {
    sql.cancel();
    await sql.done.catch(() => undefined);
    failure = `reading ${file.name} failed: ${(err as Error).message}`;
  }
  if (failure !== null) {
    const running = current as DatabaseJob | null;
    if (running !== null) settle(running, running.abort(failure));
    for (const spec of specs.filter((s) => !started.has(s.source))) {
      ctx.log.error({ database: spec.target, backup: file.name }, failure);
      outcomes.push(Promise.resolve({ spec, job: null, outcome: { status: "failed", error: `database ${JSON.stringify(spec.target)}: ${failure} (left unchanged)` } }));
    }
  }
  return outcomes;
}

export async function executeRestore(ctx: RestoreContext, req: RestoreRequest): Promise<RestoreOutcome> {
  const t0 = Date.now();
  const log = ctx.log;
  await verifyFiles(req.files, { read: readOptions(ctx), verifyKey: ctx.verifyKey, identity: ctx.identity, log: ctx.log });
  const env = writableEnv(childEnv(ctx.pg, ctx.env));
  const admin = await connectWritable(ctx.pg, ctx.pg.database, log);
  const progress = new Map<string, number>();
  const timer = setInterval(() => log.info({ bytesRead: Object.fromEntries(progress) }, "restore progress"), PROGRESS_MS);
  try {
    const states = await databaseStates(ctx.pg, admin, req.databases.map((d) => d.target), log);
    const specs: JobSpec[] = [];
    const refusals: string[] = [];
    for (const d of req.databases) {
      const action = decideTarget({ ...d, state: states.get(d.target) ?? "absent", dropExisting: req.dropExisting, lockDatabase: ctx.pg.database });
      if (action.action === "refuse") refusals.push(action.reason);
      else specs.push({ file: d.file.name, source: d.source, target: d.target, action });
    }
    if (refusals.length > 0) throw new TaskError(ExitCode.refused, `restore refused: ${refusals.join("; ")}`);
    // Exclusive (under the lock, or a private cluster): no other restore runs, so marked temporary databases are leftovers of an interrupted one.
    for (const name of ctx.exclusive ? await markedTempDatabases(admin) : []) {
      log.warn({ temp: name }, `dropping ${name}, left over by an interrupted restore`);
      await dropTemp(admin, name);
    }
    const globals = req.globals === null ? null : await applyGlobals(ctx, admin, env, req.globals, req.continueOnError);
    const statementErrors: FailedStatements[] = globals === null || globals.errors.count === 0 ? [] : [{ database: null, file: req.globals?.file.name ?? "", errors: globals.errors }];
    const jc: JobContext = { pg: ctx.pg, env, secrets: [ctx.pg.password], log, admin, dropExisting: req.dropExisting, continueOnError: req.continueOnError };
    const slots = new Slots(ctx.parallel);
    const perFile = req.files.map((f) => ({ file: f, specs: specs.filter((s) => s.file === f.name) })).filter((x) => x.specs.length > 0);
    const pending = (await Promise.all(perFile.map((x) => restoreFile(ctx, jc, x.file, x.specs, slots, progress)))).flat();
    const outcomes = await Promise.all(pending);
    clearInterval(timer);
    // Renamed into place only now that every section is in; the database holding the lock goes last.
    const isLast = (job: DatabaseJob) => job.spec.action.action === "swap" && job.spec.action.last;
    for (const s of outcomes) if (s.outcome.status === "deferred" && s.job !== null && !isLast(s.job)) s.outcome = await s.job.swap();
    for (const s of outcomes) if (s.outcome.status === "deferred" && s.job !== null) s.outcome = await swapLast(ctx, s.job, admin);
    for (const s of outcomes) {
      if (s.outcome.status === "restored" && s.outcome.statementErrors.count > 0) statementErrors.push({ database: s.spec.target, file: s.spec.file, errors: s.outcome.statementErrors });
    }
    const failed = outcomes.flatMap((s) => (s.outcome.status === "failed" ? [{ target: s.spec.target, file: s.spec.file, error: s.outcome.error }] : []));
    const restored = outcomes.flatMap((s) => (s.outcome.status === "restored" ? [s.spec.target] : []));
    if (failed.length > 0) {
      throw new RestoreFailure(
        `restore failed for ${failed.length} of ${specs.length} database(s): ${failed.map((f) => f.error).join("; ")}` +
          (restored.length > 0 ? `. Restored: ${restored.map((d) => JSON.stringify(d)).join(", ")}` : ""),
        failed.map(({ target, file }) => ({ target, file })),
        restored,
      );
    }
    return { restored, createdRoles: globals?.created ?? [], seconds: (Date.now() - t0) / 1000, statementErrors };
  } finally {
    clearInterval(timer);
    await admin.end().catch(() => undefined);
  }
}

/** Replaces the database the lock lives in, last: dropping it ends every session in it, the lock's included. */
async function swapLast(ctx: RestoreContext, job: DatabaseJob, admin: Client): Promise<JobOutcome> {
  const other = job.spec.target === "template1" ? "postgres" : "template1";
  const side = await connectWritable(ctx.pg, other, ctx.log);
  try {
    await admin.end().catch(() => undefined);
    ctx.log.warn({ database: job.spec.target }, `replacing ${job.spec.target}, where the cluster lock lives: the lock ends with it, a moment before this task does`);
    return await job.swap(side);
  } finally {
    await side.end().catch(() => undefined);
  }
}
