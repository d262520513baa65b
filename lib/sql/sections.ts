// The reading API over a pg_dumpall-shaped SQL stream: every section with backpressure
// (readSections), just the list (listSections), or only the wanted databases under their real
// names (extractSections). Where one section ends and the next begins is lib/sql/splitter.ts.
import { SectionSplitter } from "./splitter.js";
import type { SectionEvents, SectionsResult } from "./splitter.js";

/** How a database name appears in its section header (lib/backup/dump.ts writes CR/LF as spaces). */
export function printedName(name: string): string {
  return name.replace(/[\r\n]/g, " ");
}

function asBuffer(chunk: Uint8Array): Buffer {
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

/** Reads the whole stream, awaiting each callback before reading on (backpressure). */
export async function readSections(input: AsyncIterable<Uint8Array>, events: SectionEvents): Promise<SectionsResult> {
  const splitter = new SectionSplitter(events);
  for await (const chunk of input) await splitter.push(asBuffer(chunk));
  return splitter.end();
}

export function listSections(input: AsyncIterable<Uint8Array>): Promise<SectionsResult> {
  return readSections(input, {});
}

/**
 * Passes on only the sections of the wanted databases (and the globals, if onGlobals is
 * given), under their real names; `missing` lists wanted databases the stream lacks.
 */
export async function extractSections(
  input: AsyncIterable<Uint8Array>,
  wanted: Iterable<string>,
  events: SectionEvents,
): Promise<SectionsResult & { missing: string[] }> {
  const names = new Map([...wanted].map((name) => [printedName(name), name]));
  const found = new Set<string>();
  const result = await readSections(input, {
    onGlobals: events.onGlobals?.bind(events),
    onDatabaseStart: (printed) => {
      const name = names.get(printed);
      if (name === undefined) return;
      found.add(name);
      return events.onDatabaseStart?.(name);
    },
    onDatabaseData: (printed, chunk) => {
      const name = names.get(printed);
      return name === undefined ? undefined : events.onDatabaseData?.(name, chunk);
    },
    onDatabaseEnd: (printed, complete) => {
      const name = names.get(printed);
      return name === undefined ? undefined : events.onDatabaseEnd?.(name, complete);
    },
  });
  return { ...result, missing: [...names.values()].filter((name) => !found.has(name)) };
}
