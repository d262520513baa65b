// verify [--json] [--max-age HOURS] [--restore]: a proof a CI pipeline can trust by exit
// code. Checks every file's manifest and checksum and every chain's links, with
// BACKUP_VERIFY_KEY_FILE the signatures of the newest chain, reads that chain back through
// its decompressor, checks the backups are fresh, and with --restore restores that chain
// into a throwaway cluster with the restore executor (no cluster lock: the production
// cluster is not touched) and compares row counts with the manifests. The physical tier, when
// there is one, is checked after that (lib/verify/physical.ts).
// The decisions are in lib/verify/checks.ts; this file reads, times and reports.
import type { KeyObject } from "node:crypto";
import { scanCatalog } from "../lib/store/catalog.js";
import type { CatalogEntry } from "../lib/store/catalog.js";
import { verifyChecksum } from "../lib/store/checksum.js";
import { checkSignature } from "../lib/store/signature.js";
import type { Config, PgConfig } from "../lib/config/config.js";
import type { Deps } from "../lib/core/deps.js";
import { ConfigError, ExitCode, TaskError } from "../lib/core/errors.js";
import { humanBytes } from "../lib/core/format.js";
import type { Logger } from "../lib/core/log.js";
import { recordTaskResult } from "../lib/core/metrics.js";
import { planRestore } from "../lib/restore/plan.js";
import type { RestorePlan } from "../lib/restore/plan.js";
import { ageFindings, chainFindings, fail, family, manifestFindings, pass, restoredRowFindings, resultsByName, signatureFindings, streamFindings } from "../lib/verify/checks.js";
import type { Check, Finding } from "../lib/verify/checks.js";
import { countRestoredRows, restoreChainForVerify } from "../lib/verify/restore.js";
import type { ChainRestore } from "../lib/verify/restore.js";
import { scanBackup, sourceOf } from "../lib/verify/stream.js";
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

async function checksums(entries: readonly CatalogEntry[]): Promise<Finding[]> {
  const results = await mapLimit(entries, HASH_CONCURRENCY, async (e) => {
    const verdict = await verifyChecksum(e.path, e.manifest?.sha256).catch((err: unknown) => ({ ok: false as const, problem: `${e.name}: ${message(err)}` }));
    return { file: e.name, problem: verdict.ok ? null : verdict.problem };
  });
  const bytes = entries.reduce((a, e) => a + e.bytes, 0);
  return family("checksum", results, `${entries.length} files (${humanBytes(bytes)}) match their .sha256 sidecars and manifests`, { bytes });
}

async function signatureOf(e: CatalogEntry, key: KeyObject): Promise<{ file: string; problem: string | null }> {
  const v = await checkSignature(e.path, key);
  return { file: e.name, problem: v.ok ? null : v.problem };
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

async function restoreStep(config: Config, deps: Deps, args: VerifyArgs, plan: RestorePlan, catalog: readonly CatalogEntry[], c: Collector, log: Logger): Promise<void> {
  let t: RestoreTarget;
  try {
    t = await openRestoreTarget(args.server, deps.env, log);
  } catch (err) {
    await c.step(() => [fail("restore", `cannot prepare the restore target: ${message(err)}`, {}, plan.point)]);
    return;
  }
  try {
    let restored: ChainRestore = { databases: [], roles: 0, failure: null };
    await c.step(async () => {
      restored = await restoreChainForVerify(config, deps.env, log, plan, catalog, t);
      const figures = { databases: restored.databases.length, roles: restored.roles };
      return [
        restored.failure === null
          ? pass("restore", `restored ${restored.databases.length} databases of ${plan.chain.join(" -> ")} into the ${t.label}`, figures, plan.point)
          : fail("restore", `restore into the ${t.label} failed: ${restored.failure.message}`, figures, restored.failure.file ?? plan.point),
      ];
    });
    if (restored.databases.length === 0) return;
    const manifests = new Map(catalog.map((e) => [e.name, e.manifest]));
    await c.step(async () =>
      restoredRowFindings(await countRestoredRows(t, restored.databases, (db) => manifests.get(db.provider)?.rowCounts[db.name] ?? {}, log)),
    );
  } finally {
    await t.release();
  }
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
  await c.step(() => checksums(catalog));
  await c.step(() => chainFindings(catalog));
  await c.step(() => ageFindings(catalog, deps.now(), args.maxAgeHours));
  const { plan, findings } = planFindings(catalog);
  await c.step(() => findings);
  if (plan === null) {
    if (args.restore) await c.step(() => [fail("restore", "not attempted: there is no restorable chain (see restore-plan)")]);
    return;
  }
  // Encrypted files need AGE_IDENTITY_FILE to be read back; without the right one nothing below can be proven.
  const keyProblems = identityProblems(
    plan.chain.map((name) => sourceOf(catalog.find((e) => e.name === name) as CatalogEntry)),
    config.encryption.identity,
  );
  if (keyProblems.length > 0) throw new TaskError(ExitCode.refused, `verify cannot read the newest chain: ${keyProblems.join("; ")}`);
  // The sealed row counts of encrypted backups, opened once for the stream and restore comparisons.
  const opened = await mapLimit(catalog, HASH_CONCURRENCY, async (e) =>
    plan.chain.includes(e.name) && e.manifest !== null ? { ...e, manifest: await openManifest(e.manifest, config.encryption.identity, deps.env) } : e,
  );
  catalog = opened;
  const chain = plan.chain.map((name) => catalog.find((e) => e.name === name) as CatalogEntry);
  const key = config.signing.verifyKey;
  const signatures = key === null ? [] : await c.step(async () => signatureFindings(await mapLimit(chain, HASH_CONCURRENCY, (e) => signatureOf(e, key))));
  for (const entry of chain) {
    const name = entry.name;
    log.info({ backup: name }, `reading ${name} back through its decompressor`);
    await c.step(async () => streamFindings(entry, await scanBackup(entry, { threads: config.compression.threads, env: deps.env, identity: config.encryption.identity }, log)));
  }
  if (!args.restore) return;
  // A forged file's SQL would run as superuser in the scratch cluster, inside this task.
  if (signatures.some((f) => !f.ok)) await c.step(() => [fail("restore", "not attempted: the newest chain is not signed with the key BACKUP_VERIFY_KEY_FILE checks (see signature)")]);
  else await restoreStep(config, deps, args, plan, catalog, c, log);
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
