// list-databases FILE: the databases a backup file holds, from its manifest (with table and
// row counts) or, for a file without one, by streaming it through the section reader. With
// BACKUP_VERIFY_KEY_FILE only a signed backup is listed (its signed manifest is what is shown).
import type { Config } from "../lib/config/config.js";
import type { Deps } from "../lib/core/deps.js";
import { decryptionProblem, openSqlStream } from "../lib/restore/decompress.js";
import { ExitCode, TaskError } from "../lib/core/errors.js";
import { humanBytes, table } from "../lib/core/format.js";
import { childEnv } from "../lib/postgres/connection.js";
import { resolveFile } from "../lib/store/resolveFile.js";
import type { ResolvedFile } from "../lib/store/resolveFile.js";
import { openManifest } from "../lib/backup/encryption.js";
import { assertBackupDir } from "../lib/store/backupDir.js";
import { listSections } from "../lib/sql/sections.js";

export interface ListDatabasesArgs {
  file: string;
  json: boolean;
}

export interface ListedDatabase {
  name: string;
  /** From the manifest: tables and rows counted in the dump stream. */
  tables?: number;
  rows?: number;
  /** From the stream: the section's size and whether it ended with pg_dump's trailer. */
  bytes?: number;
  complete?: boolean;
}

export interface DatabaseListing {
  file: string;
  path: string;
  source: "manifest" | "stream";
  databases: ListedDatabase[];
  /** Databases that existed when the backup was taken but whose sections are in older backups (manifest only). */
  notInFile: string[];
  warnings: string[];
}

async function fromStream(config: Config, deps: Deps, f: ResolvedFile) {
  const path = f.path;
  const sql = openSqlStream(f, { threads: config.compression.threads, env: childEnv(config.pg, deps.env), identity: config.encryption.identity });
  try {
    const result = await listSections(sql.stream);
    await sql.done;
    return result;
  } catch (err) {
    sql.cancel();
    const failure = (await sql.cause) ?? err;
    const undecryptable = decryptionProblem(f, config.encryption.identity, failure);
    if (undecryptable !== null) throw new TaskError(ExitCode.refused, undecryptable, { cause: failure });
    throw new TaskError(ExitCode.failed, `cannot read ${path}: ${(failure as Error).message}`, { cause: failure });
  }
}

async function listDatabasesOf(config: Config, deps: Deps, file: string): Promise<DatabaseListing> {
  if (!file.includes("/")) await assertBackupDir(config.backupDir, "there is nothing to list");
  const key = config.signing.verifyKey;
  const f = await resolveFile(config.backupDir, file, undefined, key);
  // With a verify key only a signed backup is listed; without one, a file whose sidecars do not check out is read as it is, with a warning.
  if (f.trustProblem !== null && key !== null) throw new TaskError(ExitCode.refused, `list-databases refused: ${f.trustProblem}`);
  const warnings = f.trustProblem === null ? [] : [`manifest and checksums not used: ${f.trustProblem}`];
  if (f.manifest !== null) {
    // An encrypted backup's table names and row counts are sealed: AGE_IDENTITY_FILE opens them.
    const m = await openManifest(f.manifest, config.encryption.identity, deps.env);
    const databases = m.included.map((name) => {
      const counts = Object.values(m.rowCounts[name] ?? {});
      return { name, tables: counts.length, rows: counts.reduce((a, b) => a + b, 0) };
    });
    return { file: f.name, path: f.path, source: "manifest", databases, notInFile: m.databases.filter((d) => !m.included.includes(d)), warnings };
  }
  const r = await fromStream(config, deps, f);
  if (!r.clusterTrailer) warnings.push("the file ends without its \"cluster dump complete\" trailer: it is truncated");
  const databases = r.sections.map((s) => ({ name: s.name, bytes: s.bytes, complete: s.complete }));
  return { file: f.name, path: f.path, source: "stream", databases, notInFile: [], warnings };
}

export async function run(config: Config, deps: Deps, args: ListDatabasesArgs): Promise<DatabaseListing> {
  const listing = await listDatabasesOf(config, deps, args.file);
  for (const w of listing.warnings) deps.log.warn({ task: "list-databases", backup: listing.file }, w);
  if (args.json) {
    deps.out(JSON.stringify(listing, null, 2) + "\n");
    return listing;
  }
  const rows =
    listing.source === "manifest"
      ? [["DATABASE", "TABLES", "ROWS"], ...listing.databases.map((d) => [d.name, String(d.tables), String(d.rows)])]
      : [["DATABASE", "SIZE", "COMPLETE"], ...listing.databases.map((d) => [d.name, humanBytes(d.bytes ?? 0), d.complete === true ? "yes" : "NO"])];
  const notes = [
    `${listing.file}: ${listing.databases.length} database(s), from the ${listing.source === "manifest" ? "manifest" : "file itself (no manifest)"}`,
    ...(listing.notInFile.length > 0 ? [`Not in this file (unchanged since an older backup): ${listing.notInFile.join(", ")}`] : []),
    ...listing.warnings.map((w) => `Warning: ${w}`),
  ];
  deps.out(table(rows) + notes.join("\n") + "\n");
  return listing;
}
