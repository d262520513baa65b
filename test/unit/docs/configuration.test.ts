// docs/configuration.md documents every environment variable the code reads, and only those: the
// variables are found in lib/ and tasks/ (test/docs.ts), the documented ones in the page's tables.
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT, variablesReadByCode } from "../../docs.js";

/** The names in the first column of the page's tables: `A`, `B_FILE`. */
function documented(): Set<string> {
  const page = readFileSync(join(ROOT, "docs", "configuration.md"), "utf8");
  const names = new Set<string>();
  for (const line of page.split("\n")) {
    const first = /^\| ([^|]+) \|/.exec(line)?.[1];
    if (first === undefined) continue;
    for (const m of first.matchAll(/`([A-Z][A-Z0-9_]*)`/g)) names.add(m[1] as string);
  }
  return names;
}

/** Variables the postgres image's own scripts read (stack/initdb): documented beside the tool's. */
function readByStackScripts(): Set<string> {
  const dir = join(ROOT, "stack", "initdb");
  const text = readdirSync(dir).map((f) => readFileSync(join(dir, f), "utf8")).join("\n");
  return new Set([...text.matchAll(/\$\{?([A-Z][A-Z0-9_]*)/g)].map((m) => m[1] as string));
}

describe("docs/configuration.md", () => {
  const code = variablesReadByCode();
  const docs = documented();

  it("finds the variables in the code (the finder itself works)", () => {
    expect(code.size).toBeGreaterThan(50);
    for (const name of ["BACKUP_DIR", "PGHOST", "AGE_IDENTITY_FILE", "HEALTHCHECK_URL_FILE", "VERIFY_PGPORT"]) expect(code.has(name), name).toBe(true);
  });

  it("documents every variable the code reads", () => {
    expect([...code.keys()].filter((n) => !docs.has(n)).map((n) => `${n} (read in ${code.get(n)})`)).toEqual([]);
  });

  it("documents nothing the code or the postgres image's scripts do not read", () => {
    const stack = readByStackScripts();
    expect([...docs].filter((n) => !code.has(n) && !stack.has(n))).toEqual([]);
  });
});
