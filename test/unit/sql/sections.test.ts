import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import type { SectionsResult } from "../../../lib/sql/splitter.js";
import { extractSections, listSections, readSections } from "../../../lib/sql/sections.js";

// Real pg_dumpall output, made by test/fixtures/make-dumpall-fixture.sh.
const FIXTURE = readFileSync(new URL("../../fixtures/dumpall.sql", import.meta.url));
const TRAILER = Buffer.from("--\n-- PostgreSQL database cluster dump complete\n--\n\n");
const NAMES = ["template1", "app", "postgres", 'quo"te', "with space", "ünïcødé"];

async function* chunks(data: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

interface Collected {
  result: SectionsResult;
  globals: Buffer;
  sections: { name: string; data: Buffer; complete: boolean | null }[];
  events: string[];
}

async function collect(data: Buffer, size = 1 << 16): Promise<Collected> {
  const globals: Buffer[] = [];
  const sections: { name: string; parts: Buffer[]; complete: boolean | null }[] = [];
  const events: string[] = [];
  const result = await readSections(chunks(data, size), {
    onGlobals: (chunk) => void globals.push(Buffer.from(chunk)),
    onDatabaseStart: async (name) => {
      await Promise.resolve();
      events.push(`start ${name}`);
      sections.push({ name, parts: [], complete: null });
    },
    onDatabaseData: (name, chunk) => {
      const last = sections.at(-1);
      expect(last?.name).toBe(name);
      last?.parts.push(Buffer.from(chunk));
    },
    onDatabaseEnd: (name, complete) => {
      events.push(`end ${name} ${complete}`);
      const last = sections.at(-1);
      if (last !== undefined) last.complete = complete;
    },
  });
  return {
    result,
    globals: Buffer.concat(globals),
    sections: sections.map((s) => ({ name: s.name, data: Buffer.concat(s.parts), complete: s.complete })),
    events,
  };
}

function joined(c: Collected): Buffer {
  return Buffer.concat([c.globals, ...c.sections.map((s) => s.data)]);
}

/** The fixture as pg_dump before 15.14/16.10 printed it: no \restrict or \unrestrict lines. */
function withoutKeys(data: Buffer): Buffer {
  return Buffer.from(data.toString("latin1").replace(/^\\(?:un)?restrict \S+\n\n?/gm, ""), "latin1");
}

describe("readSections on real pg_dumpall output", () => {
  it("has the format facts the reader relies on", () => {
    const text = FIXTURE.toString("utf8");
    expect(text.endsWith(TRAILER.toString())).toBe(true);
    expect(text).toMatch(/^\\restrict \S+\n/m);
    expect(text).toContain('--\n-- Database "quo"te" dump\n--\n\n');
    expect(text).toContain('\\connect -reuse-previous=on "dbname=\'quo""te\'"\n');
  });

  it("finds every database, ignoring look-alikes in role names, function bodies and COPY rows", async () => {
    const c = await collect(FIXTURE);
    expect(c.result.databases).toEqual(NAMES);
    expect(c.result.clusterTrailer).toBe(true);
    expect(c.sections.map((s) => s.complete)).toEqual(NAMES.map(() => true));
    expect(c.events).toEqual(NAMES.flatMap((n) => [`start ${n}`, `end ${n} true`]));
  });

  it("reproduces the input byte for byte, minus the cluster trailer", async () => {
    const c = await collect(FIXTURE);
    expect(joined(c).equals(FIXTURE.subarray(0, FIXTURE.length - TRAILER.length))).toBe(true);
    expect(c.globals.toString().endsWith("--\n-- Databases\n--\n\n")).toBe(true);
    for (const s of c.sections) {
      expect(s.data.toString().startsWith(`--\n-- Database "${s.name}" dump\n--\n\n`)).toBe(true);
      expect(s.data.toString()).toMatch(/-- PostgreSQL database dump complete\n--\n\n\\unrestrict \S+\n\n$/);
    }
    expect(c.result.globalsBytes).toBe(c.globals.length);
    expect(c.result.sections.map((s) => s.bytes)).toEqual(c.sections.map((s) => s.data.length));
  });

  it.each([1, 2, 3, 5, 7, 13, 64, 1000, 4096])("gives identical results with %i-byte chunks", async (size) => {
    const whole = await collect(FIXTURE);
    const split = await collect(FIXTURE, size);
    expect(split.result).toEqual(whole.result);
    expect(split.events).toEqual(whole.events);
    expect(split.globals.equals(whole.globals)).toBe(true);
    expect(split.sections.map((s) => s.data.toString("hex"))).toEqual(whole.sections.map((s) => s.data.toString("hex")));
  });

  it("reports a file cut inside a section as truncated and that section incomplete", async () => {
    const cut = FIXTURE.indexOf("COPY public.lines") + 40;
    for (const size of [3, 1 << 16]) {
      const c = await collect(FIXTURE.subarray(0, cut), size);
      expect(c.result.databases).toEqual(["template1", "app"]);
      expect(c.result.clusterTrailer).toBe(false);
      expect(c.events.at(-1)).toBe("end app false");
      expect(joined(c).equals(FIXTURE.subarray(0, cut))).toBe(true);
    }
  });

  it("keeps every byte and never claims completeness for any cut of the file", async () => {
    const full = FIXTURE.length - TRAILER.length;
    for (let cut = 0; cut < FIXTURE.length; cut += 1) {
      const c = await collect(FIXTURE.subarray(0, cut));
      expect(c.result.clusterTrailer).toBe(false);
      expect(NAMES.slice(0, c.result.databases.length)).toEqual(c.result.databases);
      expect(joined(c).length).toBe(cut);
      // Only a cut exactly after a section's "\unrestrict KEY\n\n" leaves it complete.
      const last = c.sections.at(-1);
      if (last !== undefined && last.complete === true) expect(/\\unrestrict \S+\n\n$/.test(last.data.toString())).toBe(true);
      if (cut === full) expect(last?.complete).toBe(true);
    }
  });

  it("does not take a trailer followed by more bytes as the end", async () => {
    const data = Buffer.concat([FIXTURE, Buffer.from("SELECT 1;\n")]);
    const c = await collect(data, 11);
    expect(c.result.clusterTrailer).toBe(false);
    expect(c.result.databases).toEqual(NAMES);
    expect(joined(c).equals(data)).toBe(true);
    expect(c.sections.at(-1)?.complete).toBe(false);
  });

  it("without \\restrict keys, COPY rows still cannot split, but copied markers in names and bodies can", async () => {
    // Dumps from before the \restrict releases: the role name forges "-- Databases" plus a
    // header and the function body forges a trailer plus a header (the documented residual
    // risk); the COPY rows of app.lines and app.single forge the same and are ignored.
    const data = withoutKeys(FIXTURE);
    const c = await collect(data, 7);
    expect(c.result.databases).toEqual(['"evil"', "app", "evil", ...NAMES.slice(2)]);
    expect(c.result.clusterTrailer).toBe(true);
    expect(joined(c).equals(data.subarray(0, data.length - TRAILER.length))).toBe(true);
  });
});

describe("readSections on hand-made streams", () => {
  const header = (name: string): string => `--\n-- Database "${name}" dump\n--\n\n`;
  const done = "--\n-- PostgreSQL database dump complete\n--\n\n";
  const databases = "--\n-- Databases\n--\n\n";
  const cluster = "--\n-- PostgreSQL database cluster dump complete\n--\n\n";

  it.each([
    ["only globals", `SET x;\n${databases}${cluster}`, [], true],
    ["no Databases block", `SET x;\n${header("a")}${done}${cluster}`, [], false],
    [
      "a header inside a function body without a trailer before it",
      `${databases}${header("a")}CREATE FUNCTION f() AS $$\n\\connect b\n${header("b")}$$;\n${done}${header("c")}${done}${cluster}`,
      ["a", "c"],
      true,
    ],
    [
      "a trailer and header in COPY data",
      `${databases}${header("a")}\nCOPY t (s) FROM stdin;\n${done}${header("b")}\\.\n${done}${cluster}`,
      ["a"],
      true,
    ],
    ["a missing final newline", `${databases}${header("a")}${done}${cluster.trimEnd()}`, ["a"], false],
  ])("%s", async (_label, text, names, trailer) => {
    for (const size of [1, 4, 1 << 16]) {
      const data = Buffer.from(text);
      const c = await collect(data, size);
      expect(c.result.databases).toEqual(names);
      expect(c.result.clusterTrailer).toBe(trailer);
      expect(joined(c).equals(trailer ? data.subarray(0, data.length - cluster.length) : data)).toBe(true);
    }
  });

  it("passes a line longer than the inspection limit through unchanged", async () => {
    const long = `-- ${"x".repeat(3 << 20)}\n`;
    const data = Buffer.from(`${databases}${header("a")}${long}${done}${cluster}`);
    const c = await collect(data, 1 << 16);
    expect(c.result.databases).toEqual(["a"]);
    expect(c.sections[0]?.data.length).toBe(data.length - databases.length - cluster.length);
  });
});

describe("listSections and extractSections", () => {
  it("lists without callbacks", async () => {
    const result = await listSections(chunks(FIXTURE, 100));
    expect(result.databases).toEqual(NAMES);
  });

  it("extracts only the wanted sections and names the missing ones", async () => {
    const whole = await collect(FIXTURE);
    const got: Record<string, Buffer[]> = {};
    const ended: string[] = [];
    const result = await extractSections(chunks(FIXTURE, 5), ['quo"te', "nope"], {
      onDatabaseStart: (name) => void (got[name] = []),
      onDatabaseData: (name, chunk) => void got[name]?.push(Buffer.from(chunk)),
      onDatabaseEnd: (name, complete) => void ended.push(`${name} ${complete}`),
    });
    expect(Object.keys(got)).toEqual(['quo"te']);
    expect(Buffer.concat(got['quo"te'] ?? []).equals(whole.sections[3]?.data ?? Buffer.alloc(0))).toBe(true);
    expect(ended).toEqual(['quo"te true']);
    expect(result.missing).toEqual(["nope"]);
  });

  it("matches a name with a newline by its printed header (lib/backup/dump.ts prints CR/LF as spaces)", async () => {
    const text = `SET x;\n--\n-- Databases\n--\n\n--\n-- Database "new line" dump\n--\n\n--\n-- PostgreSQL database dump complete\n--\n\n`;
    const started: string[] = [];
    const globals: Buffer[] = [];
    const result = await extractSections(chunks(Buffer.from(text), 3), ["new\nline"], {
      onGlobals: (chunk) => void globals.push(Buffer.from(chunk)),
      onDatabaseStart: (name) => void started.push(name),
    });
    expect(started).toEqual(["new\nline"]);
    expect(result.missing).toEqual([]);
    expect(Buffer.concat(globals).toString()).toBe("SET x;\n--\n-- Databases\n--\n\n");
  });
});
