// The WAL a PitrPlan stages, checked before anything is written: AGE_IDENTITY_FILE for the
// encrypted files, and with BACKUP_VERIFY_KEY_FILE every planned segment's signature and the
// timelines it replays (lib/wal/signedRecord.ts). Shared by restore-pitr and verify's pitr-restore.
import type { HistoryRead } from "../wal/archive.js";
import type { WalTrust } from "../wal/readFile.js";
import type { StatementReader } from "../wal/signedRecord.js";
import { checkSignedWal, encryptedAmong } from "../wal/signedRecord.js";
import { missingIdentity } from "../wal/encryption.js";
import type { PitrPlan } from "./plan.js";
import type { StagedHistory } from "./walStaging.js";

/**
 * Throws the refusal (exit 4) naming the file or AGE_IDENTITY_FILE; returns when the plan's WAL
 * can be read and trusted. `signatures`: where the segments' signatures are read (statementsIn(wal/), or the bucket).
 */
export async function checkPlannedWal(plan: PitrPlan, signatures: StatementReader, histories: readonly HistoryRead[], trust: WalTrust): Promise<void> {
  const [encrypted] = encryptedAmong(plan.segments.map((s) => s.source));
  if (encrypted !== undefined && trust.identity === null) throw missingIdentity(encrypted);
  if (trust.verifyKey === null) return;
  const staged = new Set(plan.history);
  await checkSignedWal(
    signatures,
    trust.verifyKey,
    { segments: plan.segments, baseTimeline: plan.manifest.timeline, systemIdentifier: plan.manifest.systemIdentifier },
    histories.filter((h) => staged.has(h.entry.file.name)).map((h) => ({ name: h.entry.file.name, statement: h.statement, untrusted: h.untrusted })),
  );
}

/** The plan's history files with the bytes their planning read checked and decoded. Pure. */
export function stagedHistories(plan: PitrPlan, histories: readonly HistoryRead[]): StagedHistory[] {
  return histories.filter((h) => plan.history.includes(h.entry.file.name)).map((h) => ({ name: h.entry.file.name, text: h.text }));
}
