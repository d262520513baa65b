import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { TarMemberTap, tarSize } from "../../../lib/base/tarMemberTap.js";

const work = mkdtempSync(join(tmpdir(), "pgsb-tar-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function tarOf(files: Record<string, Buffer>): Buffer {
  const d = mkdtempSync(join(work, "t-"));
  for (const [name, data] of Object.entries(files)) writeFileSync(join(d, name), data);
  return execFileSync("tar", ["--format=ustar", "-cf", "-", "-C", d, ...Object.keys(files)], { maxBuffer: 1 << 26 });
}

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe("TarMemberTap", () => {
  const manifest = Buffer.from(`{"Files": [], "WAL-Ranges": [\n{ "Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100" }\n]}\n`);
  const big = Buffer.alloc(700_001, 7);
  const tar = tarOf({ "a.dat": big, backup_manifest: manifest, "z.dat": Buffer.from("tail") });

  it.each([1, 511, 512, 513, 4096, 1 << 20])("hashes the member and keeps its tail whatever the chunking (%i bytes)", (size) => {
    const tap = new TarMemberTap("backup_manifest", 32);
    for (let at = 0; at < tar.length; at += size) tap.push(tar.subarray(at, at + size));
    const r = tap.result();
    expect(r?.sha256).toBe(sha(manifest));
    expect(r?.size).toBe(manifest.length);
    expect(r?.tail.toString()).toBe(manifest.subarray(-32).toString());
  });

  it("finds nothing in a tar without the member, and a member of 0 bytes", () => {
    const none = new TarMemberTap("backup_manifest", 10);
    none.push(tarOf({ x: Buffer.from("backup_manifest") }));
    expect(none.result()).toBeNull();
    const empty = new TarMemberTap("backup_manifest", 10);
    empty.push(tarOf({ backup_manifest: Buffer.alloc(0) }));
    expect(empty.result()).toEqual({ sha256: sha(Buffer.alloc(0)), size: 0, tail: Buffer.alloc(0) });
  });

  it("reads octal and base-256 size fields", () => {
    expect(tarSize(Buffer.from("00000001750\0"))).toBe(1000);
    const b256 = Buffer.alloc(12);
    b256[0] = 0x80;
    b256.writeUIntBE(10 * 2 ** 30, 6, 6);
    expect(tarSize(b256)).toBe(10 * 2 ** 30);
    expect(() => tarSize(Buffer.from("12x4\0"))).toThrow(/malformed size/);
  });
});
