// Decides which backup files a restore reads and which database sections it takes from
// each. Pure: the restore task only executes the plan, and --dry-run prints formatPlan(plan).
// Every file holds complete sections (a whole pg_dump) of the databases it includes, so a
// database is restored from the newest file of the chain that holds it; nothing is replayed.
import type { CatalogEntry } from "../store/catalog.js";
import { ExitCode, TaskError } from "../core/errors.js";
import { table } from "../core/format.js";
import type { Manifest } from "../store/manifest.js";
import type { Tier } from "../store/naming.js";

export class RestorePlanError extends TaskError {
  constructor(message: string) {
    super(ExitCode.failed, message);
    this.name = "RestorePlanError";
  }
}

export interface RestoreStep {
  /** Backup name. */
  file: string;
  path: string;
  tier: Tier;
  /** Database sections to take from this file, in file order. */
  databases: string[];
  /** Whether this file's globals (roles, memberships, tablespaces) are the ones to apply. */
  globals: boolean;
}

export interface RestorePlan {
  target: Date | null;
  /** full, [differential], incrementals…, oldest first. */
  chain: string[];
  /** The newest backup used. */
  point: string;
  /** Database -> backup providing its newest section. */
  databases: Record<string, string>;
  /** Databases in older files of the chain that no longer existed at the point: not restored. */
  dropped: string[];
  globalsFrom: string;
  /** Steps in chain order; the executor applies the globals step's globals before any database. */
  steps: RestoreStep[];
  /** Newer backups left out because their chain is broken, and why. */
  warnings: string[];
}

type Usable = CatalogEntry & { manifest: Manifest };

function isUsable(e: CatalogEntry): e is Usable {
  return e.problem === null && e.manifest !== null;
}

const byTime = (a: CatalogEntry, b: CatalogEntry): number =>
  a.time.getTime() - b.time.getTime() || a.name.localeCompare(b.name);

/**
 * Follows parent links from `from` until `stop` accepts an entry. Returns the path oldest
 * first, or why it breaks (a parent missing, unusable or not older).
 */
function walk(
  from: Usable,
  usable: ReadonlyMap<string, Usable>,
  catalog: readonly CatalogEntry[],
  stop: (e: Usable) => boolean,
): Usable[] | string {
  const path = [from];
  for (let cur = from; !stop(cur); ) {
    if (cur.tier === "full" || cur.parent === null) return `${cur.name} has no parent backup recorded`;
    const parent = usable.get(cur.parent);
    if (parent === undefined) {
      const known = catalog.find((e) => e.name === cur.parent);
      if (known === undefined) return `parent ${cur.parent} of ${cur.name} is missing`;
      return `parent ${cur.parent} of ${cur.name} is unusable (${known.problem ?? "after the target time"})`;
    }
    // Parents must be strictly older, which also rules out loops in hand-edited manifests.
    if (parent.time >= cur.time) return `parent ${parent.name} of ${cur.name} is not older than it`;
    path.push(parent);
    cur = parent;
  }
  return path.reverse();
}

/** "NAME: reason" for the first few unusable backups, newest first. */
function unusableReasons(entries: readonly CatalogEntry[], limit = 3): string[] {
  const bad = entries.filter((e) => !isUsable(e)).sort(byTime).reverse();
  const shown = bad.slice(0, limit).map((e) => `${e.name}: ${e.problem ?? "no manifest"}`);
  return bad.length > limit ? [...shown, `${bad.length - limit} more`] : shown;
}

function noBackupMessage(catalog: readonly CatalogEntry[], at: Date | null): string {
  const usable = catalog.filter(isUsable).sort(byTime);
  const when = at === null ? "" : ` at or before ${at.toISOString()}`;
  if (catalog.length === 0) return "no backups found in BACKUP_DIR; run `backup full` first";
  const first = usable[0];
  if (first === undefined) return `none of the ${catalog.length} backups is usable (${unusableReasons(catalog).join("; ")}); run \`list\` to see every reason`;
  return `no usable backup${when}; the oldest usable backup is ${first.name} (${first.time.toISOString()}), choose a later --at`;
}

/** The newest intact chain when the point's own parent links break: newest full, its differential, then incrementals. */
function fallbackChain(
  point: Usable,
  list: readonly Usable[],
  usable: ReadonlyMap<string, Usable>,
  catalog: readonly CatalogEntry[],
): Usable[] {
  const before = list.filter((e) => e.time <= point.time);
  const full = before.filter((e) => e.tier === "full").at(-1);
  if (full === undefined) {
    throw new RestorePlanError(
      `no usable full backup at or before ${point.time.toISOString()}, which ${point.name} needs; ` +
        "restore needs a full backup: run `list` to see which are unusable, or choose a later --at",
    );
  }
  const diff = before.filter((e) => e.tier === "differential" && e.time > full.time && e.parent === full.name).at(-1);
  const base = diff ?? full;
  const prefix = diff === undefined ? [full] : [full, diff];
  for (const e of before.filter((x) => x.tier === "incremental" && x.time > base.time).reverse()) {
    const path = walk(e, usable, catalog, (x) => x.name === base.name);
    if (typeof path !== "string") return [...prefix, ...path.slice(1)];
  }
  return prefix;
}

/**
 * Why the restore is refused, or null. A backup whose sidecars did not verify (a trusted scan: unsigned with a verify key, forged,
 * changed after the backup) is never passed over quietly for an older one: when it is the
 * newest at the restore point, the restore is refused (exit 4) with its reason.
 */
export function untrustedRefusal(catalog: readonly CatalogEntry[], at: Date | null = null): string | null {
  const newest = catalog.filter(isUsable).filter((e) => at === null || e.time <= at).sort(byTime).at(-1);
  const newer = catalog.filter((e) => e.untrusted === true && (at === null || e.time <= at) && (newest === undefined || e.time >= newest.time));
  if (newer.length === 0) return null;
  const reasons = newer.map((e) => (e.problem?.startsWith(`${e.name}:`) === true ? e.problem : `${e.name}: ${e.problem ?? "its sidecars do not verify"}`)).join("; ");
  const older = newest === undefined ? "" : `; to restore the older ${newest.name} instead, give --at ${newest.time.toISOString()}`;
  return `restore refused, nothing was changed: ${reasons}${older}`;
}

export function planRestore(catalog: readonly CatalogEntry[], target: { at?: Date }): RestorePlan {
  const at = target.at ?? null;
  if (at !== null && Number.isNaN(at.getTime())) throw new RestorePlanError("the restore target time is not a valid date");
  const list = catalog.filter(isUsable).filter((e) => at === null || e.time <= at).sort(byTime);
  const refusal = untrustedRefusal(catalog, at);
  if (refusal !== null) throw new TaskError(ExitCode.refused, refusal);
  const newest = list.at(-1);
  if (newest === undefined) throw new RestorePlanError(noBackupMessage(catalog, at));
  const usable = new Map(list.map((e) => [e.name, e]));
  const warnings: string[] = [];

  let chain: Usable[];
  const walked = walk(newest, usable, catalog, (e) => e.tier === "full");
  if (typeof walked === "string") {
    chain = fallbackChain(newest, list, usable, catalog);
    const used = chain.at(-1) as Usable;
    const skipped = list.filter((e) => e.time > used.time).map((e) => e.name);
    warnings.push(`${walked}; restoring the newest intact chain, up to ${used.name} (left out: ${skipped.join(", ")})`);
  } else {
    chain = walked;
  }
  const point = chain.at(-1) as Usable;
  const passedOver = catalog.filter((e) => !isUsable(e) && e.time > point.time && (at === null || e.time <= at));
  if (passedOver.length > 0) warnings.push(`left out as unusable: ${unusableReasons(passedOver, 10).join("; ")}`);

  const providers = new Map<string, Usable>();
  const missing: string[] = [];
  for (const db of point.manifest.databases) {
    const source = chain.findLast((e) => e.manifest.included.includes(db));
    if (source === undefined) missing.push(db);
    else providers.set(db, source);
  }
  if (missing.length > 0) {
    throw new RestorePlanError(
      `the chain ${chain.map((e) => e.name).join(" -> ")} is broken: ${missing.map((d) => JSON.stringify(d)).join(", ")} ` +
        `existed at ${point.name} but no backup of the chain holds a section of it; ` +
        "choose an earlier --at, or restore from a full backup with restore-full",
    );
  }

  const wanted = new Set(point.manifest.databases);
  const dropped = [...new Set(chain.flatMap((e) => [...e.manifest.databases, ...e.manifest.included]))].filter(
    (db) => !wanted.has(db),
  );
  const steps: RestoreStep[] = [];
  for (const e of chain) {
    const databases = e.manifest.included.filter((db) => providers.get(db) === e);
    if (databases.length > 0 || e === point) {
      steps.push({ file: e.name, path: e.path, tier: e.tier, databases, globals: e === point });
    }
  }
  return {
    target: at,
    chain: chain.map((e) => e.name),
    point: point.name,
    // fromEntries defines own properties, so a database named "__proto__" stays a key.
    databases: Object.fromEntries([...providers].map(([db, e]) => [db, e.name])),
    dropped,
    globalsFrom: point.name,
    steps,
    warnings,
  };
}

/** Names as typed in SQL tools when plain, else JSON-quoted so spaces, commas and newlines stay visible. */
function shown(name: string): string {
  return /^[\p{L}\p{N}_]+$/u.test(name) ? name : JSON.stringify(name);
}

export function formatPlan(plan: RestorePlan): string {
  const head = [
    `Target:       ${plan.target === null ? "latest" : plan.target.toISOString()}`,
    `Restore to:   ${plan.point}`,
    `Chain:        ${plan.chain.join(" -> ")}`,
    `Globals from: ${plan.globalsFrom} (roles, memberships, tablespaces)`,
    "",
  ].join("\n");
  const rows = [
    ["BACKUP", "TIER", "GLOBALS", "DATABASES"],
    ...plan.steps.map((s) => [s.file, s.tier, s.globals ? "yes" : "", s.databases.map(shown).join(", ") || "-"]),
  ];
  const tail = [
    ...(plan.dropped.length > 0 ? [`Not restored (dropped before the restore point): ${plan.dropped.map(shown).join(", ")}`] : []),
    ...plan.warnings.map((w) => `Warning: ${w}`),
  ];
  return head + "\n" + table(rows) + (tail.length > 0 ? "\n" + tail.join("\n") + "\n" : "");
}
