// Executes a restore: the targets checked (refusing before anything changes), then every file
// read once, from one descriptor, checked chunk by chunk as it is read (lib/store/verifiedRead.ts),
// through age and its decompressor into psql, which restricts itself (lib/restore/restrict.ts).
// The globals file's roles and tablespaces are applied as its first part is read; every other
// file waits for them, since sections need their roles. Each database's section goes to its own
// job (lib/restore/database.ts), up to `parallel` at once, under a temporary name; the
// temporary databases are renamed into place only once every file was read to its end and
// every section is in. A file whose bytes are not the ones recorded (a chunk that does not
// match, a whole-file hash at the end, age's authentication) stops the whole restore: nothing
// is renamed into place, every temporary database is dropped, exit 4.
// The caller holds the cluster lock; verify, restoring into a scratch cluster or scratch
// databases, takes none (RestoreContext.exclusive).
import type { KeyObject } from "node:crypto";
import { availableParallelism } from "node:os";
import type { Config, PgConfig } from "../config/config.js";
import type { JobContext, JobOutcome, JobSpec, StatementErrors } from "./database.js";
import { DatabaseJob, dropTemp } from "./database.js";
import { decryptionProblem, identityProblems, openSqlStream } from "./decompress.js";
import type { ReadOptions, SqlSource, SqlStream } from "./decompress.js";
import type { AgeIdentity } from "../keys/ageIdentity.js";
import { ExitCode, TaskError } from "../core/errors.js";
import type { GlobalsMode } from "./globalsFilter.js";
import type { GlobalsSink } from "./globals.js";
import { PsqlGlobals } from "./globals.js";
import type { Logger } from "../core/log.js";
import { childEnv } from "../postgres/connection.js";
import type { Client } from "../postgres/connection.js";
import { decideTarget } from "./target.js";
import { readSections } from "../sql/sections.js";
import type { SectionEvents, SectionsResult } from "../sql/splitter.js";
import { printedName } from "../sql/sections.js";
import { IntegrityError } from "../store/verifiedRead.js";
import { restrictMode } from "./restrict.js";
import { databaseStates, markedTempDatabases } from "./targetState.js";
import { connectWritable, writableEnv } from "./writeGate.js";
import { Slots } from "./slots.js";

export type RestoreFile = SqlSource;

export interface RestoreRequest {
  files: RestoreFile[];
  /** Whose globals to apply and how; `sink` replaces the psql that applies them (verify's stand-in roles). */
  globals: { file: RestoreFile; mode: GlobalsMode; sink?: GlobalsSink } | null;
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
  /** BACKUP_VERIFY_KEY_FILE: the request's files come from a trusted scan with it, so every byte read is signed. null: unsigned content. */
  verifyKey: KeyObject | null;
  /** AGE_IDENTITY_FILE: decrypts encrypted files; null: an encrypted file is refused before anything is touched. */
  identity: AgeIdentity | null;
  /** Sees every section of each file as the restore reads it (verify counts rows in the same read). */
  observe?: (file: RestoreFile) => SectionEvents;
}

/** How the files of a restore are read: its cores for the decompressor, its identity for age. */
export function readOptions(ctx: Pick<RestoreContext, "threads" | "pg" | "env" | "identity">): ReadOptions {
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
  /** What each file's read found: its sections, and how many of its bytes were read (once each). */
  reads: { file: string; sections: SectionsResult | null; bytesRead: number }[];
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

interface Settled {
  spec: JobSpec;
  job: DatabaseJob | null;
  outcome: JobOutcome;
}

/** What stops the whole restore: a file that is not what was recorded (exit 4), or roles that could not be applied. */
class Stop {
  error: TaskError | null = null;
  /** The file was not the one recorded: nothing may be renamed into place. */
  tampered = false;
  readonly streams: SqlStream[] = [];
  stop(error: TaskError, tampered: boolean): void {
    if (this.error !== null) return;
    [this.error, this.tampered] = [error, tampered];
    for (const s of this.streams) s.cancel();
  }
}

/** Why a read failed, and whether it proves the file is not the recorded one (integrity) or just could not be read. */
function readFailure(file: RestoreFile, identity: AgeIdentity | null, err: unknown): { integrity: boolean; message: string } {
  if (err instanceof IntegrityError) return { integrity: true, message: err.message };
  const undecryptable = decryptionProblem(file, identity, err);
  if (undecryptable !== null) return { integrity: true, message: undecryptable };
  return { integrity: false, message: `reading ${file.name} failed: ${(err as Error).message}` };
}

/** The globals, applied once by the globals file's reader; every other file's reader waits for them. */
class GlobalsGate {
  private result: ReturnType<GlobalsSink["finish"]> | null = null;
  private settle!: { resolve: () => void; reject: (err: unknown) => void };
  /** Settles when the globals are applied (or failed, or the globals file could not be read). */
  readonly ready: Promise<void>;

  constructor(readonly sink: GlobalsSink | null) {
    this.ready = new Promise<void>((resolve, reject) => (this.settle = { resolve, reject }));
    this.ready.catch(() => undefined);
    if (sink === null) this.settle.resolve();
  }

  /** The globals file reached its first section or its end: psql applies what it was given. */
  finish(): ReturnType<GlobalsSink["finish"]> {
    if (this.result === null) {
      this.result = (this.sink as GlobalsSink).finish();
      this.result.then(() => this.settle.resolve(), (err: unknown) => this.settle.reject(err));
    }
    return this.result;
  }

  /** The globals file failed before its globals were applied. */
  fail(err: unknown): void {
    this.sink?.kill();
    this.settle.reject(err);
  }

  applied(): ReturnType<GlobalsSink["finish"]> | null {
    return this.result;
  }
}

interface FileJob {
  file: RestoreFile;
  specs: JobSpec[];
  /** The file whose globals are applied. */
  globals: boolean;
}

/** Reads one file once, handing each wanted section to its job; returns every job's outcome (promises: jobs finish after the reader moves on). */
async function readFile(ctx: RestoreContext, jc: JobContext, x: FileJob, slots: Slots, stop: Stop, gate: GlobalsGate, reads: RestoreOutcome["reads"]): Promise<Promise<Settled>[]> {
  const { file, specs } = x;
  const bySource = new Map(specs.map((s) => [printedName(s.source), s]));
  const outcomes: Promise<Settled>[] = [];
  const settle = (job: DatabaseJob, p: Promise<JobOutcome>) => outcomes.push(p.then((outcome) => ({ spec: job.spec, job, outcome })).finally(() => slots.give()));
  const started = new Set<string>();
  const seen = ctx.observe?.(file) ?? {};
  let current: DatabaseJob | null = null;
  const read = { file: file.name, sections: null as SectionsResult | null, bytesRead: 0 };
  reads.push(read);
  let sql: SqlStream | null = null;
  let failure: string | null = null;
  try {
    if (!x.globals) await gate.ready;
    sql = openSqlStream(file, readOptions(ctx));
    stop.streams.push(sql);
    const sections = await readSections(sql.stream, {
      onGlobals: async (chunk) => {
        await seen.onGlobals?.(chunk);
        if (x.globals) await gate.sink?.push(chunk);
      },
      onDatabaseStart: async (name) => {
        if (x.globals) await gate.finish();
        await seen.onDatabaseStart?.(name);
        const spec = bySource.get(name);
        if (spec === undefined) return;
        started.add(spec.source);
        await slots.take();
        current = new DatabaseJob(jc, spec);
        await current.begin();
      },
      onDatabaseData: async (name, chunk) => {
        await seen.onDatabaseData?.(name, chunk);
        if (bySource.has(name)) await current?.feed(chunk);
      },
      onDatabaseEnd: async (name, complete) => {
        await seen.onDatabaseEnd?.(name, complete);
        if (!bySource.has(name)) return;
        const job = current as DatabaseJob;
        current = null;
        settle(job, job.endInput(complete));
      },
    });
    await sql.done;
    // A read cancelled because another file stopped the restore ends early without an error: it is no complete read.
    if (stop.error !== null) throw stop.error;
    read.sections = sections;
    if (x.globals) await gate.finish();
    const missing = specs.filter((s) => !started.has(s.source));
    if (missing.length > 0) failure = `${file.name} holds no section for ${missing.map((s) => JSON.stringify(s.source)).join(", ")}`;
  } catch (err) {
    sql?.cancel();
    if (err instanceof TaskError) {
      // The globals could not be applied: no database may be restored without its roles (exit 4 when psql refused a meta-command of them).
      stop.stop(err, err.exitCode === ExitCode.refused);
    } else {
      const why = readFailure(file, ctx.identity, (await sql?.cause) ?? err);
      if (why.integrity) stop.stop(new TaskError(ExitCode.refused, `restore refused: ${why.message}`), true);
      failure = why.message;
    }
    if (x.globals) gate.fail(stop.error ?? err);
    failure = stop.error?.message ?? failure;
  } finally {
    read.bytesRead = sql?.bytesRead() ?? 0;
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

/** `reads`: filled as files are read, so a caller learns what was read also when the restore fails. */
export async function executeRestore(ctx: RestoreContext, req: RestoreRequest, reads: RestoreOutcome["reads"] = []): Promise<RestoreOutcome> {
  const t0 = Date.now();
  const log = ctx.log;
  const keyProblems = identityProblems(req.files, ctx.identity);
  if (keyProblems.length > 0) throw new TaskError(ExitCode.refused, `restore refused, nothing was changed: ${keyProblems.join("; ")}`);
  const signed = ctx.verifyKey !== null;
  const { restricted, version } = await restrictMode(ctx.env, signed);
  if (!signed) {
    log.warn({ files: req.files.map((f) => f.name) }, "restoring UNSIGNED backups (BACKUP_VERIFY_KEY_FILE is not set): anyone who can write BACKUP_DIR chose the SQL this restore runs as a superuser; psql runs restricted, so no psql meta-command of the files runs, but server-side SQL does");
  }
  if (!restricted) log.warn({ psql: version }, `psql ${version} cannot restrict itself; it runs signed content only`);
  const whole = req.files.filter((f) => f.expect.chunks === null).map((f) => f.name);
  if (whole.length > 0) log.info({ files: whole }, "written before chunk hashes: checked by their whole-file sha256 at the end of the read, before anything is renamed into place");
  const env = writableEnv(childEnv(ctx.pg, ctx.env));
  const admin = await connectWritable(ctx.pg, ctx.pg.database, log);
  const outcome: RestoreOutcome = { restored: [], createdRoles: [], seconds: 0, statementErrors: [], reads };
  const timer = setInterval(() => log.info({ bytesRead: Object.fromEntries(outcome.reads.map((r) => [r.file, r.bytesRead])) }, "restore progress"), PROGRESS_MS);
  try {
    const specs = await decide(ctx, admin, req);
    const jc: JobContext = { pg: ctx.pg, env, secrets: [ctx.pg.password], log, admin, dropExisting: req.dropExisting, continueOnError: req.continueOnError, restricted };
    const globalsFile = req.globals?.file.name ?? null;
    const sink = req.globals === null ? null : (req.globals.sink ?? new PsqlGlobals(jc, req.globals.file.name, req.globals.mode));
    const gate = new GlobalsGate(sink);
    const perFile: FileJob[] = req.files
      .map((f) => ({ file: f, specs: specs.filter((s) => s.file === f.name), globals: f.name === globalsFile }))
      .filter((x) => x.specs.length > 0 || x.globals);
    const stop = new Stop();
    const slots = new Slots(ctx.parallel);
    const pending = (await Promise.all(perFile.map((x) => readFile(ctx, jc, x, slots, stop, gate, outcome.reads)))).flat();
    const outcomes = await Promise.all(pending);
    clearInterval(timer);
    // A section that is not what pg_dump writes (psql refused a meta-command of it, or it connects elsewhere): the file was altered, so nothing of the restore is put in place.
    const tampered = outcomes.find((s) => s.outcome.status === "failed" && s.outcome.tampered === true);
    if (tampered !== undefined && stop.error === null && tampered.outcome.status === "failed") stop.stop(new TaskError(ExitCode.refused, `restore refused: ${tampered.outcome.error}`), true);
    if (stop.error !== null) {
      for (const s of outcomes) if (s.outcome.status === "deferred" && s.job !== null) s.outcome = await s.job.abort(stop.error.message);
      if (!stop.tampered) throw stop.error;
      const inPlace = outcomes.filter((s) => s.spec.action.action === "inPlace" && s.outcome.status === "restored").map((s) => s.spec.target);
      const note = inPlace.length > 0 ? `; ${inPlace.join(", ")} had been restored in place before it was found and may hold part of the backup` : "";
      throw new TaskError(ExitCode.refused, `${stop.error.message}; no database was renamed into place and the temporary databases were dropped${note}`, { cause: stop.error });
    }
    const chunked = req.files.filter((f) => f.expect.chunks !== null).length;
    log.info(
      { reads: outcome.reads.map((r) => ({ file: r.file, bytesRead: r.bytesRead })), signed },
      `${signed ? "signatures and " : ""}checksums verified for ${outcome.reads.length} file(s) as they were read, each once (${chunked} chunk by chunk, ${req.files.length - chunked} by whole-file hash)`,
    );
    const applied = await gate.applied();
    if (applied !== null && applied.errors.count > 0) outcome.statementErrors.push({ database: null, file: globalsFile ?? "", errors: applied.errors });
    await swapAll(ctx, outcomes, admin);
    return finish(outcome, outcomes, specs.length, applied?.created ?? [], t0);
  } finally {
    clearInterval(timer);
    await admin.end().catch(() => undefined);
  }
}

/** Each database's action; refuses before anything changes, and drops leftovers of an interrupted restore when exclusive. */
async function decide(ctx: RestoreContext, admin: Client, req: RestoreRequest): Promise<JobSpec[]> {
  const states = await databaseStates(ctx.pg, admin, req.databases.map((d) => d.target), ctx.log);
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
    ctx.log.warn({ temp: name }, `dropping ${name}, left over by an interrupted restore`);
    await dropTemp(admin, name);
  }
  return specs;
}

/** Renamed into place only now that every section is in; the database holding the lock goes last. */
async function swapAll(ctx: RestoreContext, outcomes: Settled[], admin: Client): Promise<void> {
  const isLast = (job: DatabaseJob) => job.spec.action.action === "swap" && job.spec.action.last;
  for (const s of outcomes) if (s.outcome.status === "deferred" && s.job !== null && !isLast(s.job)) s.outcome = await s.job.swap();
  for (const s of outcomes) if (s.outcome.status === "deferred" && s.job !== null) s.outcome = await swapLast(ctx, s.job, admin);
}

function finish(outcome: RestoreOutcome, outcomes: readonly Settled[], planned: number, createdRoles: string[], t0: number): RestoreOutcome {
  for (const s of outcomes) {
    if (s.outcome.status === "restored" && s.outcome.statementErrors.count > 0) outcome.statementErrors.push({ database: s.spec.target, file: s.spec.file, errors: s.outcome.statementErrors });
  }
  const failed = outcomes.flatMap((s) => (s.outcome.status === "failed" ? [{ target: s.spec.target, file: s.spec.file, error: s.outcome.error }] : []));
  const restored = outcomes.flatMap((s) => (s.outcome.status === "restored" ? [s.spec.target] : []));
  if (failed.length > 0) {
    throw new RestoreFailure(
      `restore failed for ${failed.length} of ${planned} database(s): ${failed.map((f) => f.error).join("; ")}` +
        (restored.length > 0 ? `. Restored: ${restored.map((d) => JSON.stringify(d)).join(", ")}` : ""),
      failed.map(({ target, file }) => ({ target, file })),
      restored,
    );
  }
  return { ...outcome, restored, createdRoles, seconds: (Date.now() - t0) / 1000 };
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
