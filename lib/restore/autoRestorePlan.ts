// Pure: whether auto-restore acts. It restores only a wiped cluster, by the one definition the
// backup guard uses too (lib/postgres/wipedCluster.ts): no database holds a user object, no
// backup was taken from its data directory, and the newest backup had data. Everywhere else
// it does nothing, so it is safe to run on every start.
import { backupFacts } from "../backup/plan.js";
import type { CatalogEntry } from "../store/catalog.js";
import { untrustedRefusal } from "./plan.js";
import { judgeCluster } from "../postgres/wipedCluster.js";

export type AutoRestoreDecision =
  | { action: "skip"; reason: string }
  /** Nothing to restore: a genuinely new installation; open the write gate. */
  | { action: "liftGate"; reason: string }
  /** Backups exist but none can be used: keep the gate shut and tell the operator. */
  | { action: "fail"; reason: string }
  /** The newest backup's sidecars do not verify (forged, unsigned with a verify key): exit 4, the gate stays shut. */
  | { action: "refuse"; reason: string }
  | { action: "restore"; reason: string };

export function decideAutoRestore(input: {
  /** Databases holding a user object (databasesWithObjects), leftovers of an interrupted restore left out. */
  databasesWithObjects: readonly string[];
  systemIdentifier: string;
  /** Every catalog entry, usable or not. */
  catalog: readonly CatalogEntry[];
}): AutoRestoreDecision {
  const { databasesWithObjects, systemIdentifier, catalog } = input;
  const usable = catalog.filter((e) => e.problem === null && e.manifest !== null);
  const newest = [...usable].sort((a, b) => b.time.getTime() - a.time.getTime() || b.name.localeCompare(a.name))[0];
  const verdict = judgeCluster({ systemIdentifier, databasesWithObjects }, usable.map(backupFacts), newest === undefined ? undefined : backupFacts(newest));
  switch (verdict.kind) {
    case "live": {
      const shown = databasesWithObjects.slice(0, 5).map((d) => JSON.stringify(d)).join(", ") + (databasesWithObjects.length > 5 ? ", …" : "");
      return { action: "skip", reason: `the cluster has user data (${shown}): it is not a wiped cluster` };
    }
    case "known":
      return { action: "skip", reason: `system_identifier ${systemIdentifier} is the cluster backup ${verdict.backup} was taken from: it is not a new data directory` };
    case "new": {
      if (catalog.length === 0) return { action: "liftGate", reason: "no backups in BACKUP_DIR: a new installation, nothing to restore" };
      const refusal = untrustedRefusal(catalog);
      if (refusal !== null) return { action: "refuse", reason: refusal };
      if (usable.length === 0) {
        return { action: "fail", reason: `none of the ${catalog.length} backups is usable (run \`list\` to see why); restore by hand, then lift the write gate` };
      }
      return { action: "liftGate", reason: `${verdict.reason}: a new installation, nothing to restore` };
    }
    case "wiped": {
      const refusal = untrustedRefusal(catalog);
      if (refusal !== null) return { action: "refuse", reason: refusal };
      return { action: "restore", reason: `new empty cluster (system_identifier ${systemIdentifier}) and ${usable.length} usable backup(s) of another cluster, the newest (${verdict.newest.name}) with data` };
    }
  }
}
