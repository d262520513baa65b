// The restore behind `verify --restore`: the chain restore-latest would restore, through the
// shared executor (lib/restore/exec.ts), into the target lib/verify/target.ts prepared; then
// count(*) of every table the manifests list, in the databases it restored.
import type { CatalogEntry } from "../store/catalog.js";
import type { Config } from "../config/config.js";
import type { Logger } from "../core/log.js";
import { withClient } from "../postgres/connection.js";
import { executeRestore } from "../restore/exec.js";
import { RestoreFailure, restoreContext } from "../restore/context.js";
import type { RestoreContext, RestoreOutcome, RestoreRequest } from "../restore/context.js";
import type { RestorePlan } from "../restore/plan.js";
import { latestRequest } from "../restore/request.js";
import { parseQualifiedName, rowCountDiffs } from "./checks.js";
import type { RestoredCount } from "./checks.js";
import type { RestoreTarget } from "./target.js";

export interface RestoredDatabase {
  name: string;
  /** The database it was restored into (differs from name on a VERIFY_PGHOST server). */
  restoredAs: string;
  /** The backup whose section was restored. */
  provider: string;
}

export interface ChainRestore {
  /** Those restored completely, also when others failed. */
  databases: RestoredDatabase[];
  /** Roles created for the restore: the backup's in a scratch cluster, stand-ins on a server. */
  roles: number;
  /** Why the restore failed, and the file of the first database that failed (null: no one file's); null when it did not. */
  failure: { file: string | null; message: string } | null;
  /** What the restore read of each file (RestoreOutcome.reads); empty when it failed before reading. */
  reads: RestoreOutcome["reads"];
}

/** The executor's message with each scratch name shown as `"original" (as scratch)`; scratch names are unique random words. */
function originalNames(message: string, request: RestoreRequest): string {
  let out = message;
  for (const d of request.databases) if (d.target !== d.source) out = out.split(JSON.stringify(d.target)).join(`${JSON.stringify(d.source)} (as ${d.target})`);
  return out;
}

export async function restoreChainForVerify(
  config: Config,
  env: NodeJS.ProcessEnv,
  log: Logger,
  plan: RestorePlan,
  catalog: readonly CatalogEntry[],
  target: RestoreTarget,
  observe: RestoreContext["observe"],
): Promise<ChainRestore> {
  // No cluster lock: the target is never the cluster the lock guards; `exclusive` says whether temporary databases there are ours.
  const ctx: RestoreContext = { ...restoreContext(config, env, log), pg: target.pg, exclusive: target.exclusive, observe };
  const reads: RestoreOutcome["reads"] = [];
  let request: RestoreRequest | null = null;
  let roles: readonly string[] = [];
  const restoredAs = (targets: readonly string[]): RestoredDatabase[] =>
    (request?.databases ?? []).filter((d) => targets.includes(d.target)).map((d) => ({ name: d.source, restoredAs: d.target, provider: d.file.name }));
  try {
    const prepared = await target.prepare(latestRequest(plan, catalog, false), ctx);
    request = prepared.request;
    roles = prepared.roles;
    const outcome = await executeRestore(ctx, request, reads);
    return { databases: restoredAs(outcome.restored), roles: roles.length + outcome.createdRoles.length, failure: null, reads };
  } catch (err) {
    const text = err instanceof Error ? err.message : String(err);
    const message = request === null ? text : originalNames(text, request);
    if (!(err instanceof RestoreFailure)) return { databases: [], roles: roles.length, failure: { file: null, message }, reads };
    return { databases: restoredAs(err.restored), roles: roles.length, failure: { file: err.failures[0]?.file ?? null, message }, reads };
  }
}

/** SELECT count(*) per table the provider's manifest lists, in the restored database. */
export async function countRestoredRows(
  target: RestoreTarget,
  databases: readonly RestoredDatabase[],
  expectedFor: (db: RestoredDatabase) => Record<string, number>,
  log: Logger,
): Promise<RestoredCount[]> {
  const out: RestoredCount[] = [];
  for (const db of databases) {
    const expected = expectedFor(db);
    const actual: Record<string, number | null> = {};
    for (const table of Object.keys(expected)) actual[table] = null;
    await withClient(
      { ...target.pg, connectTimeoutSeconds: 5 },
      db.restoredAs,
      async (c) => {
        for (const table of Object.keys(expected)) {
          const parts = parseQualifiedName(table);
          if (parts === null) continue;
          // ONLY: a COPY holds a table's own rows, not those of inheritance children.
          const sql = `SELECT count(*)::int8 AS n FROM ONLY ${c.escapeIdentifier(parts[0])}.${c.escapeIdentifier(parts[1])}`;
          const r = await c.query<{ n: string }>(sql).catch(() => null);
          if (r !== null) actual[table] = Number(r.rows[0]?.n ?? NaN);
        }
      },
      log,
    ).catch((err: unknown) => log.warn({ database: db.name, err: (err as Error).message }, "restored database cannot be opened"));
    const counted = Object.values(actual).filter((n): n is number => n !== null);
    out.push({ database: db.name, provider: db.provider, diffs: rowCountDiffs(expected, actual), tables: counted.length, rows: counted.reduce((a, b) => a + b, 0) });
  }
  return out;
}
