// Reads one backup file end to end the way a restore would (through its decompressor),
// splitting it into sections and counting COPY rows per section, so verify can compare
// what the file really holds with what its manifest claims.
import type { CatalogEntry } from "../store/catalog.js";
import type { Logger } from "../core/log.js";
import { openSqlStream } from "../restore/decompress.js";
import type { ReadOptions, SqlSource } from "../restore/decompress.js";
import { parseBackupName } from "../store/naming.js";
import { RowCounter } from "../backup/rowCounter.js";
import { readSections } from "../sql/sections.js";
import type { SectionsResult } from "../sql/splitter.js";
import type { StreamScan } from "./checks.js";

/** A catalog entry as a reader needs it: format from its name, recipients from its manifest. */
export function sourceOf(e: CatalogEntry): SqlSource {
  const parsed = parseBackupName(e.name);
  if (parsed === null) throw new Error(`${e.name} is not a backup file name`);
  return { name: e.name, path: e.path, codec: parsed.codec, encrypted: parsed.encrypted, recipients: e.manifest?.encryption?.recipients ?? null };
}

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));
const PROGRESS_MS = 10_000;

export async function scanBackup(e: CatalogEntry, read: ReadOptions, log: Logger): Promise<StreamScan> {
  const sql = openSqlStream(sourceOf(e), read);
  const rowCounts = new Map<string, Record<string, number>>();
  let counter: RowCounter | null = null;
  let rawBytes = 0;
  async function* counted(src: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    for await (const chunk of src) {
      rawBytes += chunk.length;
      yield chunk;
    }
  }
  let sections: SectionsResult | null = null;
  let error: string | null = null;
  const t0 = Date.now();
  const timer = setInterval(() => {
    const secs = (Date.now() - t0) / 1000;
    log.info({ backup: e.name, rawBytes, rawMBps: +(rawBytes / 1e6 / secs).toFixed(1) }, `progress: ${(rawBytes / 1e6).toFixed(0)} MB of ${e.name} read back`);
  }, PROGRESS_MS);
  try {
    sections = await readSections(counted(sql.stream), {
      onDatabaseStart: () => void (counter = new RowCounter()),
      onDatabaseData: (_name, chunk) => counter?.push(chunk),
      onDatabaseEnd: (name) => {
        // A name printed twice would be caught by the sections check; keep the counts summed.
        const prev = rowCounts.get(name) ?? {};
        for (const [table, n] of Object.entries(counter?.toObject() ?? {})) prev[table] = (prev[table] ?? 0) + n;
        rowCounts.set(name, prev);
      },
    });
  } catch (err) {
    sql.cancel();
    // A reader cut short by a dying filter saw "Premature close"; the filter's own error says why.
    error = message((await sql.cause) ?? err);
  } finally {
    clearInterval(timer);
  }
  // The decompressor's exit status is the only sign of a corrupt block that still produced text.
  await sql.done.catch((err: unknown) => {
    error ??= message(err);
  });
  return { error, rawBytes, sections: error === null ? sections : null, rowCounts };
}
