// Pure: whether auto-restore acts. It restores only a cluster that looks wiped: no database
// holds user data and its system_identifier is not one any backup was taken from (a new
// data directory). Everywhere else it does nothing, so it is safe to run on every start.
import type { CatalogEntry } from "../store/catalog.js";
import { untrustedRefusal } from "./plan.js";

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
  userDatabases: readonly string[];
  systemIdentifier: string;
  /** Every catalog entry, usable or not. */
  catalog: readonly CatalogEntry[];
}): AutoRestoreDecision {
  const { userDatabases, systemIdentifier, catalog } = input;
  if (userDatabases.length > 0) {
    const shown = userDatabases.slice(0, 5).map((d) => JSON.stringify(d)).join(", ") + (userDatabases.length > 5 ? ", …" : "");
    return { action: "skip", reason: `the cluster has user databases (${shown}): it is not a wiped cluster` };
  }
  const usable = catalog.filter((e) => e.problem === null && e.manifest !== null);
  const own = usable.find((e) => e.manifest?.systemIdentifier === systemIdentifier);
  if (own !== undefined) {
    return { action: "skip", reason: `system_identifier ${systemIdentifier} is the cluster backup ${own.name} was taken from: it is not a new data directory` };
  }
  if (catalog.length === 0) return { action: "liftGate", reason: "no backups in BACKUP_DIR: a new installation, nothing to restore" };
  const refusal = untrustedRefusal(catalog);
  if (refusal !== null) return { action: "refuse", reason: refusal };
  if (usable.length === 0) {
    return { action: "fail", reason: `none of the ${catalog.length} backups is usable (run \`list\` to see why); restore by hand, then lift the write gate` };
  }
  return { action: "restore", reason: `new empty cluster (system_identifier ${systemIdentifier}) and ${usable.length} usable backup(s) of another cluster` };
}
