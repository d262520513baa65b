// verify [--json] [--max-age HOURS] [--restore]: a proof a CI pipeline can trust by exit
// code. Checks every file's manifest and checksum and every chain's links, with
// BACKUP_VERIFY_KEY_FILE the signatures of the newest chain, reads that chain back through
// its decompressor, checks the backups are fresh, and with --restore restores that chain
// into a throwaway cluster with the restore executor (no cluster lock: the production
// cluster is not touched) and compares row counts with the manifests. Each file is read once:
// the newest chain's files are checked chunk by chunk in the read that decompresses (and with
// --restore, restores) them. The physical tier, when there is one, is checked after that
// (lib/verify/physical.ts).
// The decisions are in lib/verify/checks.ts; this file reads, times and reports.
import { scanCatalog } from "../lib/store/catalog.js";
import type { CatalogEntry } from "../lib/store/catalog.js";
import { verifyChecksum } from "../lib/store/checksum.js";
import { readTrusted } from "../lib/store/trust.js";
import type { Config, PgConfig } from "../lib/config/config.js";
import type { Deps } from "../lib/core/deps.js";
import { ConfigError, ExitCode, TaskError } from "../lib/core/errors.js";
import { humanBytes } from "../lib/core/format.js";
import type { Logger } from "../lib/core/log.js";
import { recordTaskResult } from "../lib/core/metrics.js";
import { planRestore } from "../lib/restore/plan.js";
import type { RestorePlan } from "../lib/restore/plan.js";
import { ageFindings, chainFindings, fail, family, manifestFindings, pass, restoredRowFindings, resultsByName, signatureFindings, streamFindings } from "../lib/verify/checks.js";
import type { Check, Finding, StreamScan } from "../lib/verify/checks.js";
import { countRestoredRows, restoreChainForVerify } from "../lib/verify/restore.js";
import type { ChainRestore } from "../lib/verify/restore.js";
import { StreamObserver, scanBackup, sourceOf } from "../lib/verify/stream.js";
import type { RestoreFile } from "../lib/restore/context.js";
import { exposedTo, taskSecrets } from "../lib/verify/exposure.js";
import { scratchServerUser } from "../lib/verify/scratchCluster.js";
import { openManifest } from "../lib/backup/encryption.js";
import { identityProblems } from "../lib/restore/decompress.js";
import { openRestoreTarget } from "../lib/verify/target.js";
import type { RestoreTarget } from "../lib/verify/target.js";
import { mapLimit } from "../lib/core/concurrency.js";
import { physicalChecks } from "../lib/verify/physical.js";

export interface VerifyArgs {
  json: boolean;
  /** Limit for the newest backup of any tier; default lib/verifyChecks DEFAULT_MAX_AGE_HOURS. */
  maxAgeHours?: number;
  restore: boolean;
  /** VERIFY_PGHOST's server (lib/verifyTarget verifyServerConfig); null: a scratch cluster in the task. */
  server: PgConfig | null;
}

export interface VerifyReport {
  ok: boolean;
  checks: Check[];
  durationMs: number;
}

/** Hashing is disk-bound; two files at a time keeps a storage box busy without thrashing it. */
const HASH_CONCURRENCY = 2;

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

class Collector {
  readonly checks: Check[] = [];
  constructor(private readonly log: Logger) {}

  /** Runs one step; each of its findings carries the step's duration. */
  async step(fn: () => Finding[] | Promise<Finding[]>): Promise<Finding[]> {
    const t0 = Date.now();
    const findings = await fn();
    const durationMs = Date.now() - t0;
    for (const f of findings) {
      this.checks.push({ ...f, durationMs });
      if (!f.ok) this.log.error({ check: f.name, backup: f.file, figures: f.figures }, `FAIL ${f.name}: ${f.message}`);
    }
    return findings;
  }
}

/** The checksum family: `entries` hashed here, plus the results of files already checked in another read. */
async function checksums(entries: readonly CatalogEntry[], checked: readonly { file: string; problem: string | null }[] = []): Promise<Finding[]> {
  const results = await mapLimit(entries, HASH_CONCURRENCY, async (e) => {
    const verdict = await verifyChecksum(e.path, e.manifest?.sha256).catch((err: unknown) => ({ ok: false as const, problem: `${e.name}: ${message(err)}` }));
    return { file: e.name, problem: verdict.ok ? null : verdict.problem };
  });
  const bytes = entries.reduce((a, e) => a + e.bytes, 0);
  const all = [...results, ...checked];
  return family("checksum", all, `${all.length} files (${humanBytes(bytes)} hashed, ${checked.length} checked as they were read back) match their .sha256 sidecars and manifests`, { bytes });
}


function planFindings(catalog: readonly CatalogEntry[]): { plan: RestorePlan | null; findings: Finding[] } {
  try {
    const plan = planRestore(catalog, {});
    const figures = { files: plan.chain.length, databases: Object.keys(plan.databases).length };
    const chain = plan.chain.join(" -> ");
    return {
      plan,
      findings: [
        plan.warnings.length === 0
          ? pass("restore-plan", `newest chain: ${chain}`, figures, plan.point)
          : fail("restore-plan", `the newest backup cannot be restored: ${plan.warnings.join("; ")}`, figures, plan.point),
      ],
    };
  } catch (err) {
    return { plan: null, findings: [fail("restore-plan", message(err))] };
  }
}

/** Why the scratch cluster may not run this chain's SQL (unsigned, beside a secret it could read), or null. */
async function exposureProblem(config: Config, env: NodeJS.ProcessEnv, server: PgConfig | null): Promise<string | null> {
  if (config.signing.verifyKey !== null || server !== null) return null;
  const self = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
  const exposed = exposedTo(await taskSecrets(env), await scratchServerUser(env), self);
  if (exposed.length === 0) return null;
  return (
    `not attempted: the newest chain is unsigned (BACKUP_VERIFY_KEY_FILE is not set), and the scratch cluster would run its SQL as a superuser beside secrets it could read ` +
    `(${exposed.join(", ")}; COPY … TO PROGRAM runs commands as the server's user). Unsigned SQL never runs beside a secret: sign the backups and set BACKUP_VERIFY_KEY_FILE, or restore into another server with VERIFY_PGHOST`
  );
}

/** The restore of the newest chain into the target; returns the stream scans of the files it read (counted in its own read). */
async function restoreStep(config: Config, deps: Deps, args: VerifyArgs, plan: RestorePlan, catalog: readonly CatalogEntry[], c: Collector, log: Logger): Promise<Map<string, StreamScan>> {
  const scans = new Map<string, StreamScan>();
  let t: RestoreTarget;
  try {
    t = await openRestoreTarget(args.server, deps.env, log);
  } catch (err) {
    await c.step(() => [fail("restore", `cannot prepare the restore target: ${message(err)}`, {}, plan.point)]);
    return scans;
  }
  try {
    let restored: ChainRestore = { databases: [], roles: 0, failure: null, reads: [] };
    const observers = new Map<string, StreamObserver>();
    const observe = (file: RestoreFile) => {
      const o = new StreamObserver();
      observers.set(file.name, o);
      return o.events;
    };
    await c.step(async () => {
      restored = await restoreChainForVerify(config, deps.env, log, plan, catalog, t, observe);
      const figures = { databases: restored.databases.length, roles: restored.roles };
      return [
        restored.failure === null
          ? pass("restore", `restored ${restored.databases.length} databases of ${plan.chain.join(" -> ")} into the ${t.label}`, figures, plan.point)
          : fail("restore", `restore into the ${t.label} failed: ${restored.failure.message}`, figures, restored.failure.file ?? plan.point),
      ];
    });
    // A file the restore read to its end was checked and counted in that read; any other is scanned on its own.
    for (const r of restored.reads) {
      const o = observers.get(r.file);
      if (o !== undefined && r.sections !== null) scans.set(r.file, o.scan(r.sections, null));
    }
    if (restored.databases.length === 0) return scans;
    const manifests = new Map(catalog.map((e) => [e.name, e.manifest]));
    await c.step(async () =>
      restoredRowFindings(await countRestoredRows(t, restored.databases, (db) => manifests.get(db.provider)?.rowCounts[db.name] ?? {}, log)),
    );
  } finally {
    await t.release();
  }
  return scans;
}

/** The newest chain's entries read through their sidecars (with a verify key, signature first), their sealed row counts opened. */
async function trustedChain(config: Config, deps: Deps, chain: readonly CatalogEntry[]): Promise<{ entries: CatalogEntry[]; problems: { file: string; problem: string | null }[] }> {
  const key = config.signing.verifyKey;
  const read = await mapLimit(chain, HASH_CONCURRENCY, async (e) => ({ e, t: await readTrusted(e.path, e.name, key, true) }));
  const entries: CatalogEntry[] = [];
  const problems: { file: string; problem: string | null }[] = [];
  for (const { e, t } of read) {
    problems.push({ file: e.name, problem: t.ok ? null : t.problem });
    if (t.ok && t.manifest !== null) entries.push({ ...e, manifest: await openManifest(t.manifest, config.encryption.identity, deps.env), expect: t.expect });
  }
  return { entries, problems };
}

async function collect(config: Config, deps: Deps, args: VerifyArgs, c: Collector, log: Logger): Promise<void> {
  let catalog: CatalogEntry[] = [];
  const [head] = await c.step(async () => {
    try {
      catalog = await scanCatalog(config.backupDir);
    } catch (err) {
      return [fail("catalog", `cannot read BACKUP_DIR=${config.backupDir}: ${message(err)}; check the storage box mount and permissions`)];
    }
    const usable = catalog.filter((e) => e.problem === null).length;
    return catalog.length === 0
      ? [fail("catalog", `no backups in BACKUP_DIR=${config.backupDir}; is the storage box mounted? Run \`backup full\` to make the first one`)]
      : [pass("catalog", `${catalog.length} backups, ${usable} usable`, { backups: catalog.length, usable })];
  });
  if (head?.ok !== true) return;
  await c.step(() => manifestFindings(catalog));
  await c.step(() => chainFindings(catalog));
  await c.step(() => ageFindings(catalog, deps.now(), args.maxAgeHours));
  const { plan, findings } = planFindings(catalog);
  await c.step(() => findings);
  if (plan === null) {
    await c.step(() => checksums(catalog));
    if (args.restore) await c.step(() => [fail("restore", "not attempted: there is no restorable chain (see restore-plan)")]);
    return;
  }
  // Encrypted files need AGE_IDENTITY_FILE to be read back; without the right one nothing below can be proven.
  const keyProblems = identityProblems(
    plan.chain.map((name) => sourceOf(catalog.find((e) => e.name === name) as CatalogEntry)),
    config.encryption.identity,
  );
  if (keyProblems.length > 0) throw new TaskError(ExitCode.refused, `verify cannot read the newest chain: ${keyProblems.join("; ")}`);
  // The chain as a restore would trust it: its manifests through their (signed) checksums, opened.
  const trusted = await trustedChain(config, deps, plan.chain.map((name) => catalog.find((e) => e.name === name) as CatalogEntry));
  if (config.signing.verifyKey !== null) await c.step(() => signatureFindings(trusted.problems));
  catalog = catalog.map((e) => trusted.entries.find((t) => t.name === e.name) ?? e);
  const chain = plan.chain.map((name) => catalog.find((e) => e.name === name) as CatalogEntry);
  const unsigned = trusted.problems.some((p) => p.problem !== null);
  const exposure = args.restore && !unsigned ? await exposureProblem(config, deps.env, args.server) : null;
  let scans = new Map<string, StreamScan>();
  if (args.restore) {
    // A forged file's SQL would run as superuser in the scratch cluster, inside this task.
    if (unsigned) {
      const why = config.signing.verifyKey !== null ? "is not signed with the key BACKUP_VERIFY_KEY_FILE checks (see signature)" : "does not match its checksums (see checksum)";
      await c.step(() => [fail("restore", `not attempted: the newest chain ${why}`)]);
    }
    else if (exposure !== null) await c.step(() => [fail("restore", exposure, {}, plan.point)]);
    else scans = await restoreStep(config, deps, args, plan, catalog, c, log);
  }
  const read = { threads: config.compression.threads, env: deps.env, identity: config.encryption.identity };
  const streamed: { file: string; problem: string | null }[] = [];
  for (const entry of chain) {
    // Not trusted (its sidecars do not verify): hashed with the other files below, never read as SQL.
    if (trusted.problems.some((p) => p.file === entry.name && p.problem !== null)) continue;
    let scan = scans.get(entry.name);
    if (scan === undefined) {
      log.info({ backup: entry.name }, `reading ${entry.name} back through its decompressor`);
      scan = await scanBackup(entry, read, log);
    }
    const found = streamFindings(entry, scan);
    streamed.push(...found.filter((f) => f.name === "checksum").map((f) => ({ file: entry.name, problem: f.message })));
    if (!scan.integrity) streamed.push({ file: entry.name, problem: null });
    await c.step(() => found.filter((f) => f.name !== "checksum"));
  }
  // Every other file is hashed on its own; the chain's were checked chunk by chunk in the read above.
  const done = new Set(streamed.map((x) => x.file));
  await c.step(() => checksums(catalog.filter((e) => !done.has(e.name)), streamed));
}

const shown = (v: unknown): string => (typeof v === "string" && /[\s"]/.test(v) ? JSON.stringify(v) : String(v));

/** One line per check — PASS/FAIL, name, file, message, figures — and a verdict line. */
export function formatReport(report: VerifyReport): string {
  const width = Math.max(...report.checks.map((c) => c.name.length), 4);
  const lines = report.checks.map((c) => {
    const figures = Object.entries(c.figures).map(([k, v]) => `${k}=${shown(v)}`).join(" ");
    const text = c.message.replace(/\s*\n\s*/g, " | ");
    return `${c.ok ? "PASS" : "FAIL"}  ${c.name.padEnd(width)}  ${c.file ?? "-"}  ${text}${figures === "" ? "" : `  (${figures})`}`;
  });
  const failed = report.checks.filter((c) => !c.ok);
  const secs = (report.durationMs / 1000).toFixed(1);
  lines.push(
    failed.length === 0
      ? `verify: OK, ${report.checks.length} checks passed in ${secs} s`
      : `verify: FAILED, ${failed.length} of ${report.checks.length} checks failed in ${secs} s: ${failed.map((c) => `${c.name}${c.file === undefined ? "" : ` (${c.file})`}`).join(", ")}`,
  );
  return lines.join("\n") + "\n";
}

export async function run(config: Config, deps: Deps, args: VerifyArgs): Promise<VerifyReport> {
  if (args.maxAgeHours !== undefined && !(Number.isFinite(args.maxAgeHours) && args.maxAgeHours >= 0)) {
    throw new ConfigError(`--max-age ${String(args.maxAgeHours)} is not a number of hours; use e.g. --max-age 26`);
  }
  const log = deps.log.child({ task: "verify" });
  const t0 = Date.now();
  const c = new Collector(log);
  log.info({ restore: args.restore, maxAgeHours: args.maxAgeHours ?? null, backupDir: config.backupDir }, "verify started");
  let report: VerifyReport | null = null;
  try {
    await collect(config, deps, args, c, log);
    await physicalChecks(config, deps.env, args.restore, (fn) => c.step(fn), log, deps.now);
    report = { ok: c.checks.every((x) => x.ok), checks: c.checks, durationMs: Date.now() - t0 };
    deps.out(args.json ? JSON.stringify(report, null, 2) + "\n" : formatReport(report));
    const failed = c.checks.filter((x) => !x.ok).length;
    if (report.ok) log.info({ checks: c.checks.length, durationMs: report.durationMs }, "verify passed");
    else log.error({ checks: c.checks.length, failed, durationMs: report.durationMs }, `verify found problems: ${failed} check(s) failed`);
    return report;
  } finally {
    if (config.metricsFile !== null) {
      await recordTaskResult(config.metricsFile, {
        task: "verify",
        ok: report?.ok ?? false,
        durationSeconds: (Date.now() - t0) / 1000,
        finishedAt: deps.now(),
        checks: resultsByName(c.checks),
      }).catch((err: unknown) => log.warn({ err: message(err) }, "verify metrics not recorded"));
    }
  }
}
