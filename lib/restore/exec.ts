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
import type { JobContext, JobOutcome, JobSpec } from "./database.js";
import { DatabaseJob, dropTemp } from "./database.js";
import { identityProblems } from "./decompress.js";
import { ExitCode, TaskError } from "../core/errors.js";
import { GlobalsGate, PsqlGlobals } from "./globals.js";
import { childEnv } from "../postgres/connection.js";
import type { Client } from "../postgres/connection.js";
import { decideTarget } from "./target.js";
import { restrictMode } from "./restrict.js";
import { databaseStates, markedTempDatabases } from "./targetState.js";
import { connectWritable, writableEnv } from "./writeGate.js";
import { Slots } from "./slots.js";
import { Stop } from "./stop.js";
import type { RestoreContext, RestoreOutcome, RestoreRequest } from "./context.js";
import { RestoreFailure } from "./context.js";
import type { FileJob, Settled } from "./fileRead.js";
import { readFile } from "./fileRead.js";

const PROGRESS_MS = 5000;

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
