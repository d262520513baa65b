// Pure: which base backups of BACKUP_DIR/base the bucket lacks or holds differently, by its
// listing (presence, size, sidecars); `mirror` checks the sha256 metadata of the rest with a HEAD.
// A base backup with a problem locally (no manifest, a symlink, a bad manifest) is not uploaded.
import type { RemoteBase } from "./remoteBases.js";

export interface LocalBase {
  name: string;
  bytes: number;
  problem: string | null;
  /** Its .sha256.sig is beside it: the bucket must hold it too. */
  signed: boolean;
}

export interface BaseUploadPlan {
  upload: { name: string; reason: string }[];
  inSync: string[];
  skipped: { name: string; reason: string }[];
}

/** Newest first: after an outage the base backup that matters most goes up first. */
export function planBaseUploads(local: readonly LocalBase[], remote: readonly RemoteBase[]): BaseUploadPlan {
  const byName = new Map(remote.map((r) => [r.name, r]));
  const plan: BaseUploadPlan = { upload: [], inSync: [], skipped: [] };
  for (const b of [...local].sort((x, y) => (x.name < y.name ? 1 : -1))) {
    if (b.problem !== null) {
      plan.skipped.push({ name: b.name, reason: b.problem });
      continue;
    }
    const r = byName.get(b.name);
    const reason =
      r === undefined ? "not in S3"
      : r.bytes === null ? "data object missing in S3"
      : r.bytes !== b.bytes ? `size in S3 differs (${r.bytes} bytes, local ${b.bytes})`
      : !r.hasChecksum || !r.hasManifest ? "sidecars missing in S3"
      : b.signed && !r.hasSignature ? "signature missing in S3"
      : null;
    if (reason === null) plan.inSync.push(b.name);
    else plan.upload.push({ name: b.name, reason });
  }
  return plan;
}
