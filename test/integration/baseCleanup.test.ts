// cleanup of the physical tier on real files: base backups follow the fulls' policy, WAL
// before the earliest kept base backup's start goes (with its signatures), --dry-run changes
// nothing, and a bad newest base backup stops the whole cleanup.
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, renameSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, inject, it } from "vitest";
import { ExitCode } from "../../lib/core/errors.js";
import { baseBackupName, segmentName } from "../../lib/physical/layout.js";
import { checksumFileText } from "../../lib/store/checksum.js";
import { cliEnv, runCli, snapshot, tempDir } from "../helpers.js";
import { testBaseManifest } from "../baseManifests.js";

const cluster = inject("cluster");
const DAY = 24 * 60 * 60 * 1000;
const NOW = new Date("2026-11-20T03:00:00Z");
const SEG = 16 * 1024 * 1024;
const ENV = { BACKUP_COMPRESSION: "zstd", RETENTION_KEEP_FULL_DAYS: "60" };
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function dir(): string {
  const d = tempDir("pgsb-basecleanup-");
  dirs.push(d);
  return d;
}

/** Base backups `days` old starting in segment `seg`, and WAL segments 1..20; returns the names. */
function plant(dir: string, bases: [number, number][]): string[] {
  mkdirSync(join(dir, "base"));
  mkdirSync(join(dir, "wal"));
  const names: string[] = [];
  for (const [days, seg] of bases) {
    const name = baseBackupName(new Date(NOW.getTime() - days * DAY), "zstd");
    const data = Buffer.from(`base ${name}`);
    const sha = createHash("sha256").update(data).digest("hex");
    const manifest = JSON.stringify(testBaseManifest(name, { sha256: sha, startLsn: `0/${(seg * SEG + 40).toString(16).toUpperCase()}`, stopLsn: `0/${(seg * SEG + 400).toString(16).toUpperCase()}` }));
    writeFileSync(join(dir, "base", name), data);
    writeFileSync(join(dir, "base", `${name}.json`), manifest);
    writeFileSync(join(dir, "base", `${name}.sha256`), checksumFileText(name, sha, createHash("sha256").update(manifest).digest("hex")));
    names.push(name);
  }
  for (let n = 1; n <= 20; n++) writeFileSync(join(dir, "wal", segmentName(1, BigInt(n), SEG)), "wal");
  writeFileSync(join(dir, "wal", "00000001.history"), "");
  return names;
}

describe("cleanup of base backups and WAL", () => {
  it("--dry-run shows the plan, a real run deletes exactly it", async () => {
    const d = dir();
    // 100 and 90 days old: beyond 60, deleted; 70: kept as one of the newest 2; 7: within 14 days.
    const [b100, b90, b70, b7] = plant(d, [
      [100, 3],
      [90, 6],
      [70, 9],
      [7, 15],
    ]);
    const orphan = `${baseBackupName(new Date(NOW.getTime() - 30 * DAY), "zstd")}.json`;
    writeFileSync(join(d, "base", orphan), "{}");
    const env = cliEnv(cluster, d, ENV);
    const before = snapshot(d);
    const dry = await runCli(["cleanup", "--dry-run", "--now", NOW.toISOString()], env);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toMatch(new RegExp(`delete .*${b100}.*base backup older than 60 days`));
    expect(dry.stdout).toContain(`WAL: delete 8 file(s) (${segmentName(1, 1n, SEG)} .. ${segmentName(1, 8n, SEG)}`);
    expect(dry.stdout).toContain(`kept from ${segmentName(1, 9n, SEG)}: the start of ${b70}`);
    expect(dry.stdout).toContain(`would remove stale base/${orphan}`);
    expect(snapshot(d)).toEqual(before);

    const real = await runCli(["cleanup", "--now", NOW.toISOString(), "--json"], env);
    expect(real.code).toBe(0);
    const report = JSON.parse(real.stdout) as { physical: { bases: { name: string; action: string }[] } };
    expect(report.physical.bases.map((b) => [b.name, b.action])).toEqual([
      [b100, "delete"],
      [b90, "delete"],
      [b70, "keep"],
      [b7, "keep"],
    ]);
    expect(readdirSync(join(d, "base")).filter((n) => !n.includes("."))).toEqual([]);
    expect(readdirSync(join(d, "base")).sort()).toEqual([b70, b7].flatMap((n) => [n, `${n}.json`, `${n}.sha256`]).sort());
    const wal = readdirSync(join(d, "wal")).sort();
    expect(wal[0]).toBe("00000001.history");
    expect(wal.slice(1)).toEqual(Array.from({ length: 12 }, (_, i) => segmentName(1, BigInt(i + 9), SEG)));
  });

  it("deletes encrypted WAL with its signatures, and a signature older than a day whose file is gone", async () => {
    const d = dir();
    // Both kept (RETENTION_MIN_FULL=2): WAL from segment 3 on stays, segments 1 and 2 go with their signatures.
    plant(d, [
      [100, 3],
      [7, 9],
    ]);
    for (const n of readdirSync(join(d, "wal")).filter((x) => /^[0-9A-F]{24}$/.test(x))) {
      renameSync(join(d, "wal", n), join(d, "wal", `${n}.gz.age`));
      writeFileSync(join(d, "wal", `${n}.gz.age.sig`), "signature");
    }
    const orphan = `${segmentName(1, 30n, SEG)}.gz.partial.age.sig`;
    writeFileSync(join(d, "wal", orphan), "signature");
    const old = new Date(Date.now() - 3 * DAY);
    utimesSync(join(d, "wal", orphan), old, old);
    const r = await runCli(["cleanup", "--now", NOW.toISOString()], cliEnv(cluster, d, ENV));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`removed stale wal/${orphan}`);
    expect(r.stdout).toContain(`kept from ${segmentName(1, 3n, SEG)}`);
    const wal = readdirSync(join(d, "wal")).sort();
    expect(wal).toEqual(["00000001.history", ...Array.from({ length: 18 }, (_, i) => segmentName(1, BigInt(i + 3), SEG)).flatMap((n) => [`${n}.gz.age`, `${n}.gz.age.sig`])].sort());
  });

  it("refuses (exit 4) and deletes nothing while the newest base backup is bad", async () => {
    const d = dir();
    const names = plant(d, [
      [100, 3],
      [7, 15],
    ]);
    writeFileSync(join(d, "base", names[1] as string), "corrupted");
    const before = snapshot(d);
    const r = await runCli(["cleanup", "--now", NOW.toISOString()], cliEnv(cluster, d, ENV));
    expect(r.code).toBe(ExitCode.refused);
    expect(r.stderr).toContain(`the newest base backup ${names[1]} failed verification`);
    expect(snapshot(d)).toEqual(before);
  });

  it("keeps every WAL file when no good base backup is kept", async () => {
    const d = dir();
    const [bad] = plant(d, [[3, 15]]);
    writeFileSync(join(d, "base", `${bad}.json`), "{");
    const before = readdirSync(join(d, "wal")).length;
    const r = await runCli(["cleanup", "--dry-run", "--now", NOW.toISOString()], cliEnv(cluster, d, ENV));
    expect(r.code).toBe(ExitCode.refused);
    expect(r.stdout).toContain("WAL: delete none; no good base backup is kept");
    expect(readdirSync(join(d, "wal")).length).toBe(before);
  });
});
