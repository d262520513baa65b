import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { GlobalsFilter } from "../../../lib/restore/globalsFilter.js";
import type { ClusterGlobals, GlobalsMode } from "../../../lib/restore/globalsFilter.js";

/** The globals pushed in chunks of `size` bytes; the filtered SQL and the filter's lists. */
function filterGlobals(globals: Buffer, mode: GlobalsMode, cluster: ClusterGlobals, size = 1 << 20): { sql: Buffer; created: string[]; existing: string[] } {
  const filter = new GlobalsFilter(mode, cluster);
  const out: Buffer[] = [];
  for (let i = 0; i < globals.length; i += size) out.push(filter.push(globals.subarray(i, i + size)));
  out.push(filter.end());
  return { sql: Buffer.concat(out), created: filter.created, existing: filter.existing };
}
import { readSections } from "../../../lib/sql/sections.js";

// pg_dumpall --globals-only 15.18 of a cluster with a comment, settings, memberships and quoted names.
const KEY = "eXBeyOngAR58uBggcl5y71PLaSiZ6aD0b8xk927GKJlxibo52NeKVZk8vgKrxUi";
const BOB_PW = "'SCRAM-SHA-256$4096:FOqyj46fYuIK/zO+NOmMrw==$q6rMqb/caz6zlyIJhqLeAtfiCYnMomau1sHJM335H78=:54h41EU7LYa/hLjpBgTK61kI9jeKLvh+MOm4kHZlDlQ='";
const GLOBALS = `\\restrict ${KEY}

SET default_transaction_read_only = off;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
CREATE ROLE bob;
ALTER ROLE bob WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS PASSWORD ${BOB_PW};
COMMENT ON ROLE bob IS 'hi; CREATE ROLE eve;';
CREATE ROLE grp;
ALTER ROLE grp WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS;
CREATE ROLE postgres;
ALTER ROLE postgres WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS PASSWORD 'SCRAM-old';
CREATE ROLE "we""ird";
ALTER ROLE "we""ird" WITH LOGIN PASSWORD 'x''y' VALID UNTIL '2030-01-01 00:00:00+00';
ALTER ROLE bob SET search_path TO 'a', 'b';
GRANT grp TO bob GRANTED BY postgres;
GRANT grp TO "we""ird" WITH ADMIN OPTION GRANTED BY postgres;
CREATE TABLESPACE ts OWNER postgres LOCATION '/srv/ts';
GRANT CREATE ON TABLESPACE ts TO bob;

\\unrestrict ${KEY}
`;

const lines = (b: Buffer) => b.toString("utf8").split("\n");
const kept = (b: Buffer) => lines(b).filter((l) => l !== "");

describe("filterGlobals", () => {
  it("all: leaves out existing roles and tablespaces and keeps the connected role's password", () => {
    const r = filterGlobals(Buffer.from(GLOBALS), "all", { roles: new Set(["postgres", "bob"]), tablespaces: new Set(["ts"]), currentUser: "postgres" });
    expect(r.created).toEqual(["grp", 'we"ird']);
    expect(r.existing).toEqual(["bob", "postgres", "tablespace ts"]);
    expect(lines(r.sql)).toHaveLength(lines(Buffer.from(GLOBALS)).length);
    const out = kept(r.sql);
    expect(out).not.toContain("CREATE ROLE bob;");
    expect(out).not.toContain("CREATE ROLE postgres;");
    expect(out).toContain("ALTER ROLE postgres WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS;");
    expect(out).toContain(`ALTER ROLE bob WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS PASSWORD ${BOB_PW};`);
    expect(out).toContain("GRANT CREATE ON TABLESPACE ts TO bob;");
    expect(out.filter((l) => l.startsWith("CREATE TABLESPACE"))).toEqual([]);
    // pg_dumpall's keyed lines are left out: psql runs restricted with the restore's own key.
    expect(out.filter((l) => l.includes(KEY))).toEqual([]);
  });

  it("missingRoles: only what concerns roles the cluster lacks", () => {
    const r = filterGlobals(Buffer.from(GLOBALS), "missingRoles", { roles: new Set(["postgres", "grp"]), tablespaces: new Set(), currentUser: "postgres" });
    expect(r.created).toEqual(["bob", 'we"ird']);
    expect(kept(r.sql)).toEqual([
      "SET default_transaction_read_only = off;",
      "SET client_encoding = 'UTF8';",
      "SET standard_conforming_strings = on;",
      "CREATE ROLE bob;",
      `ALTER ROLE bob WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS PASSWORD ${BOB_PW};`,
      "COMMENT ON ROLE bob IS 'hi; CREATE ROLE eve;';",
      'CREATE ROLE "we""ird";',
      `ALTER ROLE "we""ird" WITH LOGIN PASSWORD 'x''y' VALID UNTIL '2030-01-01 00:00:00+00';`,
      "ALTER ROLE bob SET search_path TO 'a', 'b';",
      "GRANT grp TO bob GRANTED BY postgres;",
      'GRANT grp TO "we""ird" WITH ADMIN OPTION GRANTED BY postgres;',
    ]);
  });

  it("reads role names holding newlines and marker lines from real pg_dumpall output", async () => {
    const fixture = readFileSync(new URL("../../fixtures/dumpall.sql", import.meta.url));
    const parts: Buffer[] = [];
    await readSections((async function* () { yield fixture; })(), { onGlobals: (c) => void parts.push(Buffer.from(c)) });
    const globals = Buffer.concat(parts);
    const evil = 'r\n--\n-- Databases\n--\n\n--\n-- Database ""evil"" dump\n--\n\nx'.replace(/""/g, '"');
    const r = filterGlobals(globals, "missingRoles", { roles: new Set(["postgres"]), tablespaces: new Set(), currentUser: "postgres" });
    expect(r.created).toEqual([evil]);
    expect(r.sql.toString()).toContain(`ALTER ROLE "r\n--\n-- Databases`);
    const all = filterGlobals(globals, "all", { roles: new Set(["postgres", evil]), tablespaces: new Set(), currentUser: "postgres" });
    expect(all.sql.toString()).not.toMatch(/CREATE ROLE/);
  });
});

describe("GlobalsFilter as a stream", () => {
  const cluster = { roles: new Set(["postgres", "bob"]), tablespaces: new Set(["ts"]), currentUser: "postgres" };
  it.each([1, 3, 64])("gives the same SQL in chunks of %i bytes", (size) => {
    for (const mode of ["all", "missingRoles"] as const) {
      expect(filterGlobals(Buffer.from(GLOBALS), mode, cluster, size)).toEqual(filterGlobals(Buffer.from(GLOBALS), mode, cluster));
    }
  });

  it("streams a statement too long to hold, keeping or dropping it whole", () => {
    const long = `COMMENT ON ROLE bob IS '${"x\n".repeat(1 << 20)}';\n`;
    const globals = Buffer.from(`CREATE ROLE bob;\n${long}CREATE ROLE eve;\n`);
    expect(filterGlobals(globals, "all", cluster, 4096).sql.toString()).toBe(`\n${long}CREATE ROLE eve;\n`);
    const dropped = filterGlobals(globals, "missingRoles", cluster, 4096);
    expect(dropped.sql.toString()).toBe(`\n${"\n".repeat(1 << 20)}\nCREATE ROLE eve;\n`);
    expect(dropped.created).toEqual(["eve"]);
  });
});
