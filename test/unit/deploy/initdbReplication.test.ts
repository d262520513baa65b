// stack/initdb/20-replication.sh on a pg_hba.conf shaped like the official image's: the
// replication line goes first (pg_hba is read top to bottom), once, for the backup role.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";

const SCRIPT = fileURLToPath(new URL("../../../stack/initdb/20-replication.sh", import.meta.url));
const OFFICIAL = "local all all trust\nhost all all 127.0.0.1/32 trust\nhost all all all scram-sha-256\n";
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function run(env: Record<string, string>): string {
  const pgdata = mkdtempSync(join(tmpdir(), "pgsb-hba-"));
  dirs.push(pgdata);
  writeFileSync(join(pgdata, "pg_hba.conf"), OFFICIAL);
  const e = { PATH: process.env.PATH ?? "", PGDATA: pgdata, ...env };
  execFileSync("sh", [SCRIPT], { env: e, stdio: "pipe" });
  execFileSync("sh", [SCRIPT], { env: e, stdio: "pipe" });
  return readFileSync(join(pgdata, "pg_hba.conf"), "utf8");
}

describe("20-replication.sh", () => {
  it("puts one replication line for POSTGRES_USER before the image's lines, however often it runs", () => {
    const hba = run({ POSTGRES_USER: "app_admin" });
    expect(hba.split("\n").filter((l) => !l.startsWith("#"))[0]).toBe("host replication app_admin all scram-sha-256");
    expect(hba.match(/host replication/g)).toHaveLength(1);
    expect(hba.endsWith(OFFICIAL)).toBe(true);
  });
  it("names BACKUP_REPLICATION_USER and the image's auth method when set", () => {
    expect(run({ BACKUP_REPLICATION_USER: "backup", POSTGRES_HOST_AUTH_METHOD: "md5" })).toContain("host replication backup all md5\n");
  });
  it("defaults to postgres", () => {
    expect(run({})).toContain("host replication postgres all scram-sha-256\n");
  });
});
