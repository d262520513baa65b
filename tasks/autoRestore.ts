// auto-restore [--wait SECONDS]: run at every start of the stack. It waits for PostgreSQL,
// takes the cluster lock, and restores the newest chain (roles included) only into a wiped
// cluster (lib/restore/autoRestorePlan.ts); then it lifts the write gate the init hook set
// (lib/restore/writeGate.ts). Everywhere else it logs why it did nothing and exits 0.
import { decideAutoRestore } from "../lib/restore/autoRestorePlan.js";
import type { AutoRestoreDecision } from "../lib/restore/autoRestorePlan.js";
import { scanCatalog } from "../lib/store/catalog.js";
import { assertBackupDir, assertBackupDirIdentity } from "../lib/store/backupDir.js";
import { catalogWithMirror, ensureLocal } from "../lib/s3/mirrorFallback.js";
import type { Config } from "../lib/config/config.js";
import type { Deps } from "../lib/core/deps.js";
import { ExitCode, TaskError } from "../lib/core/errors.js";
import { acquireLock } from "../lib/postgres/lock.js";
import type { Logger } from "../lib/core/log.js";
import { connect } from "../lib/postgres/connection.js";
import type { Client } from "../lib/postgres/connection.js";
import { executeRestore } from "../lib/restore/exec.js";
import { restoreContext } from "../lib/restore/context.js";
import type { RestoreOutcome } from "../lib/restore/context.js";
import { planRestore } from "../lib/restore/plan.js";
import { latestRequest } from "../lib/restore/request.js";
import { listDatabases, serverInfo } from "../lib/postgres/server.js";
import { databasesWithObjects } from "../lib/postgres/wipedCluster.js";
import { markedTempDatabases } from "../lib/restore/targetState.js";
import { LIFT_BY_HAND, connectWritable, gateIsSet, liftGate } from "../lib/restore/writeGate.js";

export interface AutoRestoreArgs {
  /** Seconds to keep retrying while PostgreSQL does not accept connections yet. */
  waitSeconds: number;
}

export type AutoRestoreResult = { decision: AutoRestoreDecision; gateWasSet: boolean; gateLifted: boolean; restore: RestoreOutcome | null };

async function lift(config: Config, log: Logger): Promise<void> {
  const client = await connectWritable(config.pg, config.pg.database, log);
  try {
    await liftGate(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Databases holding a user object, less the (marked) leftovers of an interrupted restore: the one definition of data (lib/postgres/wipedCluster.ts). */
async function withObjects(config: Config, client: Client, log: Logger, limit?: number): Promise<string[]> {
  const leftovers = new Set(await markedTempDatabases(client));
  return databasesWithObjects(config.pg, await listDatabases(client), leftovers, log, limit);
}

export async function run(config: Config, deps: Deps, args: AutoRestoreArgs): Promise<AutoRestoreResult> {
  const log = deps.log.child({ task: "auto-restore" });
  await assertBackupDir(config.backupDir, "nothing was restored and the write gate stays as it is");
  await assertBackupDirIdentity(config.backupDir, { metricsFile: config.metricsFile, log, create: false, fileMode: config.files.file });
  const client = await connect(config.pg, config.pg.database, log, args.waitSeconds);
  const releasers: (() => Promise<void>)[] = [() => client.end().catch(() => undefined)];
  try {
    // This task runs every minute. A cluster with data cannot need restoring, so it is left
    // alone before the lock is even asked for: no "lock busy" exit while a backup runs.
    // This runs every minute: the first database with an object is enough.
    const live = (await withObjects(config, client, log, 1))[0];
    if (live !== undefined) {
      const decision: AutoRestoreDecision = { action: "skip", reason: `the cluster has user data (database ${JSON.stringify(live)}): it is not a wiped cluster` };
      const gateWasSet = await gateIsSet(client);
      log.info(`nothing to do: ${decision.reason}`);
      if (gateWasSet) log.warn(`the write gate is set (new sessions are read-only) on a cluster auto-restore leaves alone; if that is not intended, lift it: ${LIFT_BY_HAND}`);
      return { decision, gateWasSet, gateLifted: false, restore: null };
    }
    const lock = await acquireLock(config, "auto-restore", log);
    releasers.push(() => lock.release());
    // Decided under the lock: a second auto-restore that waited sees the first one's result.
    const info = await serverInfo(client);
    const users = await withObjects(config, client, log);
    const gateWasSet = await gateIsSet(client);
    // The mirror is listed only for a cluster that may need restoring: this task runs every minute.
    // Trusted: with a verify key, no manifest steers the decision or the plan before its signature verified.
    const trust = { verifyKey: config.signing.verifyKey };
    let catalog = users.length === 0 ? await catalogWithMirror(config, log, trust) : await scanCatalog(config.backupDir, trust);
    const decision = decideAutoRestore({ databasesWithObjects: users, systemIdentifier: info.systemIdentifier, catalog });
    const result: AutoRestoreResult = { decision, gateWasSet, gateLifted: false, restore: null };
    if (decision.action === "skip") {
      log.info({ systemIdentifier: info.systemIdentifier }, `nothing to do: ${decision.reason}`);
      if (gateWasSet) log.warn(`the write gate is set (new sessions are read-only) on a cluster auto-restore leaves alone; if that is not intended, lift it: ${LIFT_BY_HAND}`);
      return result;
    }
    if (decision.action === "fail") throw new TaskError(ExitCode.failed, `auto-restore did nothing: ${decision.reason}`);
    if (decision.action === "refuse") throw new TaskError(ExitCode.refused, `auto-restore did nothing, the write gate stays set: ${decision.reason}`);
    if (decision.action === "liftGate") {
      await lift(config, log);
      log.info({ gateWasSet }, `${decision.reason}; write gate lifted`);
      deps.out(`${decision.reason}; write gate lifted\n`);
      return { ...result, gateLifted: true };
    }
    let plan = planRestore(catalog, {});
    for (const w of plan.warnings) log.warn(w);
    log.info({ chain: plan.chain, databases: plan.databases }, `${decision.reason}: restoring ${plan.point}`);
    let outcome: RestoreOutcome;
    try {
      // Files fetched from the mirror are planned again from their own sidecars, now local.
      if ((await ensureLocal(config, plan.steps.map((st) => ({ name: st.file, path: st.path })), log)) > 0) {
        catalog = await scanCatalog(config.backupDir, trust);
        plan = planRestore(catalog, {});
      }
      outcome = await executeRestore(restoreContext(config, deps.env, log), latestRequest(plan, catalog, false));
    } catch (err) {
      log.error(`restore failed; the write gate stays set so applications cannot write into a partial restore. Fix the cause, restore with restore-latest, then lift the gate: ${LIFT_BY_HAND}`);
      throw err;
    }
    await lift(config, log);
    log.info({ restored: outcome.restored, seconds: outcome.seconds, gateWasSet }, `auto-restore done: ${outcome.restored.length} database(s) restored from ${plan.point}; write gate lifted`);
    deps.out(`restored ${outcome.restored.length} database(s) from ${plan.chain.join(" -> ")} in ${outcome.seconds.toFixed(1)} s; write gate lifted\n`);
    return { ...result, gateLifted: true, restore: outcome };
  } finally {
    for (const release of releasers.reverse()) await release();
  }
}
