import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ExitCode, TaskError } from "../../../lib/core/errors.js";
import { pointerTarget, readLatestPointer, updateLatestPointer } from "../../../lib/store/latestPointer.js";

const NAME = "20231215_030000_full.sql.bz2";

describe("pointerTarget", () => {
  it.each([
    [NAME, NAME],
    [`${NAME}\n`, NAME],
    [`${NAME}\r\n`, NAME],
    ["../../etc/passwd", null],
    ["../../../etc/shadow", null],
    ["/etc/shadow", null],
    [`../${NAME}`, null],
    [`./${NAME}`, null],
    [`../full/${NAME}`, null],
    [`/backups/full/${NAME}`, null],
    [`${NAME}/..`, null],
    ["..", null],
    ["", null],
    [`${NAME}\n../../etc/passwd`, null],
    [" " + NAME, null],
    ["20231215_030000_incremental.sql.bz2", null],
    ["20231215_030000_full.sql.zst", null],
    ["20231399_030000_full.sql.bz2", null],
    ["latest_full.sql.bz2", null],
  ])("%j names %j in a full/bzip2 folder", (content, expected) => {
    expect(pointerTarget(content, "full", "bzip2")).toBe(expected);
  });
});

function dir(): string {
  const d = mkdtempSync(join(tmpdir(), "pgsb-pointer-"));
  mkdirSync(join(d, "full"));
  return join(d, "full");
}

async function refusal(p: Promise<unknown>): Promise<TaskError> {
  const err = await p.catch((e: unknown) => e);
  expect(err).toBeInstanceOf(TaskError);
  expect((err as TaskError).exitCode).toBe(ExitCode.refused);
  return err as TaskError;
}

describe("readLatestPointer", () => {
  it("reads the tool's own symlink with readlink and its .txt form", async () => {
    const d = dir();
    expect(await readLatestPointer(d, "full", "bzip2")).toBeNull();
    expect(await updateLatestPointer(d, "full", "bzip2", NAME)).toBe("symlink");
    expect(readlinkSync(join(d, "latest_full.sql.bz2"))).toBe(NAME);
    expect(await readLatestPointer(d, "full", "bzip2")).toBe(NAME);
    const e = dir();
    writeFileSync(join(e, "latest_full.sql.bz2.txt"), `${NAME}\n`);
    expect(await readLatestPointer(e, "full", "bzip2")).toBe(NAME);
  });

  it.each([["../../etc/passwd"], ["/etc/shadow"], [`../../other/full/${NAME}`]])("refuses a symlink pointer to %s", async (target) => {
    const d = dir();
    symlinkSync(target, join(d, "latest_full.sql.bz2"));
    const err = await refusal(readLatestPointer(d, "full", "bzip2"));
    expect(err.message).toContain(`latest pointer ${join(d, "latest_full.sql.bz2")} holds ${JSON.stringify(target)}, not a bare full backup name`);
  });

  it("refuses a pointer file holding a path, and a pointer file that is a symlink", async () => {
    const d = dir();
    writeFileSync(join(d, "latest_full.sql.bz2.txt"), "../../etc/passwd\n");
    expect((await refusal(readLatestPointer(d, "full", "bzip2"))).message).toMatch(/holds "..\/..\/etc\/passwd", not a bare full backup name/);
    const e = dir();
    const outside = join(e, "..", "outside.txt");
    writeFileSync(outside, `${NAME}\n`);
    symlinkSync(outside, join(e, "latest_full.sql.bz2.txt"));
    expect((await refusal(readLatestPointer(e, "full", "bzip2"))).message).toMatch(/latest pointer file .*latest_full\.sql\.bz2\.txt is a symlink; it is not followed/);
  });

  it("does not hang on a FIFO planted as the pointer file", async () => {
    const d = dir();
    execFileSync("mkfifo", [join(d, "latest_full.sql.bz2.txt")]);
    expect(await readLatestPointer(d, "full", "bzip2")).toBeNull();
  });

  it("replaces a planted symlink at the pointer's name instead of writing through it", async () => {
    const d = dir();
    const outside = join(d, "..", "victim");
    writeFileSync(outside, "keep me\n");
    symlinkSync(outside, join(d, "latest_full.sql.bz2"));
    await updateLatestPointer(d, "full", "bzip2", NAME);
    expect(readlinkSync(join(d, "latest_full.sql.bz2"))).toBe(NAME);
    expect(readFileSync(outside, "utf8")).toBe("keep me\n");
  });
});
