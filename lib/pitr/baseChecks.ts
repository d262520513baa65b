// What restore-pitr and verify check of a base backup beyond its bytes: that the manifest the
// plan was made from is the one the sidecar covers, and that the tar's backup_manifest (seen by
// the tar reader as it wrote it) is this backup's: its own Manifest-Checksum, the WAL range the
// .json records, and for a format-1 backup the hash the .json records.
import { ExitCode, TaskError } from "../core/errors.js";
import type { BaseManifest } from "../physical/layout.js";
import { parseLsn } from "../physical/layout.js";
import type { BackupManifestSeen } from "./backupManifestTap.js";
import type { PitrPlan } from "./plan.js";
import type { TrustedBase } from "./trustedBase.js";

/** The manifest the plan was made from must be the one whose hash the sidecar (and signature) covers. */
export function assertPlannedBase(plan: PitrPlan, base: TrustedBase): void {
  if (JSON.stringify(base.manifest) !== JSON.stringify(plan.manifest)) {
    throw new TaskError(ExitCode.refused, `restore-pitr refused, nothing was written: ${plan.base}.json changed while restore-pitr read it; run restore-pitr again, and find out who writes BACKUP_DIR/base`);
  }
}

/** Why the tar's backup_manifest is not the one of this base backup, or null. */
export function backupManifestProblem(seen: BackupManifestSeen | null, m: BaseManifest): string | null {
  if (seen === null) return "holds no backup_manifest";
  if (m.backupManifestSha256 !== null && seen.sha256 !== m.backupManifestSha256) return "holds a backup_manifest other than the one its .json records";
  if (!seen.checksumOk) return "holds a backup_manifest whose Manifest-Checksum does not match its contents";
  const r = seen.range;
  if (r === null) return "holds a backup_manifest without WAL-Ranges";
  if (r.timeline !== m.timeline || parseLsn(r.startLsn) !== parseLsn(m.startLsn) || parseLsn(r.stopLsn) !== parseLsn(m.stopLsn)) {
    return `holds a backup_manifest for WAL ${r.startLsn}..${r.stopLsn} on timeline ${r.timeline}, but its .json records ${m.startLsn}..${m.stopLsn} on timeline ${m.timeline}`;
  }
  return null;
}
