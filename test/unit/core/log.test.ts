import { execFileSync } from "node:child_process";
import { chmodSync, closeSync, mkdtempSync, readFileSync, statSync, symlinkSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { openLogFile } from "../../../lib/core/log.js";

const dir = () => mkdtempSync(join(tmpdir(), "pgsb-log-"));
const modeOf = (p: string) => statSync(p).mode & 0o7777;

describe("openLogFile", () => {
  it("creates a new log file with the mode given, whatever the umask would leave", () => {
    const d = dir();
    closeSync(openLogFile(join(d, "a.log"), 0o640));
    closeSync(openLogFile(join(d, "b.log"), 0o666));
    expect([modeOf(join(d, "a.log")), modeOf(join(d, "b.log"))]).toEqual([0o640, 0o666]);
  });

  it("appends to an existing log file and keeps its mode", () => {
    const d = dir();
    const f = join(d, "backup.log");
    writeFileSync(f, "old\n");
    chmodSync(f, 0o600);
    const fd = openLogFile(f, 0o640);
    writeSync(fd, "new\n");
    closeSync(fd);
    expect(readFileSync(f, "utf8")).toBe("old\nnew\n");
    expect(modeOf(f)).toBe(0o600);
  });

  it("refuses a symlink (ELOOP), dangling or not, and leaves its target alone", () => {
    const d = dir();
    const outside = join(d, "outside");
    writeFileSync(outside, "keep\n");
    symlinkSync(outside, join(d, "backup.log"));
    symlinkSync(join(d, "nowhere"), join(d, "dangling.log"));
    expect(() => openLogFile(join(d, "backup.log"), 0o640)).toThrow(expect.objectContaining({ code: "ELOOP" }) as Error);
    expect(() => openLogFile(join(d, "dangling.log"), 0o640)).toThrow(expect.objectContaining({ code: "ELOOP" }) as Error);
    expect(readFileSync(outside, "utf8")).toBe("keep\n");
  });

  it("does not hang on a FIFO or write into a folder", () => {
    const d = dir();
    execFileSync("mkfifo", [join(d, "fifo.log")]);
    expect(() => openLogFile(join(d, "fifo.log"), 0o640)).toThrow(expect.objectContaining({ code: "ENXIO" }) as Error);
    expect(() => openLogFile(d, 0o640)).toThrow();
  });
});
