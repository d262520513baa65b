// Pure: what executeRestore is asked to do for each restore command.
import type { CatalogEntry } from "../store/catalog.js";
import { isPreexisting } from "../backup/dump.js";
import { ExitCode, TaskError } from "../core/errors.js";
import type { RestoreFile, RestoreRequest } from "./context.js";
import type { RestorePlan } from "./plan.js";
import type { ResolvedFile } from "../store/resolveFile.js";
import { targetNameProblem } from "./target.js";

/** A planned backup as the executor reads it; the catalog must have been scanned trusted (lib/store/catalog.ts), so its expectation is known. */
function fromEntry(e: CatalogEntry): RestoreFile {
  if (e.manifest === null || e.expect === undefined || e.expect === null) throw new Error(`${e.name} was not read through its checksums (a trusted catalog scan)`);
  const m = e.manifest;
  return { name: e.name, path: e.path, codec: m.compression.codec, encrypted: m.encryption !== undefined, recipients: m.encryption?.recipients ?? null, expect: e.expect };
}

export function fromResolved(f: ResolvedFile): RestoreFile {
  return { name: f.name, path: f.path, codec: f.codec, encrypted: f.encrypted, recipients: f.manifest?.encryption?.recipients ?? null, expect: f.expect };
}

/** restore-latest and auto-restore: the point's globals (roles as of the restore point), then each database from the file the plan chose. */
export function latestRequest(plan: RestorePlan, catalog: readonly CatalogEntry[], dropExisting: boolean): RestoreRequest {
  const files = plan.steps.map((s) => {
    const entry = catalog.find((e) => e.name === s.file);
    if (entry === undefined) throw new Error(`planned backup ${s.file} is not in the catalog`);
    return fromEntry(entry);
  });
  const byName = new Map(files.map((f) => [f.name, f]));
  const file = (name: string) => byName.get(name) as RestoreFile;
  return {
    files,
    globals: { file: file(plan.globalsFrom), mode: "all" },
    databases: plan.steps.flatMap((s) => s.databases.map((db) => ({ file: file(s.file), source: db, target: db }))),
    dropExisting,
    continueOnError: false,
  };
}

/** restore-full: every database the file holds, with its globals. */
export function fullRequest(f: ResolvedFile, databases: readonly string[], dropExisting: boolean): RestoreRequest {
  const file = fromResolved(f);
  return { files: [file], globals: { file, mode: "all" }, databases: databases.map((db) => ({ file, source: db, target: db })), dropExisting, continueOnError: false };
}

/**
 * restore-database: one database, optionally under another name, after creating the roles the
 * cluster lacks (its owner and grantees among them) from the file's globals.
 */
export function databaseRequest(f: ResolvedFile, db: string, as: string | undefined, dropExisting: boolean): RestoreRequest {
  const target = as ?? db;
  if (target === "" || target === "template0") throw new TaskError(ExitCode.usage, `cannot restore into a database named ${JSON.stringify(target)}; choose another --as`);
  if (as !== undefined && as !== db && isPreexisting(as)) {
    throw new TaskError(ExitCode.usage, `--as ${as}: template1 and postgres are only restored from their own sections; choose another name`);
  }
  if (/[\r\n]/.test(target)) throw new TaskError(ExitCode.usage, "--as: a database name cannot hold a line break (pg_dump could not back it up)");
  const problem = as === undefined ? null : targetNameProblem(as);
  if (problem !== null) throw new TaskError(ExitCode.usage, `--as ${JSON.stringify(as)}: ${problem}; choose another name`);
  const m = f.manifest;
  if (m !== null && !m.included.includes(db)) {
    const hint = m.databases.includes(db)
      ? `it was unchanged when ${f.name} was taken, so its section is in an older backup of the chain (see \`list\`), or use restore-latest`
      : `it holds: ${m.included.map((d) => JSON.stringify(d)).join(", ") || "no databases"}`;
    throw new TaskError(ExitCode.usage, `${f.name} holds no section for database ${JSON.stringify(db)}; ${hint}`);
  }
  const file = fromResolved(f);
  return { files: [file], globals: { file, mode: "missingRoles" }, databases: [{ file, source: db, target }], dropExisting, continueOnError: false };
}
