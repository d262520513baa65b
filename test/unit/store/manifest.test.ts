import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { MANIFEST_MAX_BYTES, ManifestInvalid, manifestProblem, parseManifest, readManifest } from "../../../lib/store/manifest.js";
import { testManifest } from "../../manifests.js";

const NAME = "20240110_030000_differential.sql.zst";
const FULL = "20240107_030000_full.sql.zst";

function valid(): Record<string, unknown> {
  return JSON.parse(
    JSON.stringify(
      testManifest(NAME, {
        parent: FULL,
        compression: { codec: "zstd", program: "zstd -T2 -1", level: 1 },
        finishedAt: "2024-01-10T03:05:00.000Z",
        fingerprint: { globals: "g", statsEpoch: "", databases: { app: { oid: 16384, hash: "h" } } },
        databases: ["postgres", "app"],
        included: ["app"],
        rowCounts: { app: { "public.t": 3 } },
      }),
    ),
  ) as Record<string, unknown>;
}

/** Sets `path` ("a.b.c") in a copy of a valid manifest; `undefined` deletes the field. */
function withField(path: string, value: unknown): Record<string, unknown> {
  const m = valid();
  const keys = path.split(".");
  let at = m;
  for (const k of keys.slice(0, -1)) at = at[k] as Record<string, unknown>;
  const last = keys.at(-1) as string;
  if (value === undefined) delete at[last];
  else at[last] = value;
  return m;
}

describe("manifestProblem", () => {
  it("accepts what the backup task writes, with and without a parent and a level", () => {
    expect(manifestProblem(valid(), NAME)).toBeNull();
    expect(manifestProblem(JSON.parse(JSON.stringify(testManifest(FULL, { compression: { codec: "zstd", program: "zstd", level: null } }))), FULL)).toBeNull();
  });

  it.each<[string, unknown, RegExp]>([
    ["format", 2, /^format: 2 is not a manifest format this version reads \(1\)$/],
    ["format", undefined, /^format: missing is not a manifest format/],
    ["tool", "pg-swarm-backup", /^tool: "pg-swarm-backup" is not an object$/],
    ["tool.version", 3, /^tool\.version: 3 is not a string$/],
    ["name", 42, /^name: 42 is not a string$/],
    ["name", "evil.sql", /^name: "evil\.sql" is not a backup name/],
    ["name", "20240110_030000_differential.sql.bz2", /^name: .* does not match the file name 20240110_030000_differential\.sql\.zst$/],
    ["tier", "weekly", /^tier: "weekly" is not one of full, differential, incremental$/],
    ["tier", "full", /^tier: "full" does not match the name's tier \(differential\)$/],
    ["parent", 7, /^parent: 7 is not a string$/],
    ["parent", "../../etc/passwd", /^parent: "\.\.\/\.\.\/etc\/passwd" is neither null nor a backup name$/],
    ["parent", NAME, /^parent: .* is the backup itself$/],
    ["startedAt", "yesterday", /^startedAt: "yesterday" is not an ISO 8601 time/],
    ["startedAt", 1704855600000, /^startedAt: 1704855600000 is not an ISO 8601 time/],
    ["startedAt", "2024-02-30T03:00:00Z", /^startedAt: .* (is not an ISO 8601 time|does not match the time in the name)/],
    ["startedAt", "2030-01-10T03:00:00.000Z", /^startedAt: .* does not match the time in the name \(2024-01-10T03:00:00\.000Z\)$/],
    ["finishedAt", "2024-01-10T02:00:00.000Z", /^finishedAt: .* is before startedAt$/],
    ["finishedAt", null, /^finishedAt: null is not an ISO 8601 time/],
    ["serverVersion", ["16"], /^serverVersion: \["16"\] is not a string$/],
    ["pgDumpVersion", undefined, /^pgDumpVersion: missing is not a string$/],
    ["systemIdentifier", 7300000000000000, /^systemIdentifier: .* is not a system identifier/],
    ["systemIdentifier", "abc", /^systemIdentifier: "abc" is not a system identifier/],
    ["compression", null, /^compression: null is not an object$/],
    ["compression.codec", "evil", /^compression\.codec: "evil" is not one of bzip2, zstd, gzip, none$/],
    ["compression.codec", "gzip", /^compression\.codec: "gzip" does not match the file name's extension \(zstd\)$/],
    ["compression.program", null, /^compression\.program: null is not a string$/],
    ["compression.level", -1, /^compression\.level: -1 is not a non-negative integer$/],
    ["compression.level", 1.5, /^compression\.level: 1\.5 is not a non-negative integer$/],
    ["compression.level", 99, /^compression\.level: 99 is above 22$/],
    ["rawBytes", -5, /^rawBytes: -5 is not a non-negative integer$/],
    ["rawBytes", "12", /^rawBytes: "12" is not a non-negative integer$/],
    ["compressedBytes", 1e300, /^compressedBytes: 1e\+300 is not a non-negative integer$/],
    ["sha256", "0".repeat(63), /^sha256: "0+" is not a sha256/],
    ["sha256", "G".repeat(64), /^sha256: .* is not a sha256/],
    ["fingerprint", [], /^fingerprint: \[\] is not an object$/],
    ["fingerprint.globals", 1, /^fingerprint\.globals: 1 is not a string$/],
    ["fingerprint.statsEpoch", null, /^fingerprint\.statsEpoch: null is not a string$/],
    ["fingerprint.databases", [], /^fingerprint\.databases: \[\] is not an object$/],
    ["fingerprint.databases", { app: { oid: -1, hash: "h" } }, /^fingerprint\.databases\.app\.oid: -1 is not a non-negative integer$/],
    ["fingerprint.databases", { "my db": { oid: 1, hash: 2 } }, /^fingerprint\.databases\["my db"\]\.hash: 2 is not a string$/],
    ["fingerprint.databases", { app: null }, /^fingerprint\.databases\.app: null is not an object$/],
    ["databases", "app", /^databases: "app" is not a list of database names$/],
    ["databases", ["postgres", 3], /^databases\[1\]: 3 is not a database name/],
    ["databases", ["app", "app"], /^databases\[1\]: "app" is listed twice$/],
    ["included", [{ a: 1 }, null], /^included\[0\]: \{"a":1\} is not a database name/],
    ["included", [""], /^included\[0\]: "" is not a database name/],
    ["included", ["a\u0000b"], /^included\[0\]: .* is not a database name/],
    ["rowCounts", null, /^rowCounts: null is not an object$/],
    ["rowCounts", { app: [] }, /^rowCounts\.app: \[\] is not an object$/],
    ["rowCounts", { app: { "public.t": "3" } }, /^rowCounts\.app\["public\.t"\]: "3" is not a non-negative integer$/],
    ["rowCounts", { app: { "public.t": -3 } }, /^rowCounts\.app\["public\.t"\]: -3 is not a non-negative integer$/],
  ])("%s = %j is refused", (path, value, reason) => {
    expect(manifestProblem(withField(path, value), NAME)).toMatch(reason);
  });

  it.each<[string, unknown]>([
    ["null", null],
    ["an array", []],
    ["a string", "manifest"],
  ])("refuses a manifest that is %s", (_what, value) => {
    expect(manifestProblem(value, NAME)).toMatch(/^manifest: .* is not an object$/);
  });

  it("keeps database names with quotes, newlines and unicode", () => {
    const odd = ['we"ird', "new\nline", "ünï"];
    const m = withField("databases", odd);
    m.included = odd;
    m.rowCounts = Object.fromEntries(odd.map((d) => [d, {}]));
    expect(manifestProblem(m, NAME)).toBeNull();
  });

  it("shortens a huge bad value in the reason", () => {
    const reason = manifestProblem(withField("tool.version", ["x".repeat(10_000)]), NAME) ?? "";
    expect(reason.length).toBeLessThan(140);
  });
});

describe("an encrypted backup's manifest", () => {
  const ENC = "20240110_030000_differential.sql.zst.age";
  const KEY = "age1glz0y505xgndl9ef9wgd3arzg8h9chrwyagtyt7rszy6cdqy3q4szq33d0";
  const SEALED = "-----BEGIN AGE ENCRYPTED FILE-----\nYWdlLWVuY3J5cHRpb24ub3JnL3YxCg==\n-----END AGE ENCRYPTED FILE-----\n";
  const encrypted = (over: Record<string, unknown> = {}, rowCounts: unknown = {}) => ({ ...valid(), name: ENC, rowCounts, encryption: { tool: "age", recipients: [KEY], sealed: SEALED, ...over } });

  it("names its recipients and seals its row counts", () => {
    expect(manifestProblem(encrypted(), ENC)).toBeNull();
  });

  it.each<[string, Record<string, unknown>, unknown, RegExp]>([
    ["cleartext row counts", {}, { app: { "public.t": 3 } }, /^rowCounts: .* is not empty; an encrypted backup's row counts are sealed/],
    ["no recipients", { recipients: [] }, {}, /^encryption\.recipients: \[\] is not a non-empty list/],
    ["a private key as recipient", { recipients: ["AGE-SECRET-KEY-1QQQ"] }, {}, /^encryption\.recipients\[0\]: .* is a private identity/],
    ["another tool", { tool: "gpg" }, {}, /^encryption\.tool: "gpg" is not "age"$/],
    ["a sealed part that is not age armor", { sealed: "{\"rowCounts\":{}}" }, {}, /^encryption\.sealed: .* is not an age-armored file/],
  ])("refuses %s", (_what, over, rowCounts, reason) => {
    expect(manifestProblem(encrypted(over, rowCounts), ENC)).toMatch(reason);
  });

  it("an .age name needs the encryption field, and a plain name must not have it", () => {
    expect(manifestProblem({ ...valid(), name: ENC, rowCounts: {} }, ENC)).toMatch(/^encryption: missing is not an object$/);
    expect(manifestProblem({ ...encrypted(), name: NAME }, NAME)).toMatch(/^encryption: .* is set, but the file name has no \.age suffix$/);
  });
});

describe("parseManifest", () => {
  it("names the place and the reason", () => {
    expect(() => parseManifest("{", "/b/x.json", NAME)).toThrow(/^\/b\/x\.json: not valid JSON/);
    try {
      parseManifest(JSON.stringify(withField("compression.codec", "evil")), "/b/x.json", NAME);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ManifestInvalid);
      expect((err as ManifestInvalid).reason).toBe('compression.codec: "evil" is not one of bzip2, zstd, gzip, none');
    }
  });
});

describe("readManifest", () => {
  const dir = mkdtempSync(join(tmpdir(), "pgsb-manifest-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("reads a valid manifest from disk", async () => {
    const path = join(dir, `${NAME}.json`);
    writeFileSync(path, JSON.stringify(valid()));
    expect((await readManifest(path, NAME)).included).toEqual(["app"]);
  });

  it("refuses a manifest above the cap by its size, without reading it", async () => {
    // A sparse file: reading it would take seconds and the memory of its size; stat takes none.
    const path = join(dir, "huge.json");
    writeFileSync(path, "");
    truncateSync(path, 300 * 1024 * 1024);
    await expect(readManifest(path, NAME)).rejects.toThrow(new RegExp(`it is ${300 * 1024 * 1024} bytes, more than the ${MANIFEST_MAX_BYTES}`));
  });

  it("does not block on a FIFO planted as a manifest", async () => {
    const path = join(dir, "fifo.json");
    execFileSync("mkfifo", [path]);
    await expect(readManifest(path, NAME)).rejects.toThrow(/not a regular file/);
  });
});
