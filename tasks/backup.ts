// backup full|differential|incremental: plan (lib/backup/plan.ts), then dump the planned
// databases through the compressor into an atomic file with sidecars and a manifest.
import { createPublicKey } from "node:crypto";
import { availableParallelism } from "node:os";
import { lstat } from "node:fs/promises";
import { join } from "node:path";
import { planBackup } from "../lib/backup/plan.js";
import type { BackupPlan } from "../lib/backup/plan.js";
import { scanCatalog, tierDir, usable } from "../lib/store/catalog.js";
import type { CatalogEntry } from "../lib/store/catalog.js";
import { checkSignature } from "../lib/store/signature.js";
import { compressorFor } from "../lib/backup/compression.js";
import { encryptorFor, sealRowCounts } from "../lib/backup/encryption.js";
import type { Config } from "../lib/config/config.js";
import type { Deps } from "../lib/core/deps.js";
import { dumpGlobals, dumpInto } from "../lib/backup/dump.js";
import type { DumpResult } from "../lib/backup/dump.js";
import { ExitCode, TaskError } from "../lib/core/errors.js";
import { databaseFingerprint, globalsFingerprint } from "../lib/backup/fingerprint.js";
import type { Fingerprint, Manifest, ManifestEncryption } from "../lib/store/manifest.js";
import { MANIFEST_FORMAT } from "../lib/store/manifest.js";
import { acquireLock } from "../lib/postgres/lock.js";
import type { HeldLock } from "../lib/postgres/lock.js";
import { MANIFEST_SUFFIX, backupName } from "../lib/store/naming.js";
import type { Tier } from "../lib/store/naming.js";
import { childEnv, connect, withClient } from "../lib/postgres/connection.js";
import type { Client } from "../lib/postgres/connection.js";
import { writeCompressed } from "../lib/backup/pipeline.js";
import { runCommand } from "../lib/core/proc.js";
import { listDatabases, serverInfo } from "../lib/postgres/server.js";
import type { DatabaseInfo } from "../lib/postgres/server.js";
import { abandonPartial, assertWritable, commitPartial, createPartial, discardPartial } from "../lib/store/storage.js";
import { updateLatestPointer } from "../lib/store/latestPointer.js";
import { TOOL } from "../lib/core/version.js";
import { mapLimit, sleep } from "../lib/core/concurrency.js";
import { shutdown } from "../lib/core/shutdown.js";
import { assertBackupDir, assertBackupDirIdentity } from "../lib/store/backupDir.js";
import { isServerGone, serverGoneError } from "../lib/postgres/vanished.js";

export interface BackupArgs {
  tier: Tier;
  force: boolean;
  dryRun: boolean;
  allowNewCluster: boolean;
}

export type BackupResult =
  | { status: "skipped"; tier: Tier; reason: string }
  | { status: "planned"; plan: BackupPlan }
  | { status: "written"; tier: Tier; name: string; path: string; manifest: Manifest; seconds: number };

const PROGRESS_MS = 5000;

async function takeFingerprint(config: Config, client: Client, dbs: readonly DatabaseInfo[], deps: Deps): Promise<Fingerprint> {
  const g = await globalsFingerprint(client);
  const parts = await mapLimit(dbs, 8, (d) => withClient(config.pg, d.name, (c) => databaseFingerprint(c, d.oid), deps.log));
  return { ...g, databases: Object.fromEntries(dbs.map((d, i) => [d.name, parts[i] as Fingerprint["databases"][string]])) };
}

export function formatBackupPlan(plan: BackupPlan): string {
  if (plan.action === "refuse") return `refused: ${plan.reason}\n`;
  if (plan.action === "skip") return `${plan.tier}: skipped: ${plan.reason}\n`;
  const lines = [`${plan.tier} backup${plan.reference ? ` (compared with ${plan.reference})` : ""}`];
  for (const n of plan.notes) lines.push(`  note: ${n}`);
  lines.push(plan.databases.length === 0 ? "  databases: none (globals only)" : "  databases:");
  for (const d of plan.databases) lines.push(`    ${JSON.stringify(d.name)}  ${d.reason}`);
  return lines.join("\n") + "\n";
}

/** One line for people on stdout; the JSON log carries the details. */
export function summarize(r: BackupResult): string {
  if (r.status === "planned") return "";
  if (r.status === "skipped") return `${r.tier}: skipped: ${r.reason}\n`;
  const m = r.manifest;
  return `${r.tier} backup written: ${r.path} (${m.included.length}/${m.databases.length} databases, ${m.compressedBytes} bytes, ${r.seconds.toFixed(1)} s)\n`;
}

/** With a signing key: which backups carry a signature of that key (their .sha256 bytes only; the data is not hashed). */
async function signedByUs(config: Config, catalog: readonly CatalogEntry[]): Promise<Set<string> | null> {
  const key = config.signing.key;
  if (key === null) return null;
  const publicKey = createPublicKey(key);
  const checked = await mapLimit(catalog, 8, async (e) => ((await checkSignature(e.path, publicKey)).ok ? [e.name] : []));
  return new Set(checked.flat());
}

export async function run(config: Config, deps: Deps, args: BackupArgs): Promise<BackupResult> {
  const log = deps.log.child({ task: "backup", tier: args.tier });
  const releasers: (() => Promise<void>)[] = [];
  try {
    if (!args.dryRun) {
      // The identity first: the write probe below would already write beside an unmounted box.
      await assertBackupDir(config.backupDir, "nothing was written");
      await assertBackupDirIdentity(config.backupDir, { metricsFile: config.metricsFile, log, create: true, fileMode: config.files.file });
      await assertWritable(config.backupDir, tierDir(config.backupDir, args.tier), config.files);
    }
    const client = await connect(config.pg, config.pg.database, log);
    releasers.push(() => client.end().catch(() => undefined));
    if (!args.dryRun) {
      const lock: HeldLock = await acquireLock(config, `backup ${args.tier}`, log);
      releasers.push(() => lock.release());
    }
    const info = await serverInfo(client);
    const dbs = await listDatabases(client);
    const catalog = usable(await scanCatalog(config.backupDir));
    const signed = await signedByUs(config, catalog);
    const fingerprint = await takeFingerprint(config, client, dbs, deps);
    const plan = planBackup({
      requested: args.tier,
      catalog,
      systemIdentifier: info.systemIdentifier,
      fingerprint,
      databasesWithObjects: Object.entries(fingerprint.databases).filter(([, d]) => (d.userObjects ?? 0) > 0).map(([name]) => name),
      force: args.force,
      allowNewCluster: args.allowNewCluster,
      signed,
    });
    if (args.dryRun) {
      deps.out(formatBackupPlan(plan));
      return { status: "planned", plan };
    }
    if (plan.action === "refuse") throw new TaskError(ExitCode.refused, `backup refused: ${plan.reason}`);
    if (plan.action === "skip") {
      log.info({ reference: plan.reference }, `skipped: no changes since ${plan.reference}`);
      return { status: "skipped", tier: plan.tier, reason: plan.reason };
    }
    for (const note of plan.notes) log.info(note);
    return await execute(config, deps, client, plan, info, dbs, fingerprint, log);
  } finally {
    for (const release of releasers.reverse()) await release();
  }
}

/**
 * The start time and a name no earlier backup holds. Names have one-second resolution, and the
 * previous holder of the cluster lock may have started in this same second (two backups of a small
 * cluster queued behind each other): renaming into its name would silently replace that backup,
 * and sidecars written before the data file would for a moment belong to the other one. So wait
 * for the next second (the manifest's startedAt must match the name, so the start moves with it).
 * Twice at most: an entry planted at the name must not block the backup (docs/security.md
 * "A shared BACKUP_DIR"), and with a clock that stands still the rename replaces it, as it always did.
 */
async function freshName(dir: string, tier: Tier, codec: Config["compression"]["codec"], encrypted: boolean, deps: Deps): Promise<{ started: Date; name: string }> {
  for (let attempt = 0; ; attempt++) {
    const started = deps.now();
    const name = backupName(tier, started, codec, encrypted);
    if (attempt === 2) return { started, name };
    const taken = await Promise.all([name, name + MANIFEST_SUFFIX].map((f) => lstat(join(dir, f)).then(() => true, () => false)));
    if (!taken.includes(true)) return { started, name };
    await sleep(1000 - (started.getTime() % 1000) + 10);
  }
}

async function execute(
  config: Config,
  deps: Deps,
  client: Client,
  plan: Extract<BackupPlan, { action: "backup" }>,
  info: Awaited<ReturnType<typeof serverInfo>>,
  dbs: readonly DatabaseInfo[],
  fingerprint: Fingerprint,
  parentLog: Deps["log"],
): Promise<BackupResult> {
  const { codec, level, threads } = config.compression;
  const dir = tierDir(config.backupDir, plan.tier);
  const recipients = config.encryption.recipients;
  const { started, name } = await freshName(dir, plan.tier, codec, recipients !== null, deps);
  const log = parentLog.child({ backup: name });
  const env = childEnv(config.pg, deps.env);
  const compressor = compressorFor(codec, level, threads, env);
  const encryptor = recipients === null ? null : encryptorFor(recipients, env);
  const filters = [compressor, encryptor].filter((f) => f !== null);
  const secrets = [config.pg.password];
  const [pgDumpVersion, globals] = await Promise.all([
    runCommand("pg_dump", ["--version"], { env }).then((v) => v.trim()),
    dumpGlobals({ env, maintenanceDb: config.pg.database, secrets }),
  ]);
  log.info(
    { databases: plan.databases.map((d) => d.name), compressor: compressor?.label ?? "none", encrypted: encryptor !== null, parent: plan.parent, pgDump: pgDumpVersion },
    `starting ${plan.tier} backup of ${plan.databases.length} database(s) with ${compressor?.label ?? "no compression"}${encryptor === null ? "" : `, encrypted to ${recipients?.length} recipient(s)`}`,
  );
  const partial = await createPartial(config.backupDir, dir, name, config.files);
  // Registered after the lock and before the dump's processes, so a signal stops those first, then removes the file.
  const unregisterPartial = shutdown.register(`partial ${partial.path}`, () => discardPartial(partial));
  const result: DumpResult = { rowCounts: {}, rawBytes: 0, dropped: [] };
  const progress = { compressedBytes: 0 };
  let current = "(globals)";
  const t0 = Date.now();
  const timer = setInterval(() => {
    const secs = (Date.now() - t0) / 1000;
    log.info(
      { database: current, rawBytes: result.rawBytes, compressedBytes: progress.compressedBytes, rawMBps: +(result.rawBytes / 1e6 / secs).toFixed(1) },
      `progress: ${(result.rawBytes / 1e6).toFixed(0)} MB dumped, ${(progress.compressedBytes / 1e6).toFixed(0)} MB written`,
    );
  }, PROGRESS_MS);
  let written;
  let sealed: ManifestEncryption | null = null;
  try {
    const opts = {
      env,
      maintenanceDb: config.pg.database,
      databases: plan.databases.map((d) => d.name),
      secrets,
      onDatabase: (d: string) => (current = d),
      databaseExists: async (d: string) => (await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [d])).rowCount !== 0,
      stallSeconds: config.dumpStallSeconds,
    };
    written = await writeCompressed((sink) => dumpInto(sink, globals, opts, result), filters, partial, env, progress);
    if (recipients !== null) sealed = await sealRowCounts(result.rowCounts, recipients, env);
  } catch (err) {
    let failure = await abandonPartial(config.backupDir, partial, err);
    unregisterPartial();
    // Judged on the error itself: abandonPartial reads any errno (ECONNRESET too) as the storage's.
    if (isServerGone(err)) failure = await serverGoneError(config.pg, "mid-dump", `The partial file ${partial.path} was removed; older backups and the latest pointer are as they were`, err, started, log);
    log.error({ err: (failure as Error).message, removed: partial.path }, "backup failed; partial file removed, nothing else changed");
    throw failure;
  } finally {
    clearInterval(timer);
  }
  const gone = new Set(result.dropped);
  for (const d of result.dropped) log.warn({ database: d }, `database "${d}" was dropped after the change check; it is not in this backup (the next backup records the drop)`);
  const finished = deps.now();
  const manifest: Manifest = {
    format: MANIFEST_FORMAT,
    tool: TOOL,
    name,
    tier: plan.tier,
    parent: plan.parent,
    startedAt: started.toISOString(),
    finishedAt: finished.toISOString(),
    serverVersion: info.version,
    pgDumpVersion,
    systemIdentifier: info.systemIdentifier,
    compression: { codec, program: compressor?.label ?? "none", level },
    rawBytes: result.rawBytes,
    compressedBytes: written.bytes,
    sha256: written.sha256,
    chunks: written.chunks,
    fingerprint,
    databases: dbs.map((d) => d.name).filter((d) => !gone.has(d)),
    included: plan.databases.map((d) => d.name).filter((d) => !gone.has(d)),
    rowCounts: sealed === null ? result.rowCounts : {},
    ...(sealed === null ? {} : { encryption: sealed }),
  };
  await commitPartial(config.backupDir, partial, manifest, config.signing.key).finally(unregisterPartial);
  const pointer = await updateLatestPointer(dir, plan.tier, codec, name, config.files.file).catch((err: unknown) => {
    log.warn({ err: (err as Error).message }, "backup written, but the latest pointer could not be updated");
    return "none";
  });
  const seconds = (Date.now() - t0) / 1000;
  log.info(
    { path: join(dir, name), rawBytes: result.rawBytes, compressedBytes: written.bytes, sha256: written.sha256, signed: config.signing.key !== null, encrypted: recipients !== null, seconds, pointer, cores: availableParallelism() },
    `${plan.tier} backup written: ${name} (${(written.bytes / 1e6).toFixed(1)} MB from ${(result.rawBytes / 1e6).toFixed(1)} MB in ${seconds.toFixed(1)} s)`,
  );
  return { status: "written", tier: plan.tier, name, path: join(dir, name), manifest, seconds };
}
