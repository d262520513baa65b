// Pure: what a backup run should do, given the catalog, the cluster and its fingerprint.
import type { CatalogEntry } from "../store/catalog.js";
import type { ChangeReport } from "./fingerprint.js";
import { detectChanges, hasChanges } from "./fingerprint.js";
import type { Fingerprint } from "../store/manifest.js";
import type { Tier } from "../store/naming.js";
import type { BackupFacts } from "../postgres/wipedCluster.js";
import { backupHadData, judgeCluster, wipedClusterRefusal } from "../postgres/wipedCluster.js";

export interface BackupPlanInput {
  requested: Tier;
  /** Usable catalog entries (manifest and checksum sidecar present), any order. */
  catalog: readonly CatalogEntry[];
  systemIdentifier: string;
  fingerprint: Fingerprint;
  /** Databases holding a user object (lib/postgres/wipedCluster.ts); empty on a freshly initialised cluster. */
  databasesWithObjects: readonly string[];
  force: boolean;
  allowNewCluster: boolean;
  /**
   * With BACKUP_SIGNING_KEY_FILE: the names of the backups signed with that key. Only they can
   * be a reference or a parent, so a forged file never makes a run skip or joins a signed chain,
   * and the first run after signing is switched on takes a full. null: no signing.
   */
  signed?: ReadonlySet<string> | null;
}

export type BackupPlan =
  | { action: "refuse"; reason: string }
  | { action: "skip"; tier: Tier; reference: string; reason: string }
  | {
      action: "backup";
      tier: Tier;
      /** Manifest.parent of the new backup. */
      parent: string | null;
      /** The backup whose fingerprint was compared, if any. */
      reference: string | null;
      databases: { name: string; reason: string }[];
      notes: string[];
      changes: ChangeReport | null;
    };

function newest(entries: readonly CatalogEntry[]): CatalogEntry | undefined {
  return [...entries].sort((a, b) => b.time.getTime() - a.time.getTime() || b.name.localeCompare(a.name))[0];
}

/** What the wipe check needs of a catalog entry. */
export function backupFacts(e: CatalogEntry): BackupFacts {
  return { name: e.name, systemIdentifier: e.manifest?.systemIdentifier ?? null, hadData: e.manifest === null ? true : backupHadData(e.manifest) };
}

export function planBackup(input: BackupPlanInput): BackupPlan {
  const all = Object.keys(input.fingerprint.databases);
  const notes: string[] = [];
  const unnamable = all.find((n) => /[\r\n]/.test(n));
  if (unnamable !== undefined) {
    return {
      action: "refuse",
      reason:
        `database ${JSON.stringify(unnamable)} has a line break in its name; pg_dump refuses such names (they cannot be restored with psql safely). ` +
        "Rename it with ALTER DATABASE … RENAME TO a name without line breaks, then run the backup again",
    };
  }
  const latest = newest(input.catalog);
  const sameCluster = input.catalog.filter((e) => e.manifest?.systemIdentifier === input.systemIdentifier && (input.signed?.has(e.name) ?? true));
  const latestOf = latest === undefined ? undefined : backupFacts(latest);
  // Invariant 3: every backup counts here, signed or not (docs/security.md "Signing").
  const verdict = judgeCluster(input, input.catalog.map(backupFacts), latestOf);
  const wiped = wipedClusterRefusal(verdict, input);
  if (wiped !== null) return { action: "refuse", reason: wiped };
  if (latestOf !== undefined && latestOf.systemIdentifier !== input.systemIdentifier) {
    notes.push(`new cluster: system_identifier ${input.systemIdentifier}, newest backup ${latestOf.name} is of ${latestOf.systemIdentifier ?? "unknown"}; starting a new chain with a full`);
  }
  const fulls = sameCluster.filter((e) => e.tier === "full");
  const lastFull = newest(fulls);
  let tier = input.requested;
  if (tier !== "full" && lastFull === undefined) {
    notes.push(`no valid full backup of this cluster${input.signed ? " signed with BACKUP_SIGNING_KEY_FILE's key" : ""} exists: taking a full instead of a ${tier}`);
    tier = "full";
  }
  const reference = tier === "incremental" ? newest(sameCluster) : lastFull;
  const parent = tier === "full" ? null : (reference?.name ?? null);
  const changes = reference?.manifest ? detectChanges(reference.manifest.fingerprint, input.fingerprint) : null;
  if (reference !== undefined && changes !== null && !hasChanges(changes) && !input.force) {
    return { action: "skip", tier, reference: reference.name, reason: `no changes since ${reference.name}` };
  }
  let databases: { name: string; reason: string }[];
  if (tier === "full" || input.force || changes === null) {
    const why = tier === "full" ? "full backup" : input.force ? "--force" : "no reference";
    databases = all.map((name) => ({ name, reason: why }));
  } else {
    databases = changes.changed.map((c) => ({ name: c.name, reason: c.reason }));
    if (changes.globalsChanged) notes.push("roles, memberships or tablespaces changed");
    if (changes.dropped.length > 0) notes.push(`dropped since ${reference?.name}: ${changes.dropped.join(", ")}`);
  }
  return { action: "backup", tier, parent, reference: reference?.name ?? null, databases, notes, changes };
}
