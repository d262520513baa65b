// listWalArchive on a real folder: names parsed strictly, junk, symlinks and folders ignored
// (never touched), a symlinked wal/ refused.
import { execFileSync } from "node:child_process";
import { mkdirSync, rmSync, symlinkSync, writeFileSync, existsSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { listWalArchive, readTimelineHistories } from "../../../lib/wal/archive.js";
import { tempDir } from "../../helpers.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function backupDir(files: Record<string, string>): string {
  const dir = tempDir("pgsb-walarchive-");
  dirs.push(dir);
  mkdirSync(join(dir, "wal"));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, "wal", name), text);
  return dir;
}

describe("listWalArchive", () => {
  it("is empty when wal/ does not exist", async () => {
    const dir = tempDir("pgsb-walarchive-");
    dirs.push(dir);
    expect(await listWalArchive(dir)).toMatchObject({ segments: [], histories: [], ignored: [] });
  });

  it("sorts segments, histories and backup labels and reports junk as ignored", async () => {
    const dir = backupDir({
      "000000020000000000000005.gz.partial": "x",
      "000000010000000000000004": "x",
      "000000010000000000000005.partial": "x",
      "000000010000000000000003.lz4": "x",
      "00000002.history": "1\t0/5000A28\tno recovery target specified\n",
      "000000010000000000000003.00000028.backup": "x",
      "000000010000000000000003.tmp": "x",
      "00000001000000000000000g": "x",
      "README": "x",
      "archtemp.000000010000000000000006": "x",
    });
    mkdirSync(join(dir, "wal", "000000010000000000000009"));
    symlinkSync("/etc/passwd", join(dir, "wal", "000000010000000000000008"));
    const l = await listWalArchive(dir);
    expect(l.segments.map((e) => e.file.name)).toEqual([
      "000000010000000000000003.lz4",
      "000000010000000000000004",
      "000000010000000000000005.partial",
      "000000020000000000000005.gz.partial",
    ]);
    expect(l.histories.map((e) => e.file.name)).toEqual(["00000002.history"]);
    expect(l.backupLabels.map((e) => e.file.name)).toEqual(["000000010000000000000003.00000028.backup"]);
    expect(l.ignored).toEqual(["000000010000000000000003.tmp", "000000010000000000000008", "000000010000000000000009", "00000001000000000000000g", "README", "archtemp.000000010000000000000006"]);
    expect(l.segments[0]?.size).toBe(1);
    expect(existsSync(join(dir, "wal", "README"))).toBe(true);
    expect((await readTimelineHistories(l)).get(2)).toEqual([{ parentTimeline: 1, switchLsn: 0x5000a28n, reason: "no recovery target specified" }]);
  });

  it("lists encrypted files and keeps signature files apart from junk", async () => {
    const dir = backupDir({
      "000000010000000000000003.gz.age": "x",
      "000000010000000000000003.gz.age.sig": "x",
      "000000010000000000000004.gz.partial.age": "x",
      "000000010000000000000004.gz.partial.age.sig": "x",
      "00000002.history.gz.age": "x",
      "00000002.history.gz.age.sig": "x",
      "000000010000000000000003.00000028.backup.sig": "x",
      "README.sig": "x",
    });
    const l = await listWalArchive(dir);
    expect(l.segments.map((e) => [e.file.name, e.file.kind === "segment" && e.file.encrypted, e.file.kind === "segment" && e.file.partial])).toEqual([
      ["000000010000000000000003.gz.age", true, false],
      ["000000010000000000000004.gz.partial.age", true, true],
    ]);
    expect(l.histories.map((e) => [e.file.name, e.file.encrypted, e.file.compression])).toEqual([["00000002.history.gz.age", true, "gzip"]]);
    expect([...l.signatures].sort()).toEqual(["000000010000000000000003.gz.age.sig", "000000010000000000000004.gz.partial.age.sig", "00000002.history.gz.age.sig"]);
    expect(l.ignored).toEqual(["000000010000000000000003.00000028.backup.sig", "README.sig"]);
  });

  it("reads history files compressed as pg_receivewal stores them (gzip, lz4)", async () => {
    const h3 = "1\t0/5000A28\tx\n2\t0/7000000\ty\n";
    const dir = backupDir({ "00000002.history": "1\t0/5000A28\tx\n" });
    writeFileSync(join(dir, "wal", "00000003.history.gz"), gzipSync(h3));
    writeFileSync(join(dir, "wal", "00000004.history.lz4"), execFileSync("lz4", ["-c"], { input: h3 + "3\t0/9000000\tz\n" }));
    const l = await listWalArchive(dir);
    expect(l.histories.map((h) => [h.file.name, h.file.timeline, h.file.compression])).toEqual([
      ["00000002.history", 2, "none"],
      ["00000003.history.gz", 3, "gzip"],
      ["00000004.history.lz4", 4, "lz4"],
    ]);
    const hs = await readTimelineHistories(l);
    expect(hs.get(3)?.map((s) => s.parentTimeline)).toEqual([1, 2]);
    expect(hs.get(4)?.map((s) => s.parentTimeline)).toEqual([1, 2, 3]);
  });

  it("refuses a wal/ that is a symlink (exit 9)", async () => {
    const dir = tempDir("pgsb-walarchive-");
    const elsewhere = tempDir("pgsb-walarchive-");
    dirs.push(dir, elsewhere);
    symlinkSync(elsewhere, join(dir, "wal"));
    await expect(listWalArchive(dir)).rejects.toMatchObject({ exitCode: 9, message: expect.stringMatching(/is a symlink/) });
  });

  it("names a malformed history file (exit 9)", async () => {
    const dir = backupDir({ "00000002.history": "garbage\n" });
    await expect(readTimelineHistories(await listWalArchive(dir))).rejects.toMatchObject({ exitCode: 9, message: expect.stringMatching(/00000002\.history is malformed/) });
  });
});
