import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ConnectStripper, parsePsqlError, startPsql } from "../../lib/psqlFeed.js";
import { extractSections } from "../../lib/sections.js";
import { toleratedInCluster, toleratedOnServer } from "../../lib/verifyRestore.js";

// Real pg_dumpall output (test/fixtures/make-dumpall-fixture.sh).
const FIXTURE = readFileSync(new URL("../fixtures/dumpall.sql", import.meta.url));

async function* once(data: Buffer): AsyncGenerator<Buffer> {
  yield data;
}

async function section(name: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  await extractSections(once(FIXTURE), [name], { onDatabaseData: (_n, chunk) => void parts.push(Buffer.from(chunk)) });
  return Buffer.concat(parts);
}

function strip(data: Buffer, size: number): { out: Buffer; found: boolean } {
  const s = new ConnectStripper();
  const out: Buffer[] = [];
  for (let i = 0; i < data.length; i += size) out.push(s.push(data.subarray(i, i + size)));
  return { out: Buffer.concat(out), found: s.found };
}

describe("ConnectStripper", () => {
  it.each([1, 7, 64, 1 << 16])("drops a --create section's preamble through its \\connect line (chunks of %i)", async (size) => {
    const data = await section("app");
    const cut = data.indexOf("\\connect app\n") + "\\connect app\n".length;
    const { out, found } = strip(data, size);
    expect(found).toBe(true);
    expect(out.equals(data.subarray(cut))).toBe(true);
    expect(out.toString("utf8")).not.toMatch(/CREATE DATABASE/);
    expect(out.toString("utf8")).toMatch(/^\\restrict /);
  });

  it("drops the \\connect line that precedes a template1 section", async () => {
    const data = await section("template1");
    const { out, found } = strip(data, 100);
    expect(found).toBe(true);
    expect(out.toString("utf8")).not.toMatch(/\\connect template1/);
    expect(out.toString("utf8")).toMatch(/PostgreSQL database dump complete/);
  });

  it("passes nothing on and reports no \\connect when the section has none", () => {
    const { out, found } = strip(Buffer.from("--\n-- Database \"x\" dump\n--\n\nSET x = 1;\n"), 5);
    expect(found).toBe(false);
    expect(out.length).toBe(0);
  });
});

describe("psql errors", () => {
  it.each<[string, ReturnType<typeof parsePsqlError>]>([
    ['psql:<stdin>:16: ERROR:  role "postgres" already exists', { line: 16, text: 'role "postgres" already exists' }],
    ["psql:<stdin>:9012: error: invalid command \\N", { line: 9012, text: "invalid command \\N" }],
    ["psql:<stdin>:3: FATAL:  terminating connection", { line: 3, text: "terminating connection" }],
    ['ERROR:  role "postgres" already exists', { line: null, text: 'role "postgres" already exists' }],
    ["DETAIL:  Key (id)=(1) already exists.", null],
    ["psql:<stdin>:5: WARNING:  no privileges were granted", null],
  ])("parses %s", (line, expected) => {
    expect(parsePsqlError(line)).toEqual(expected);
  });

  it("tolerates only an existing role, and only in the globals, in a scratch cluster", () => {
    const e = (line: number, text: string) => ({ line, text });
    expect(toleratedInCluster(e(16, 'role "postgres" already exists'), 40)).toBe(true);
    expect(toleratedInCluster(e(41, 'role "postgres" already exists'), 40)).toBe(false);
    expect(toleratedInCluster(e(10, 'relation "t" already exists'), 40)).toBe(false);
    expect(toleratedInCluster({ line: null, text: 'role "postgres" already exists' }, 40)).toBe(false);
  });

  it("tolerates missing roles and the original database name on a VERIFY_PGHOST server", () => {
    const e = (text: string) => ({ line: 1, text });
    expect(toleratedOnServer(e('role "app_owner" does not exist'), "app")).toBe(true);
    expect(toleratedOnServer(e('database "app" does not exist'), "app")).toBe(true);
    expect(toleratedOnServer(e('database "other" does not exist'), "app")).toBe(false);
    expect(toleratedOnServer(e('relation "public.t" does not exist'), "app")).toBe(false);
  });
});

describe("startPsql", () => {
  // A psql that never starts or cannot connect must fail the restore, not hang it.
  it.each([
    ["is not installed", { PATH: "/nonexistent" }, /psql exited with \?: .*ENOENT/],
    ["cannot connect", { PATH: process.env.PATH, PGHOST: "/nonexistent", PGCONNECT_TIMEOUT: "2" }, /psql exited with 2: .*connection to server/],
  ])("reports a psql that %s", async (_label, env, failure) => {
    const feed = startPsql("postgres", env);
    const writes = (async () => {
      for (let i = 0; i < 64; i++) await feed.write(Buffer.alloc(1 << 16, 0x41));
    })();
    await expect(writes).rejects.toThrow(/psql|EPIPE/);
    expect((await feed.finish()).failure).toMatch(failure);
  });
});
