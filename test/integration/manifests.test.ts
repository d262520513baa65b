// Manifests are untrusted input (others can write BACKUP_DIR): three planted beside real
// backup data — an unknown codec, database lists of the wrong types, and one of 300 MB — make
// their backups unusable with a named reason in list, verify, restore-latest and cleanup,
// never a crash. Exit codes: list 0, verify 5, restore-latest --dry-run 0 (it plans around
// them), restore-full of such a FILE 4, cleanup --dry-run 4 (it would refuse while the newest backup is bad). CLI cases need `npm run build`.
import { copyFileSync, cpSync, readFileSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, inject, it } from "vitest";
import type { CleanupReport } from "../../lib/retention/cleanup.js";
import { MANIFEST_MAX_BYTES } from "../../lib/store/manifest.js";
import { backupName } from "../../lib/store/naming.js";
import { run as backup } from "../../tasks/backup.js";
import { cliEnv, runCli, tempDir, testConfig, testDeps } from "../helpers.js";

const cluster = inject("cluster");
const DAY = 86_400_000;
const T0 = new Date(Math.floor(Date.now() / 1000) * 1000);
const at = (days: number) => new Date(T0.getTime() - days * DAY);

let pristine: string;
let good: string;
const bad = { evil: "", types: "", huge: "" };

/** A copy of the good full under a newer name, with its manifest rewritten by `change`. */
function plant(dir: string, from: string, when: Date, change: (m: Record<string, unknown>) => void): string {
  const name = backupName("full", when, "bzip2");
  const src = join(dir, "full", from);
  const dst = join(dir, "full", name);
  copyFileSync(src, dst);
  const m = JSON.parse(readFileSync(src + ".json", "utf8")) as Record<string, unknown>;
  m.name = name;
  m.startedAt = when.toISOString();
  m.finishedAt = when.toISOString();
  change(m);
  writeFileSync(dst + ".json", JSON.stringify(m, null, 2) + "\n");
  writeFileSync(dst + ".sha256", `${m.sha256 as string}  ${name}\n`);
  return name;
}

beforeAll(async () => {
  pristine = tempDir("pgsb-manifests-");
  const r = await backup(testConfig(cluster, pristine), testDeps(() => at(5)), { tier: "full", force: true, dryRun: false, allowNewCluster: false });
  if (r.status !== "written") throw new Error(`full backup not written: ${r.status}`);
  good = r.name;
  bad.evil = plant(pristine, good, at(4), (m) => void ((m.compression as Record<string, unknown>).codec = "evil"));
  bad.types = plant(pristine, good, at(3), (m) => void (m.included = [{ a: 1 }, null]));
  bad.huge = plant(pristine, good, at(2), () => undefined);
  // Sparse: 300 MB by its size, which is all the reader may look at.
  truncateSync(join(pristine, "full", bad.huge + ".json"), 300 * 1024 * 1024);
});

const REASONS = {
  evil: /invalid manifest: compression\.codec: "evil" is not one of bzip2, zstd, gzip, none/,
  types: /invalid manifest: included\[0\]: \{"a":1\} is not a database name/,
  huge: new RegExp(`invalid manifest: it is ${300 * 1024 * 1024} bytes, more than the ${MANIFEST_MAX_BYTES} a manifest may have; it was not read`),
};

function copy(): string {
  const dir = tempDir("pgsb-manifests-copy-");
  cpSync(pristine, dir, { recursive: true, verbatimSymlinks: true });
  return dir;
}

describe("planted manifests", () => {
  it("list shows each as unusable with its reason (exit 0), in the table and in --json", async () => {
    const dir = copy();
    const json = await runCli(["list", "--json"], cliEnv(cluster, dir));
    expect(json.code, json.stderr).toBe(0);
    const listed = (JSON.parse(json.stdout) as { backups: { name: string; problem: string | null }[] }).backups;
    const problem = (name: string) => listed.find((b) => b.name === name)?.problem;
    expect(problem(good)).toBeNull();
    for (const k of ["evil", "types", "huge"] as const) expect(problem(bad[k])).toMatch(REASONS[k]);
    const table = await runCli(["list"], cliEnv(cluster, dir));
    expect(table.code).toBe(0);
    for (const k of ["evil", "types", "huge"] as const) expect(table.stdout).toMatch(REASONS[k]);
  });

  it("verify fails its manifest check naming each file and reason (exit 5)", async () => {
    const dir = copy();
    const r = await runCli(["verify", "--json", "--max-age", "1000"], cliEnv(cluster, dir));
    expect(r.code, r.stderr).toBe(5);
    const checks = (JSON.parse(r.stdout) as { checks: { name: string; ok: boolean; file?: string; message: string }[] }).checks;
    const manifest = checks.filter((c) => c.name === "manifest" && !c.ok);
    for (const k of ["evil", "types", "huge"] as const) expect(manifest.find((c) => c.file === bad[k])?.message).toMatch(REASONS[k]);
    expect(r.stderr).not.toMatch(/TypeError|is not iterable/);
  });

  it("restore-latest plans around them and says why (exit 0); restore-full of one is refused with the reason (exit 4)", async () => {
    const dir = copy();
    const plan = await runCli(["restore-latest", "--dry-run"], cliEnv(cluster, dir));
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toContain(`Restore to:   ${good}`);
    expect(plan.stdout).toMatch(/Warning: left out as unusable: /);
    for (const k of ["evil", "types", "huge"] as const) expect(plan.stdout).toMatch(REASONS[k]);
    const refused = await runCli(["restore-full", bad.evil], cliEnv(cluster, dir));
    expect(refused.code, refused.stderr).toBe(4);
    expect(refused.stderr).toMatch(/restore refused, nothing was changed: the manifest .*\.json is unusable \(compression\.codec: "evil" is not one of bzip2, zstd, gzip, none\)/);
    expect(refused.stderr).not.toMatch(/is not iterable/);
  });

  it("cleanup --dry-run does not count them as valid fulls, and would refuse while the newest is bad (exit 4)", async () => {
    const dir = copy();
    const now = new Date(T0.getTime() + 60 * DAY).toISOString();
    const r = await runCli(["cleanup", "--dry-run", "--json", "--now", now], cliEnv(cluster, dir, { RETENTION_MIN_FULL: "1", RETENTION_KEEP_FULL_DAYS: "42" }));
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toMatch(new RegExp(`cleanup would refuse: the newest backup ${bad.huge} failed verification \\(${REASONS.huge.source}`));
    const report = JSON.parse(r.stdout) as CleanupReport;
    const decision = (name: string) => report.decisions.find((d) => d.name === name);
    expect(decision(good)).toMatchObject({ action: "keep", reason: expect.stringMatching(/newest 1 valid fulls/) as unknown });
    for (const k of ["evil", "types", "huge"] as const) {
      expect(decision(bad[k])?.action).toBe("delete");
      expect(decision(bad[k])?.reason).toMatch(REASONS[k]);
    }
  });
});
