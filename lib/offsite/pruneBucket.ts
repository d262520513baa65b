// cleanup's part in the S3 mirror's physical tier: with S3_RETENTION=mirror, the bucket is
// pruned by cleanup's plan after BACKUP_DIR was (physicalMirror.ts, prunePlan.ts). Loaded only
// when S3_BUCKET is set, so a cleanup without a mirror does not pay for the SDK.
import type { Config } from "../config/config.js";
import type { Logger } from "../core/log.js";
import { mirrorTarget } from "../s3/client.js";
import { mirrorPhysical } from "./physicalMirror.js";
import type { PrunePlan } from "./prunePlan.js";

/**
 * The physical tier in the S3 mirror, pruned by cleanup's plan (lib/offsite/prunePlan.ts) when
 * cleanup deletes in S3 (S3_RETENTION=mirror) and BACKUP_DIR has a physical tier. A failure is
 * returned, not thrown: the local cleanup stands, and the next cleanup or mirror prunes.
 */
export async function pruneBucket(config: Config, dryRun: boolean, now: Date, log: Logger): Promise<{ plan: PrunePlan | null; failure: unknown }> {
  if (config.s3 === null || config.s3.retention !== "mirror") return { plan: null, failure: null };
  try {
    const r = await mirrorPhysical(config, mirrorTarget(config.s3, log.child({ mirror: "s3" })), { dryRun, thorough: false, upload: false, now }, log);
    return { plan: r?.prune ?? null, failure: null };
  } catch (err) {
    log.warn({ err: (err as Error).message }, "the physical tier in the S3 mirror was not pruned");
    return { plan: null, failure: err };
  }
}

