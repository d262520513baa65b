// Restores fall back to the S3 mirror when a backup is missing locally. The AWS SDK is
// loaded only when S3_BUCKET is set, so tasks without a mirror start fast.
import { existsSync } from "node:fs";
import type { CatalogEntry, TrustOptions } from "../store/catalog.js";
import { scanCatalog } from "../store/catalog.js";
import type { Config } from "../config/config.js";
import type { Logger } from "../core/log.js";

/** The local catalog (scanned trusted when `trust` is given), merged with the mirror's when S3 is configured (remote-only entries have no local file yet). */
export async function catalogWithMirror(config: Config, log: Logger, trust: TrustOptions | null = null): Promise<CatalogEntry[]> {
  const local = await scanCatalog(config.backupDir, trust);
  if (config.s3 === null) return local;
  const [{ remoteCatalog, mergeCatalogs }, { mirrorTarget }] = await Promise.all([import("./remoteCatalog.js"), import("./client.js")]);
  try {
    return mergeCatalogs(local, await remoteCatalog(mirrorTarget(config.s3, log), config.backupDir));
  } catch (err) {
    log.warn({ err: (err as Error).message }, "the S3 mirror cannot be listed; planning from the local backups only");
    return local;
  }
}

/** Downloads (checksum-verified) every entry whose file is not on disk; returns how many it fetched. */
export async function ensureLocal(config: Config, entries: readonly { name: string; path: string }[], log: Logger): Promise<number> {
  const missing = entries.filter((e) => !existsSync(e.path));
  if (missing.length === 0 || config.s3 === null) return 0;
  const { fetchFromMirror } = await import("./mirror.js");
  for (const e of missing) {
    log.info({ backup: e.name }, `${e.name} is not in BACKUP_DIR; downloading it from the S3 mirror`);
    await fetchFromMirror(config, e.name, log);
  }
  return missing.length;
}

/** For FILE arguments: a fetcher that downloads a bare backup name from the mirror, or undefined without S3. */
export function mirrorFetcher(config: Config, log: Logger): ((name: string) => Promise<string | null>) | undefined {
  if (config.s3 === null) return undefined;
  return async (name) => {
    const { fetchFromMirror } = await import("./mirror.js");
    log.info({ backup: name }, `${name} is not in BACKUP_DIR; looking for it in the S3 mirror`);
    return fetchFromMirror(config, name, log);
  };
}
