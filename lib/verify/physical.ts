// verify's checks of the physical tier (issue 19), when BACKUP_DIR has one: the newest base
// backup read once (its sidecars and signature, with BACKUP_VERIFY_KEY_FILE, then each chunk
// checked as it is read and extracted into a temp folder: base-checksum), checked by
// pg_verifybackup against its own backup_manifest (base-verifybackup), and the WAL from its
// start segment to the newest without a gap; with --restore a point-in-time restore to the end
// of the WAL into a scratch cluster that must promote. No base/ and no WAL: no checks.
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Config } from "../config/config.js";
import { findServerBinary } from "../core/bin.js";
import type { Logger } from "../core/log.js";
import { runCommand } from "../core/proc.js";
import { ExitCode, TaskError } from "../core/errors.js";
import { IntegrityError } from "../store/verifiedRead.js";
import { scanBaseCatalog, usableBases } from "../base/catalog.js";
import type { UsableBaseEntry } from "../base/catalog.js";
import { assertBaseDecryptable, extractBase } from "../pitr/baseExtract.js";
import { backupManifestProblem } from "../pitr/baseChecks.js";
import { trustBase } from "../pitr/trustedBase.js";
import type { TrustedBase } from "../pitr/trustedBase.js";
import { parseLsn } from "../physical/layout.js";
import { planPitr } from "../pitr/plan.js";
import { checkPlannedWal, stagedHistories } from "../pitr/plannedWal.js";
import { statementsIn } from "../wal/signedRecord.js";
import { historiesByTimeline, listWalArchive, readHistoryFiles } from "../wal/archive.js";
import { checkWalContinuity } from "../wal/continuity.js";
import type { WalTrust } from "../wal/readFile.js";
import { IdentityRefusal } from "../wal/encryption.js";
import type { Finding } from "./checks.js";
import { fail, pass } from "./checks.js";
import { probePitrRestore } from "./physicalRestore.js";
import { assertWalReadable, rethrowIdentity } from "./walIdentity.js";
import { walSignatureFindings } from "./walSignatures.js";

export type Step = (fn: () => Finding[] | Promise<Finding[]>) => Promise<Finding[]>;

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** Reads the base backup once into a temp folder (base-checksum), then runs pg_verifybackup on it (base-verifybackup, when installed). */
async function readBase(b: UsableBaseEntry, config: Config, env: NodeJS.ProcessEnv, log: Logger): Promise<Finding[]> {
  const what = config.signing.verifyKey === null ? "its .sha256 sidecar and manifest" : "its signature, .sha256 sidecar and manifest";
  let trusted: TrustedBase;
  try {
    trusted = await trustBase(b.path, config.signing.verifyKey);
  } catch (err) {
    return [fail("base-checksum", message(err), {}, b.name)];
  }
  // Like the logical tiers: what verify cannot decrypt it cannot prove, so it stops (exit 4) naming AGE_IDENTITY_FILE.
  try {
    assertBaseDecryptable(trusted, config.encryption.identity);
  } catch (err) {
    throw new TaskError(ExitCode.refused, `verify cannot read the newest base backup: ${message(err)}`, { cause: err });
  }
  const dir = await mkdtemp(join(env.TMPDIR ?? tmpdir(), "pgsb-verify-base-"));
  try {
    const data = join(dir, "data");
    await mkdir(data, { mode: 0o700 });
    let x;
    try {
      x = await extractBase(trusted, data, { identity: config.encryption.identity, threads: config.compression.threads, env, log });
    } catch (err) {
      if ((err as Error).cause instanceof IntegrityError) return [fail("base-checksum", message(err), {}, b.name)];
      return [pass("base-checksum", `newest base backup matches ${what}`, { bytes: b.bytes }, b.name), fail("base-verifybackup", `the base backup does not check out: ${message(err)}`, {}, b.name)];
    }
    const how = x.verification === "chunks" ? `each of its ${trusted.manifest.chunks?.sha256.length ?? 0} chunks as it was read` : "its sha256 as it was read";
    const sum = pass("base-checksum", `newest base backup matches ${what}, ${how}`, { bytes: x.storedBytes }, b.name);
    const figures = { rawBytes: x.rawBytes, files: x.members };
    const problem = backupManifestProblem(x.backupManifest, trusted.manifest);
    if (problem !== null) return [sum, fail("base-verifybackup", `the base backup ${problem}: it is damaged; take a new one`, figures, b.name)];
    const tool = findServerBinary("pg_verifybackup", env);
    if (tool === null) return [sum, pass("base-verifybackup", "extracted; its backup_manifest checks out and matches the .json (pg_verifybackup is not installed here, so the files were not checked against it)", figures, b.name)];
    try {
      // -n: the WAL is checked by the wal-continuity check (and -X fetch put the backup's own WAL in pg_wal).
      await runCommand(tool, ["-n", "-q", data], { env: { PATH: env.PATH, LC_ALL: "C" } });
    } catch (err) {
      return [sum, fail("base-verifybackup", `the base backup does not check out: ${message(err)}`, figures, b.name)];
    }
    return [sum, pass("base-verifybackup", `extracted; pg_verifybackup found all ${x.members} files as its backup_manifest lists them`, figures, b.name)];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function physicalChecks(config: Config, env: NodeJS.ProcessEnv, restore: boolean, step: Step, log: Logger, now: () => Date): Promise<void> {
  let bases;
  let listing;
  try {
    [bases, listing] = await Promise.all([scanBaseCatalog(config.backupDir), listWalArchive(config.backupDir)]);
  } catch (err) {
    await step(() => [fail("base-catalog", `cannot read base/ or wal/ in BACKUP_DIR=${config.backupDir}: ${message(err)}`)]);
    return;
  }
  if (bases.length === 0 && listing.segments.length === 0) return;
  const newest = usableBases(bases).at(-1);
  if (newest === undefined) {
    const why = bases.length === 0 ? "there is none" : bases.map((b) => `${b.name}: ${b.problem ?? "no manifest"}`).join("; ");
    await step(() => [fail("base-catalog", `BACKUP_DIR/base holds no usable base backup (${why}), so the WAL in wal/ cannot be restored; run \`backup base\``)]);
    return;
  }
  const [sum] = await step(() => readBase(newest, config, env, log));
  const identity = config.encryption.identity;
  await assertWalReadable(listing, newest.manifest, identity, env);
  const histories = await readHistoryFiles(listing, { verifyKey: null, identity, env }).catch(rethrowIdentity);
  await step(() => {
    if (histories instanceof Error) return [fail("wal-continuity", histories.message)];
    const r = checkWalContinuity(listing.segments.map((s) => s.file), historiesByTimeline(histories), { timeline: newest.manifest.timeline, lsn: parseLsn(newest.manifest.startLsn) as bigint }, newest.manifest.walSegmentSize);
    return [
      r.ok
        ? pass("wal-continuity", `WAL from ${r.from} (start of ${newest.name}) to ${r.to} is complete: ${r.segments} segments${r.endsPartial ? ", the last one in progress" : ""}`, { segments: r.segments })
        : fail("wal-continuity", r.message, { firstMissing: r.firstMissing }, r.firstMissing === "" ? newest.name : r.firstMissing),
    ];
  });
  const key = config.signing.verifyKey;
  const [signed] = key === null ? [] : await step(() => walSignatureFindings(listing, newest.manifest, key));
  if (!restore) return;
  await step(async () => {
    if (sum?.ok !== true) return [fail("pitr-restore", "not attempted: the newest base backup failed its checksum (see base-checksum)", {}, newest.name)];
    if (signed?.ok === false) return [fail("pitr-restore", "not attempted: WAL it would replay is not signed with the key BACKUP_VERIFY_KEY_FILE checks (see wal-signatures)", {}, newest.name)];
    try {
      // As restore-pitr does it: the history files read once and checked, the planned WAL checked before anything is written.
      const trust: WalTrust = { verifyKey: key, identity, env };
      const reads = await readHistoryFiles(listing, trust);
      const plan = planPitr(bases, { segments: listing.segments, historyNames: listing.histories.map((h) => h.file.name), histories: historiesByTimeline(reads) }, null);
      await checkPlannedWal(plan, statementsIn(listing.dir), reads, trust);
      const base = await trustBase((bases.find((b) => b.name === plan.base) as UsableBaseEntry).path, config.signing.verifyKey);
      const p = await probePitrRestore(plan, base, config, { histories: stagedHistories(plan, reads), wal: { verifyKey: key, identity } }, env, log, now);
      return [pass("pitr-restore", `restore-pitr of ${plan.base} to the end of the WAL (${plan.lastSegment}) reached a consistent state and promoted`, { restoreSeconds: p.restoreSeconds, replaySeconds: p.replaySeconds, segments: p.segments }, plan.base)];
    } catch (err) {
      if (err instanceof IdentityRefusal) throw err;
      return [fail("pitr-restore", `restore-pitr into a scratch cluster failed: ${message(err)}`, {}, newest.name)];
    }
  });
}
