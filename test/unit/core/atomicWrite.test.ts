import { lstatSync, mkdtempSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createExclusive, tempPath, writeFileAtomic } from "../../../lib/core/atomicWrite.js";

const dir = () => mkdtempSync(join(tmpdir(), "pgsb-atomic-"));
const modeOf = (p: string) => statSync(p).mode & 0o7777;

describe("tempPath", () => {
  it("is unpredictable and keeps the suffix", () => {
    const a = tempPath("/b/full/x.sha256", ".tmp");
    expect(a).toMatch(/^\/b\/full\/x\.sha256\.[0-9a-f]{16}\.tmp$/);
    expect(tempPath("/b/full/x.sha256", ".tmp")).not.toBe(a);
  });
});

describe("createExclusive", () => {
  it("sets the mode with fchmod, so bits the umask would remove are kept", async () => {
    const d = dir();
    // 0666 under the usual umask 022 would come out 0644 without the fchmod.
    await (await createExclusive(join(d, "a"), 0o666)).close();
    await (await createExclusive(join(d, "b"), 0o600)).close();
    expect([modeOf(join(d, "a")), modeOf(join(d, "b"))]).toEqual([0o666, 0o600]);
  });

  it("never opens a planted symlink or an existing file", async () => {
    const d = dir();
    const outside = join(d, "outside");
    writeFileSync(outside, "keep\n");
    symlinkSync(outside, join(d, "link"));
    symlinkSync(join(d, "nowhere"), join(d, "dangling"));
    await expect(createExclusive(join(d, "link"), 0o640)).rejects.toMatchObject({ code: "EEXIST" });
    await expect(createExclusive(join(d, "dangling"), 0o640)).rejects.toMatchObject({ code: "EEXIST" });
    await expect(createExclusive(outside, 0o640)).rejects.toMatchObject({ code: "EEXIST" });
    expect(readFileSync(outside, "utf8")).toBe("keep\n");
    expect(readdirSync(d).sort()).toEqual(["dangling", "link", "outside"]);
  });
});

describe("writeFileAtomic", () => {
  it("replaces a symlink planted at the final name instead of writing through it, with the mode given", async () => {
    const d = dir();
    const outside = join(d, "outside");
    writeFileSync(outside, "keep\n");
    symlinkSync(outside, join(d, "x.sha256"));
    await writeFileAtomic(join(d, "x.sha256"), "new\n", 0o640);
    expect(lstatSync(join(d, "x.sha256")).isFile()).toBe(true);
    expect(readFileSync(join(d, "x.sha256"), "utf8")).toBe("new\n");
    expect(modeOf(join(d, "x.sha256"))).toBe(0o640);
    expect(readFileSync(outside, "utf8")).toBe("keep\n");
    expect(readdirSync(d).sort()).toEqual(["outside", "x.sha256"]);
  });

  it("leaves no temp file behind when the rename fails", async () => {
    const d = dir();
    await expect(writeFileAtomic(join(d, "missing", "x"), "y", 0o640)).rejects.toMatchObject({ code: "ENOENT" });
    writeFileSync(join(d, "f"), "");
    await expect(writeFileAtomic(d, "y", 0o640)).rejects.toThrow();
    expect(readdirSync(d)).toEqual(["f"]);
  });
});
