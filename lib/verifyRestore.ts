// The scratch restore behind `verify --restore`, kept in restoreChainForVerify() so it can
// be swapped for the shared restore executor (lib/restoreExec.ts) once that exists. It
// restores what planRestore chose: the newest file's globals first, then each database's
// newest section, each file streamed once through its decompressor into psql.
import type { Logger } from "./log.js";
import { isPreexisting } from "./dump.js";
import { openSqlStream } from "./decompress.js";
import { withClient } from "./pg.js";
import { ConnectStripper, startPsql } from "./psqlFeed.js";
import type { PsqlError, PsqlFeed, PsqlOutcome } from "./psqlFeed.js";
import type { RestorePlan, RestoreStep } from "./restorePlan.js";
import { extractSections } from "./sections.js";
import type { SectionEvents } from "./sections.js";
import { parseQualifiedName, rowCountDiffs } from "./verifyChecks.js";
import type { RestoredCount } from "./verifyChecks.js";
import { codecOf } from "./verifyStream.js";
import type { RestoreTarget } from "./verifyTarget.js";

export interface RestoredDatabase {
  name: string;
  /** The database it was restored into (differs from name on a VERIFY_PGHOST server). */
  restoredAs: string;
  /** The backup whose section was restored. */
  provider: string;
}

export interface RestoreProblem {
  /** The backup file the failing input came from, when known. */
  file: string | null;
  message: string;
}

export interface ChainRestore {
  databases: RestoredDatabase[];
  /** What went wrong; empty when the restore is clean. */
  problems: RestoreProblem[];
  /** Expected errors that were ignored (see the tolerated* rules). */
  tolerated: number;
}

interface Options {
  threads: number;
  env: NodeJS.ProcessEnv;
  log: Logger;
}

/** Our own cluster already has the postgres role initdb made, so the globals' CREATE ROLE for it fails; nothing else may. */
export function toleratedInCluster(e: PsqlError, globalsLines: number): boolean {
  return e.line !== null && e.line <= globalsLines && /^role ".*" already exists$/.test(e.text);
}

/**
 * On a VERIFY_PGHOST server the roles are not created (that would change a shared server),
 * so owner/grant statements for them fail, as do database-level statements naming the
 * original database, which does not exist there (openRestoreTarget's caller checks that).
 */
export function toleratedOnServer(e: PsqlError, database: string): boolean {
  return /^role ".*" does not exist$/.test(e.text) || e.text === `database "${database}" does not exist`;
}

const newlines = (b: Buffer): number => {
  let n = 0;
  for (let i = b.indexOf(0x0a); i >= 0; i = b.indexOf(0x0a, i + 1)) n++;
  return n;
};

/** Adds psql's failure and its intolerable errors to acc, grouped by the file (fileOf) each came from. */
function judge(out: PsqlOutcome, where: string, tolerated: (e: PsqlError) => boolean, fileOf: (e: PsqlError) => string | null, acc: ChainRestore): void {
  const prefix = (file: string | null) => [file, where].filter((x) => x !== null && x !== "").join(", ");
  if (out.failure !== null) acc.problems.push({ file: null, message: `${prefix(null)}: ${out.failure}` });
  const bad = out.errors.filter((e) => !tolerated(e));
  acc.tolerated += out.errors.length - bad.length;
  const byFile = new Map<string | null, PsqlError[]>();
  for (const e of bad) byFile.set(fileOf(e), [...(byFile.get(fileOf(e)) ?? []), e]);
  for (const [file, errors] of byFile) {
    const shown = errors.slice(0, 3).map((e) => (e.line === null ? e.text : `line ${e.line}: ${e.text}`));
    acc.problems.push({ file, message: `${prefix(file)}: psql reported ${errors.length} error(s): ${shown.join("; ")}` });
  }
  const unkept = out.errorCount - out.errors.length;
  if (unkept > 0) acc.problems.push({ file: null, message: `${prefix(null)}: psql reported ${unkept} more error(s)` });
}

/** Streams one file and hands the wanted sections to `events`; returns the sections found or why it failed. */
async function streamStep(step: RestoreStep, opts: Options, events: SectionEvents): Promise<{ found: string[]; problem: string | null }> {
  const sql = openSqlStream(step.path, codecOf(step.file), opts.threads, opts.env);
  try {
    const r = await extractSections(sql.stream, step.databases, events);
    await sql.done;
    const found = step.databases.filter((db) => !r.missing.includes(db));
    if (r.missing.length > 0) return { found, problem: `${step.file} lacks the sections of ${JSON.stringify(r.missing)}` };
    if (!r.clusterTrailer) return { found, problem: `${step.file} ends without its "cluster dump complete" trailer (truncated)` };
    return { found, problem: null };
  } catch (err) {
    sql.cancel();
    await sql.done.catch(() => undefined);
    return { found: [], problem: `${step.file}: ${(err as Error).message}` };
  }
}

/** The point's file first: its globals (roles) must exist before any database section. */
const globalsFirst = (plan: RestorePlan): RestoreStep[] => [...plan.steps].sort((a, b) => Number(b.globals) - Number(a.globals));

async function intoCluster(plan: RestorePlan, target: RestoreTarget, opts: Options): Promise<ChainRestore> {
  const acc: ChainRestore = { databases: [], problems: [], tolerated: 0 };
  const feed = startPsql(target.pg.database, target.env);
  // psql numbers the lines of its whole input; these map an error back to its file.
  let fed = 0;
  let globalsLines = 0;
  const starts: { file: string; line: number }[] = [];
  const write = (chunk: Buffer): Promise<void> => {
    fed += newlines(chunk);
    return feed.write(chunk);
  };
  const fileOf = (e: PsqlError) => (e.line === null ? null : (starts.findLast((s) => s.line <= (e.line as number))?.file ?? null));
  try {
    for (const step of globalsFirst(plan)) {
      opts.log.info({ backup: step.file, databases: step.databases.length, globals: step.globals }, `restoring from ${step.file}`);
      starts.push({ file: step.file, line: fed + 1 });
      const r = await streamStep(step, opts, {
        onGlobals: step.globals
          ? async (chunk) => {
              await write(chunk);
              globalsLines = fed;
            }
          : undefined,
        onDatabaseData: (_name, chunk) => write(chunk),
      });
      acc.databases.push(...r.found.map((name) => ({ name, restoredAs: name, provider: step.file })));
      if (r.problem !== null) {
        acc.problems.push({ file: step.file, message: r.problem });
        break;
      }
    }
  } finally {
    judge(await feed.finish(), "", (e) => toleratedInCluster(e, globalsLines), fileOf, acc);
  }
  return acc;
}

async function intoScratchDatabases(plan: RestorePlan, target: RestoreTarget, opts: Options): Promise<ChainRestore> {
  const acc: ChainRestore = { databases: [], problems: [], tolerated: 0 };
  // --create sections end with database-level statements (ALTER DATABASE … SET, GRANT … ON
  // DATABASE) that name the original database; on a server that has one, they would change it.
  const existing = new Set(await target.databaseNames());
  const clash = Object.keys(plan.databases).filter((db) => !isPreexisting(db) && existing.has(db));
  if (clash.length > 0) {
    acc.problems.push({
      file: null,
      message: `${target.label} already has database(s) ${JSON.stringify(clash)}, which restoring the backup's sections could change; point VERIFY_PGHOST at a server reserved for verification`,
    });
    return acc;
  }
  for (const step of globalsFirst(plan)) {
    let open: { feed: PsqlFeed; db: RestoredDatabase; strip: ConnectStripper } | null = null;
    const close = async (): Promise<void> => {
      if (open === null) return;
      const { feed, db, strip } = open;
      open = null;
      judge(await feed.finish(), `${JSON.stringify(db.name)} (as ${db.restoredAs})`, (e) => toleratedOnServer(e, db.name), () => step.file, acc);
      if (!strip.found) acc.problems.push({ file: step.file, message: `${step.file}: the section of ${JSON.stringify(db.name)} has no \\connect line` });
    };
    let r: Awaited<ReturnType<typeof streamStep>>;
    try {
      r = await streamStep(step, opts, {
        onDatabaseStart: async (name) => {
          const db = { name, restoredAs: await target.createDatabase(name), provider: step.file };
          acc.databases.push(db);
          open = { feed: startPsql(db.restoredAs, target.env), db, strip: new ConnectStripper() };
        },
        onDatabaseData: async (_name, chunk) => {
          const out = open?.strip.push(chunk);
          if (open !== null && out !== undefined && out.length > 0) await open.feed.write(out);
        },
        onDatabaseEnd: close,
      });
    } finally {
      await close();
    }
    if (r.problem !== null) {
      acc.problems.push({ file: step.file, message: r.problem });
      break;
    }
  }
  return acc;
}

export async function restoreChainForVerify(plan: RestorePlan, target: RestoreTarget, opts: Options): Promise<ChainRestore> {
  return target.renames ? intoScratchDatabases(plan, target, opts) : intoCluster(plan, target, opts);
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
