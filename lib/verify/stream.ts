// Reads one backup file end to end the way a restore would (verified as it is read, through
// its decompressor), splitting it into sections and counting COPY rows per section, so verify
// can compare what the file really holds with what its manifest claims. verify --restore
// counts in the restore's own read instead (StreamObserver), so a file is read once.
import type { CatalogEntry } from "../store/catalog.js";
import type { Logger } from "../core/log.js";
import { openSqlStream } from "../restore/decompress.js";
import type { ReadOptions, SqlSource } from "../restore/decompress.js";
import { parseBackupName } from "../store/naming.js";
import { RowCounter } from "../backup/rowCounter.js";
import { readSections } from "../sql/sections.js";
import type { SectionEvents, SectionsResult } from "../sql/splitter.js";
import { IntegrityError } from "../store/verifiedRead.js";
import type { StreamScan } from "./checks.js";

/** A catalog entry as a reader needs it: format from its name, recipients and what its bytes must be from its (trusted, when scanned so) manifest. */
export function sourceOf(e: CatalogEntry): SqlSource {
  const parsed = parseBackupName(e.name);
  if (parsed === null) throw new Error(`${e.name} is not a backup file name`);
  const expect = e.expect ?? { name: e.name, chunks: e.manifest?.chunks ?? null, sha256: e.manifest?.sha256 ?? null };
  return { name: e.name, path: e.path, codec: parsed.codec, encrypted: parsed.encrypted, recipients: e.manifest?.encryption?.recipients ?? null, expect };
}

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));
const PROGRESS_MS = 10_000;

/** Counts what a read of one file hands on: its decompressed bytes and each section's COPY rows, as restore and scan read it. */
export class StreamObserver {
  readonly rowCounts = new Map<string, Record<string, number>>();
  rawBytes = 0;
  private counter: RowCounter | null = null;

  readonly events: SectionEvents = {
    onGlobals: (chunk) => void (this.rawBytes += chunk.length),
    onDatabaseStart: () => void (this.counter = new RowCounter()),
    onDatabaseData: (_name, chunk) => {
      this.rawBytes += chunk.length;
      this.counter?.push(chunk);
    },
    onDatabaseEnd: (name) => {
      // A name printed twice would be caught by the sections check; keep the counts summed.
      const prev = this.rowCounts.get(name) ?? {};
      for (const [table, n] of Object.entries(this.counter?.toObject() ?? {})) prev[table] = (prev[table] ?? 0) + n;
      this.rowCounts.set(name, prev);
    },
  };

  /** The scan of a read that ended with `sections` (null when it failed, with `error`). */
  scan(sections: SectionsResult | null, error: unknown): StreamScan {
    // The sections count every byte, the cluster trailer too; a failed read, what was handed on.
    const rawBytes = sections?.bytes ?? this.rawBytes;
    return { error: error === null ? null : message(error), integrity: error instanceof IntegrityError, rawBytes, sections: error === null ? sections : null, rowCounts: this.rowCounts };
  }
}

/** Reads one backup file end to end (verified as it is read, then through age and its decompressor), splitting it into sections and counting COPY rows. */
export async function scanBackup(e: CatalogEntry, read: ReadOptions, log: Logger): Promise<StreamScan> {
  const sql = openSqlStream(sourceOf(e), read);
  const observer = new StreamObserver();
  let sections: SectionsResult | null = null;
  let error: unknown = null;
  const t0 = Date.now();
  const timer = setInterval(() => {
    const secs = (Date.now() - t0) / 1000;
    log.info({ backup: e.name, rawBytes: observer.rawBytes, rawMBps: +(observer.rawBytes / 1e6 / secs).toFixed(1) }, `progress: ${(observer.rawBytes / 1e6).toFixed(0)} MB of ${e.name} read back`);
  }, PROGRESS_MS);
  try {
    sections = await readSections(sql.stream, observer.events);
  } catch (err) {
    sql.cancel();
    // A reader cut short by a dying filter saw "Premature close"; the filter's own error says why.
    error = (await sql.cause) ?? err;
  } finally {
    clearInterval(timer);
  }
  // The decompressor's exit status is the only sign of a corrupt block that still produced text.
  await sql.done.catch((err: unknown) => {
    error ??= err;
  });
  return observer.scan(sections, error);
}
