import { describe, expect, it } from "vitest";
import { describePsqlStderr, spawnPsql } from "../../../lib/restore/psql.js";

describe("describePsqlStderr", () => {
  it("takes psql's error line, its input line and the context lines", () => {
    const stderr = [
      "psql:<stdin>:12: NOTICE:  something harmless",
      'psql:<stdin>:105: ERROR:  type "nosuchtype" does not exist',
      "LINE 2:     b nosuchtype,",
      "              ^",
      "CONTEXT:  whatever",
      "",
    ].join("\n");
    expect(describePsqlStderr(stderr)).toEqual({
      line: 105,
      text: 'ERROR: type "nosuchtype" does not exist | LINE 2:     b nosuchtype, | ^ | CONTEXT:  whatever',
    });
  });

  it("falls back to the tail when psql printed no error line", () => {
    expect(describePsqlStderr("psql: error: connection to server failed\n")).toEqual({ line: null, text: "psql: error: connection to server failed" });
  });
});

describe("spawnPsql", () => {
  // A psql that cannot connect must fail the restore, not hang the writer.
  it("reports a psql that cannot connect", async () => {
    const psql = spawnPsql("postgres", { PATH: process.env.PATH, PGHOST: "/nonexistent", PGCONNECT_TIMEOUT: "2" }, [], { restrictKey: null });
    for (let i = 0; i < 64; i++) await psql.write(Buffer.alloc(1 << 16, 0x41));
    await expect(psql.finish()).rejects.toThrow(/^psql exited with 2: .*connection to server/);
  });
});

describe("spawnPsql without psql installed", () => {
  it("fails instead of hanging when psql is not on PATH", async () => {
    const p = spawnPsql("postgres", { PATH: "/nonexistent" }, [], { restrictKey: "k1" });
    await new Promise((r) => setTimeout(r, 100));
    await p.write(Buffer.from("SELECT 1;\n".repeat(100_000)));
    await expect(p.finish()).rejects.toThrow(/psql/);
  });
});
