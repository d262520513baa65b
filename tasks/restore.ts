// restore-latest | restore-full | restore-database: decide what to restore (lib/restore/plan.ts,
// lib/restore/request.ts), then, holding the cluster lock, execute it (lib/restore/exec.ts).
import type { Config } from "../lib/config/config.js";
import type { Deps } from "../lib/core/deps.js";
import { decryptionProblem, openSqlStream } from "../lib/restore/decompress.js";
import { ExitCode, TaskError } from "../lib/core/errors.js";
import { acquireLock } from "../lib/postgres/lock.js";
import type { Logger } from "../lib/core/log.js";
import { childEnv, withClient } from "../lib/postgres/connection.js";
import { catalogWithMirror, ensureLocal, mirrorFetcher } from "../lib/s3/mirrorFallback.js";
import { scanCatalog } from "../lib/store/catalog.js";
import { resolveFile } from "../lib/store/resolveFile.js";
import { assertBackupDir, assertBackupDirIdentity } from "../lib/store/backupDir.js";
import type { ResolvedFile } from "../lib/store/resolveFile.js";
import { executeRestore } from "../lib/restore/exec.js";
import { restoreContext } from "../lib/restore/context.js";
import type { RestoreOutcome, RestoreRequest } from "../lib/restore/context.js";
import { formatPlan, planRestore } from "../lib/restore/plan.js";
import type { RestorePlan } from "../lib/restore/plan.js";
import { databaseRequest, fromResolved, fullRequest, latestRequest } from "../lib/restore/request.js";
import { listSections } from "../lib/sql/sections.js";
import { formatStatementErrors } from "../lib/restore/statementErrors.js";
import { LIFT_BY_HAND, gateIsSet } from "../lib/restore/writeGate.js";

export type RestoreArgs = { dropExisting: boolean; continueOnError?: boolean } & (
  | { command: "restore-latest"; at?: string; dryRun: boolean }
  | { command: "restore-full"; file: string }
  | { command: "restore-database"; file: string; db: string; as?: string }
);

export type RestoreResult = { status: "planned"; plan: RestorePlan } | ({ status: "restored" } & RestoreOutcome);

/** Takes the cluster lock for the whole restore. */
async function restoreLocked(config: Config, deps: Deps, log: Logger, args: RestoreArgs, request: RestoreRequest): Promise<RestoreOutcome> {
  const lock = await acquireLock(config, args.command, log);
  let outcome: RestoreOutcome;
  try {
    outcome = await executeRestore(restoreContext(config, deps.env, log), { ...request, continueOnError: args.continueOnError === true });
  } finally {
    await lock.release();
  }
  // Restores pass the write gate per session; opening it for applications is a separate, deliberate step.
  if (await withClient(config.pg, config.pg.database, gateIsSet, log)) {
    log.warn(`the write gate is still set (new sessions are read-only); when the cluster is ready for applications: ${LIFT_BY_HAND}`);
  }
  return outcome;
}

function parseAt(at: string | undefined): Date | undefined {
  if (at === undefined) return undefined;
  const date = new Date(at);
  if (Number.isNaN(date.getTime())) throw new TaskError(ExitCode.usage, `--at ${JSON.stringify(at)} is not a date; use ISO 8601, e.g. 2024-01-10T12:00:00Z`);
  return date;
}

/** The databases of a file: its manifest's list, or the sections found by streaming a file without one. */
async function databasesOf(config: Config, deps: Deps, f: ResolvedFile): Promise<string[]> {
  if (f.manifest !== null) return f.manifest.included;
  const sql = openSqlStream(fromResolved(f), { threads: config.compression.threads, env: childEnv(config.pg, deps.env), identity: config.encryption.identity });
  try {
    const r = await listSections(sql.stream);
    await sql.done;
    if (!r.clusterTrailer) throw new Error("it ends without its \"cluster dump complete\" trailer (truncated)");
    return r.databases;
  } catch (err) {
    sql.cancel();
    const failure = (await sql.cause) ?? err;
    const why = decryptionProblem(f, config.encryption.identity, failure) ?? `cannot use ${f.path}: ${(failure as Error).message}`;
    throw new TaskError(ExitCode.refused, `restore refused, nothing was changed: ${why}`, { cause: failure });
  }
}

function summary(outcome: RestoreOutcome, from: string): string {
  const roles = outcome.createdRoles.length > 0 ? `, ${outcome.createdRoles.length} role(s) created` : "";
  return `restored ${outcome.restored.length} database(s) from ${from} in ${outcome.seconds.toFixed(1)} s${roles}: ${outcome.restored.map((d) => JSON.stringify(d)).join(", ")}\n`;
}

/** Prints the summary; a restore with failed statements (--continue-on-error) lists them and is exit 10, never 0. */
function report(deps: Deps, log: Logger, outcome: RestoreOutcome, from: string): RestoreResult {
  deps.out(summary(outcome, from));
  const failed = outcome.statementErrors.reduce((n, f) => n + f.errors.count, 0);
  if (failed === 0) return { status: "restored", ...outcome };
  deps.out(formatStatementErrors(outcome.statementErrors));
  for (const f of outcome.statementErrors) log.warn({ database: f.database, backup: f.file, failed: f.errors.count }, "statements failed and were skipped (--continue-on-error)");
  throw new TaskError(
    ExitCode.partialRestore,
    `restore finished with ${failed} failed statement(s) in ${outcome.statementErrors.length} part(s) (listed above); everything else was restored — check the listed objects before using the databases`,
  );
}

export async function run(config: Config, deps: Deps, args: RestoreArgs): Promise<RestoreResult> {
  const log = deps.log.child({ task: args.command });
  // A FILE given as a path needs no BACKUP_DIR; everything else reads or downloads into it.
  if (args.command === "restore-latest" || !args.file.includes("/")) {
    await assertBackupDir(config.backupDir, "nothing was restored");
    await assertBackupDirIdentity(config.backupDir, { metricsFile: config.metricsFile, log, create: false, fileMode: config.files.file });
  }
  if (args.command === "restore-latest") {
    const at = parseAt(args.at);
    // Trusted: with a verify key, no manifest steers the plan before its signature verified.
    const trust = { verifyKey: config.signing.verifyKey };
    let catalog = await catalogWithMirror(config, log, trust);
    let plan = planRestore(catalog, at === undefined ? {} : { at });
    if (args.dryRun) {
      deps.out(formatPlan(plan));
      return { status: "planned", plan };
    }
    // Files fetched from the mirror are planned again from their own sidecars, now local.
    if ((await ensureLocal(config, plan.steps.map((st) => ({ name: st.file, path: st.path })), log)) > 0) {
      catalog = await scanCatalog(config.backupDir, trust);
      plan = planRestore(catalog, at === undefined ? {} : { at });
    }
    for (const w of plan.warnings) log.warn(w);
    log.info({ chain: plan.chain, databases: plan.databases, dropped: plan.dropped }, `restoring to ${plan.point}`);
    const outcome = await restoreLocked(config, deps, log, args, latestRequest(plan, catalog, args.dropExisting));
    return report(deps, log, outcome, plan.chain.join(" -> "));
  }
  const f = await resolveFile(config.backupDir, args.file, mirrorFetcher(config, log), config.signing.verifyKey);
  // A seed-era file has no manifest and is read as it is; one whose sidecars are broken, forged or unsigned (with a verify key) is not.
  if (f.trustProblem !== null) throw new TaskError(ExitCode.refused, `restore refused, nothing was changed: ${f.trustProblem}`);
  const request =
    args.command === "restore-full"
      ? fullRequest(f, await databasesOf(config, deps, f), args.dropExisting)
      : databaseRequest(f, args.db, args.as, args.dropExisting);
  const outcome = await restoreLocked(config, deps, log, args, request);
  return report(deps, log, outcome, f.name);
}
