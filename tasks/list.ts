// list: every backup with tier, local time, size, databases and checksum-sidecar state.
import { readFile } from "node:fs/promises";
import type { CatalogEntry } from "../lib/store/catalog.js";
import { scanCatalog } from "../lib/store/catalog.js";
import { assertBackupDir } from "../lib/store/backupDir.js";
import type { Config } from "../lib/config/config.js";
import type { Deps } from "../lib/core/deps.js";
import { humanBytes, localTime, table } from "../lib/core/format.js";
import { parseChecksumFile } from "../lib/store/checksum.js";
import { CHECKSUM_SUFFIX } from "../lib/store/naming.js";
import type { Tier } from "../lib/store/naming.js";
import type { ListedBase } from "../lib/base/listing.js";
import { formatBases, listBases } from "../lib/base/listing.js";
import { formatWalSummary, summarizeWal } from "../lib/wal/summary.js";

export interface ListArgs {
  json: boolean;
  /** A logical tier, or "base" for the base backups only. */
  tier?: Tier | "base";
}

export interface ListedBackup {
  name: string;
  tier: Tier;
  time: string;
  localTime: string;
  bytes: number;
  parent: string | null;
  databases: string[];
  included: string[];
  /** "recorded": the .sha256 sidecar matches the manifest (run `verify` to hash the data); otherwise what is wrong. */
  checksum: "recorded" | "missing" | "mismatch" | "no manifest";
  problem: string | null;
}

async function checksumState(e: CatalogEntry): Promise<ListedBackup["checksum"]> {
  if (e.manifest === null) return "no manifest";
  try {
    const recorded = parseChecksumFile(await readFile(e.path + CHECKSUM_SUFFIX, "utf8"), e.name);
    return typeof recorded !== "string" && recorded.data === e.manifest.sha256 ? "recorded" : "mismatch";
  } catch {
    return "missing";
  }
}

/** What `list` shows of a backup wherever it is stored (BACKUP_DIR or the S3 mirror). */
export function describeEntry(e: CatalogEntry, tz: string): Omit<ListedBackup, "checksum"> {
  return {
    name: e.name,
    tier: e.tier,
    time: e.time.toISOString(),
    localTime: localTime(e.time, tz),
    bytes: e.bytes,
    parent: e.parent,
    databases: e.manifest?.databases ?? [],
    included: e.manifest?.included ?? [],
    problem: e.problem,
  };
}

/** The DATABASES column: "included/all names", or why the backup is unusable. */
export function databasesCell(b: Pick<ListedBackup, "problem" | "included" | "databases">): string {
  // The reason a backup is unusable is shown whole: it is what the operator has to act on.
  if (b.problem !== null) return `unusable: ${b.problem}`;
  const dbs = `${b.included.length}/${b.databases.length} ${b.included.join(", ")}`;
  return dbs.length > 60 ? dbs.slice(0, 57) + "..." : dbs;
}

export async function listBackups(config: Config, tier?: Tier): Promise<ListedBackup[]> {
  const entries = (await scanCatalog(config.backupDir)).filter((e) => tier === undefined || e.tier === tier);
  return Promise.all(entries.map(async (e) => ({ ...describeEntry(e, config.tz), checksum: await checksumState(e) })));
}

export async function run(config: Config, deps: Deps, args: ListArgs): Promise<ListedBackup[]> {
  await assertBackupDir(config.backupDir, "there is nothing to list");
  const listed = args.tier === "base" ? [] : await listBackups(config, args.tier);
  const bases: ListedBase[] = args.tier === undefined || args.tier === "base" ? await listBases(config.backupDir, config.tz) : [];
  const wal = args.tier === undefined ? await summarizeWal(config.backupDir) : null;
  if (args.json) {
    deps.out(JSON.stringify({ backupDir: config.backupDir, backups: listed, bases, wal }, null, 2) + "\n");
    return listed;
  }
  const walLine = wal === null ? "" : formatWalSummary(wal, config.tz);
  const logical = table([["TIER", `TIME (${config.tz})`, "SIZE", "CHECKSUM", "DATABASES", "NAME"], ...listed.map(row)]);
  if (bases.length > 0) {
    deps.out((listed.length > 0 ? logical + "\n" : "") + formatBases(bases, config.tz) + walLine);
  } else if (listed.length === 0) {
    deps.out(`no backups in BACKUP_DIR=${config.backupDir}${args.tier ? ` (tier ${args.tier})` : ""}; run \`pg-swarm-backup backup full\` to make the first backup\n` + walLine);
  } else {
    deps.out(logical + walLine);
  }
  return listed;
}

function row(b: ListedBackup): string[] {
  return [b.tier, b.localTime, humanBytes(b.bytes), b.checksum, databasesCell(b), b.name];
}
