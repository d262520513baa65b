// Where restore-pitr reads from: BACKUP_DIR (base/ and wal/, this file) or the S3 mirror
// (lib/offsite/pitrSource.ts). Either way the plan is made the same way (plan.ts) from what
// was checked — history files read once and checked, base manifests trusted or not —, the
// planned WAL's signatures are read where the WAL is, the segments are staged through a
// WalSource, and the base backup is read once from a local file through openVerified.
import type { Config } from "../config/config.js";
import type { Logger } from "../core/log.js";
import { scanBaseCatalog } from "../base/catalog.js";
import type { HistoryRead } from "../wal/archive.js";
import { historiesByTimeline, listWalArchive, readHistoryFiles } from "../wal/archive.js";
import type { WalTrust } from "../wal/readFile.js";
import type { StatementReader } from "../wal/signedRecord.js";
import { statementsIn } from "../wal/signedRecord.js";
import { assertPlannedBase } from "./baseChecks.js";
import type { PitrPlan } from "./plan.js";
import { planPitr } from "./plan.js";
import { trustBase } from "./trustedBase.js";
import type { TrustedBase } from "./trustedBase.js";
import type { WalSource } from "./walStaging.js";
import { localWalSource } from "./walStaging.js";

export interface PitrSource {
  /** For messages and the dry run: "BACKUP_DIR=/backups", "the S3 mirror s3://bucket/prefix/". */
  where: string;
  plan: PitrPlan;
  /** The history files the plan was made from, read once and checked. */
  histories: HistoryRead[];
  /** Where the planned segments' signatures are read. */
  signatures: StatementReader;
  wal: WalSource;
  /** Lines the dry run adds (what a restore would fetch). */
  notes: string[];
  /** Bytes fetched from a remote source so far, and what it holds in all; null for BACKUP_DIR. */
  fetched: () => { bytes: number; of: number } | null;
  /**
   * The base backup, its sidecars checked and its data in a local file for the one read that
   * extracts it; `release` removes what was fetched for it. Throws the refusal (exit 4) when it
   * is not the one planned, or when `beforeFetch` refuses it (an identity that cannot open it).
   */
  base(beforeFetch: (b: Omit<TrustedBase, "path">) => void): Promise<{ trusted: TrustedBase; release: () => Promise<void> }>;
}

/** restore-pitr from BACKUP_DIR. Refusals (exit 4) are thrown before anything is written. */
export async function localSource(config: Config, target: Date | null, trust: WalTrust, log: Logger): Promise<PitrSource> {
  const [bases, listing] = await Promise.all([scanBaseCatalog(config.backupDir), listWalArchive(config.backupDir)]);
  // Each history file is read once, checked (signature, decryption) and parsed; the plan follows what was checked.
  const histories = await readHistoryFiles(listing, trust);
  const plan = planPitr(bases, { segments: listing.segments, historyNames: listing.histories.map((h) => h.file.name), histories: historiesByTimeline(histories) }, target);
  return {
    where: `BACKUP_DIR=${config.backupDir}`,
    plan,
    histories,
    signatures: statementsIn(listing.dir),
    wal: localWalSource(config.backupDir),
    notes: [],
    fetched: () => null,
    base: async (beforeFetch) => {
      const path = (bases.find((b) => b.name === plan.base) as (typeof bases)[number]).path;
      log.info({ backup: plan.base }, `checking ${plan.base}'s ${trust.verifyKey === null ? "checksum sidecar" : "signature"} and manifest; its chunks are checked as it is read`);
      const trusted = await trustBase(path, trust.verifyKey);
      assertPlannedBase(plan, trusted);
      beforeFetch(trusted);
      return { trusted, release: async () => undefined };
    },
  };
}
