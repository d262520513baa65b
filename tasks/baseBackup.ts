// backup base: a physical base backup over the replication protocol (pg_basebackup, one tar
// on stdout) through the configured compressor (and age, with AGE_RECIPIENTS_FILE) into
// $BACKUP_DIR/base/NAME, atomically, with the .sha256 (+ .sig) and NAME.json (BaseManifest,
// format 2: with the stored file's chunk hashes) sidecars. Holds the cluster lock and refuses a
// wiped cluster exactly as the logical backups do (lib/backup/plan.ts).
import { availableParallelism } from "node:os";
import { lstat } from "node:fs/promises";
import { join } from "node:path";
import { compressorFor } from "../lib/backup/compression.js";
import { encryptorFor } from "../lib/backup/encryption.js";
import { backupFacts } from "../lib/backup/plan.js";
import type { BackupFacts } from "../lib/postgres/wipedCluster.js";
import { databasesWithObjects, judgeCluster, wipedClusterRefusal } from "../lib/postgres/wipedCluster.js";
import type { Config } from "../lib/config/config.js";
import { sleep } from "../lib/core/concurrency.js";
import type { Deps } from "../lib/core/deps.js";
import { ExitCode, TaskError } from "../lib/core/errors.js";
import type { Program } from "../lib/core/proc.js";
import { runCommand } from "../lib/core/proc.js";
import { findServerBinary } from "../lib/core/bin.js";
import { shutdown } from "../lib/core/shutdown.js";
import { TOOL } from "../lib/core/version.js";
import { pgBasebackupArgs } from "../lib/base/backup.js";
import { writeBaseBackup } from "../lib/base/baseWriter.js";
import type { WrittenBase } from "../lib/base/baseWriter.js";
import { scanBaseCatalog, usableBases } from "../lib/base/catalog.js";
import type { BaseManifest } from "../lib/physical/layout.js";
import { baseBackupName, baseDir } from "../lib/physical/layout.js";
import { childEnv, connect } from "../lib/postgres/connection.js";
import type { Client } from "../lib/postgres/connection.js";
import { acquireLock } from "../lib/postgres/lock.js";
import { listDatabases, serverInfo } from "../lib/postgres/server.js";
import { scanCatalog, usable } from "../lib/store/catalog.js";
import { MANIFEST_SUFFIX } from "../lib/store/naming.js";
import { abandonPartial, assertWritable, commitPartial, createPartial, discardPartial } from "../lib/store/storage.js";
import { assertBackupDir, assertBackupDirIdentity } from "../lib/store/backupDir.js";

export interface BaseBackupArgs {
  dryRun: boolean;
  allowNewCluster: boolean;
}

export type BaseBackupResult = { status: "planned"; text: string } | { status: "written"; name: string; path: string; manifest: BaseManifest; seconds: number };

const PROGRESS_MS = 5000;

interface Replication {
  walSegmentSize: number;
  /** Why the role cannot replicate or no sender is free, or null. Checked before anything is written. */
  problem: string | null;
}

const REPLICATION_SQL = `
  SELECT (SELECT setting::int8 FROM pg_settings WHERE name = 'wal_segment_size') AS segsize,
         (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user) AS may,
         current_setting('max_wal_senders')::int AS senders,
         current_setting('wal_level') AS wal_level`;

async function replication(client: Client, user: string): Promise<Replication> {
  const r = await client.query<{ segsize: string; may: boolean | null; senders: number; wal_level: string }>(REPLICATION_SQL);
  const row = r.rows[0];
  if (row === undefined) throw new Error("pg_settings returned no row");
  let problem: string | null = null;
  if (row.may !== true) problem = `the role ${user} may not start a replication connection; run ALTER ROLE ${JSON.stringify(user)} REPLICATION (or use a role that has it)`;
  else if (row.senders === 0) problem = "max_wal_senders is 0 on the server; set it to at least 2 in postgresql.conf and restart the server";
  else if (row.wal_level === "minimal") problem = "wal_level is minimal on the server; set wal_level = replica in postgresql.conf and restart the server";
  return { walSegmentSize: Number(row.segsize), problem };
}

/** Every backup of any kind (logical or base), newest first, for the wiped-cluster guard; a base backup counts as data. */
async function backupsNewestFirst(backupDir: string): Promise<BackupFacts[]> {
  const all = [
    ...usable(await scanCatalog(backupDir)).map((e) => ({ ...backupFacts(e), time: e.time })),
    ...usableBases(await scanBaseCatalog(backupDir)).map((e) => ({ name: e.name, time: e.time, systemIdentifier: e.manifest.systemIdentifier, hadData: true })),
  ];
  return all.sort((a, b) => b.time.getTime() - a.time.getTime() || b.name.localeCompare(a.name));
}

/** A start time whose name no earlier backup holds (see freshName in tasks/backup.ts: names have one-second resolution). */
async function freshName(dir: string, codec: Config["compression"]["codec"], encrypted: boolean, deps: Deps): Promise<{ started: Date; name: string }> {
  for (let attempt = 0; ; attempt++) {
    const started = deps.now();
    const name = baseBackupName(started, codec, encrypted);
    if (attempt === 2) return { started, name };
    const taken = await Promise.all([name, name + MANIFEST_SUFFIX].map((f) => lstat(join(dir, f)).then(() => true, () => false)));
    if (!taken.includes(true)) return { started, name };
    await sleep(1000 - (started.getTime() % 1000) + 10);
  }
}

export async function run(config: Config, deps: Deps, args: BaseBackupArgs): Promise<BaseBackupResult> {
  const log = deps.log.child({ task: "backup", tier: "base" });
  const releasers: (() => Promise<void>)[] = [];
  try {
    if (!args.dryRun) {
      await assertBackupDir(config.backupDir, "nothing was written");
      await assertBackupDirIdentity(config.backupDir, { metricsFile: config.metricsFile, log, create: true, fileMode: config.files.file });
      await assertWritable(config.backupDir, baseDir(config.backupDir), config.files);
    }
    const client = await connect(config.pg, config.pg.database, log);
    releasers.push(() => client.end().catch(() => undefined));
    if (!args.dryRun) {
      const lock = await acquireLock(config, "backup base", log);
      releasers.push(() => lock.release());
    }
    const env = childEnv(config.pg, deps.env);
    // The catalog scan overlaps the queries: this is the fixed cost every run pays before pg_basebackup starts.
    const queries = async () => {
      const info = await serverInfo(client);
      const repl = await replication(client, config.pg.user);
      return { info, repl, withObjects: await databasesWithObjects(config.pg, await listDatabases(client), new Set(), log) };
    };
    const [{ info, repl, withObjects }, backups] = await Promise.all([queries(), backupsNewestFirst(config.backupDir)]);
    const program = findServerBinary("pg_basebackup", deps.env) ?? "pg_basebackup";
    const verdict = judgeCluster({ systemIdentifier: info.systemIdentifier, databasesWithObjects: withObjects }, backups, backups[0]);
    const refused = wipedClusterRefusal(verdict, { systemIdentifier: info.systemIdentifier, allowNewCluster: args.allowNewCluster });
    const { codec, level, threads } = config.compression;
    const compressor = compressorFor(codec, level, threads, env);
    const recipients = config.encryption.recipients;
    const encryptor = recipients === null ? null : encryptorFor(recipients, env);
    if (args.dryRun) {
      const filters = [compressor?.label ?? "no compression", ...(encryptor === null ? [] : [encryptor.label])];
      const text = [
        `base backup of cluster ${info.systemIdentifier} (PostgreSQL ${info.version}, wal_segment_size ${repl.walSegmentSize})`,
        `  pg_basebackup ${pgBasebackupArgs(config.baseBackup.checkpoint).map(shown).join(" ")} | ${filters.join(" | ")}`,
        `  into ${join(baseDir(config.backupDir), baseBackupName(deps.now(), codec, encryptor !== null))} (+ .sha256${config.signing.key === null ? "" : ", .sha256.sig"}, .json)`,
        ...(refused !== null ? [`  refused: ${refused}`] : []),
        ...(repl.problem !== null ? [`  would fail: ${repl.problem}`] : []),
      ].join("\n");
      deps.out(text + "\n");
      return { status: "planned", text };
    }
    if (refused !== null) throw new TaskError(ExitCode.refused, `backup refused: ${refused}`);
    if (repl.problem !== null) throw new TaskError(ExitCode.database, `backup base: ${repl.problem}; nothing was written`);
    return await execute(config, deps, { info, walSegmentSize: repl.walSegmentSize, env, program, compressor, encryptor }, log);
  } finally {
    for (const release of releasers.reverse()) await release();
  }
}

interface Prepared {
  info: Awaited<ReturnType<typeof serverInfo>>;
  walSegmentSize: number;
  env: NodeJS.ProcessEnv;
  /** pg_basebackup's path. */
  program: string;
  compressor: Program | null;
  /** age, with AGE_RECIPIENTS_FILE. */
  encryptor: Program | null;
}

async function execute(config: Config, deps: Deps, p: Prepared, parentLog: Deps["log"]): Promise<BaseBackupResult> {
  const { codec, level } = config.compression;
  const dir = baseDir(config.backupDir);
  const { started, name } = await freshName(dir, codec, p.encryptor !== null, deps);
  const log = parentLog.child({ backup: name });
  // Only the manifest needs the version: asked beside the backup, not before it.
  const version = runCommand(p.program, ["--version"], { env: p.env }).then((v) => v.trim());
  version.catch(() => undefined);
  const filters = [p.compressor, p.encryptor].filter((f): f is Program => f !== null);
  const label = filters.length === 0 ? "no compression" : filters.map((f) => f.label).join(" | ");
  log.info({ compressor: p.compressor?.label ?? "none", encrypted: p.encryptor !== null, checkpoint: config.baseBackup.checkpoint, pgBasebackup: p.program }, `starting base backup with ${label}`);
  const partial = await createPartial(config.backupDir, dir, name, config.files);
  const unregisterPartial = shutdown.register(`partial ${partial.path}`, () => discardPartial(partial));
  let storedBytes = 0;
  const t0 = Date.now();
  const timer = setInterval(() => {
    const secs = (Date.now() - t0) / 1000;
    log.info({ storedBytes, storedMBps: +(storedBytes / 1e6 / secs).toFixed(1) }, `progress: ${(storedBytes / 1e6).toFixed(0)} MB written`);
  }, PROGRESS_MS);
  let written: WrittenBase;
  let pgBasebackupVersion: string;
  try {
    written = await writeBaseBackup(partial, { program: p.program, env: p.env, pg: config.pg, checkpoint: config.baseBackup.checkpoint, secrets: [config.pg.password], filters, onBytes: (n) => (storedBytes += n) });
    pgBasebackupVersion = await version;
  } catch (err) {
    const failure = await abandonPartial(config.backupDir, partial, err);
    unregisterPartial();
    log.error({ err: (failure as Error).message, removed: partial.path }, "base backup failed; partial file removed, nothing else changed");
    throw failure;
  } finally {
    clearInterval(timer);
  }
  const { range } = written;
  const manifest: BaseManifest = {
    format: 2,
    kind: "base",
    tool: TOOL,
    name,
    startedAt: started.toISOString(),
    finishedAt: deps.now().toISOString(),
    startLsn: range.startLsn,
    stopLsn: range.stopLsn,
    timeline: range.timeline,
    walSegmentSize: p.walSegmentSize,
    systemIdentifier: p.info.systemIdentifier,
    serverVersion: p.info.version,
    pgBasebackupVersion,
    compression: { codec, program: p.compressor?.label ?? "none", level },
    rawBytes: null,
    compressedBytes: written.bytes,
    sha256: written.sha256,
    chunks: written.chunks,
    ...(config.encryption.recipients === null ? {} : { encryption: { tool: "age" as const, recipients: [...config.encryption.recipients] } }),
    backupManifestSha256: null,
  };
  await commitPartial(config.backupDir, partial, manifest, config.signing.key).finally(unregisterPartial);
  const seconds = (Date.now() - t0) / 1000;
  log.info(
    { path: join(dir, name), storedBytes: written.bytes, sha256: written.sha256, chunks: written.chunks.sha256.length, startLsn: range.startLsn, stopLsn: range.stopLsn, timeline: range.timeline, encrypted: p.encryptor !== null, signed: config.signing.key !== null, seconds, cores: availableParallelism() },
    `base backup written: ${name} (${(written.bytes / 1e6).toFixed(1)} MB in ${seconds.toFixed(1)} s, WAL ${range.startLsn}..${range.stopLsn} on timeline ${range.timeline})`,
  );
  return { status: "written", name, path: join(dir, name), manifest, seconds };
}

/** One line for people on stdout. */
export function summarizeBase(r: BaseBackupResult): string {
  if (r.status === "planned") return "";
  const m = r.manifest;
  return `base backup written: ${r.path} (${m.compressedBytes} bytes, WAL ${m.startLsn}..${m.stopLsn} on timeline ${m.timeline}, ${r.seconds.toFixed(1)} s)\n`;
}

/** An argument as a shell would need it, for the --dry-run text only (nothing is run through a shell). */
function shown(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`;
}
