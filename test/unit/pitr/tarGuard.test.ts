import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { describe, expect, it } from "vitest";
import { TarGuard, memberNameProblem } from "../../../lib/pitr/tarGuard.js";

/** A ustar header as pg_basebackup writes one (name, type, size), with a valid checksum. */
function header(name: string, type: string, size = 0, linkname = "", magic = "ustar"): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, "utf8");
  h.write("0000600\0", 100);
  h.write("0000000\0", 108);
  h.write("0000000\0", 116);
  h.write(size.toString(8).padStart(11, "0") + "\0", 124);
  h.write("00000000000\0", 136);
  h.write(type, 156);
  h.write(linkname, 157, 100);
  h.write(magic, 257);
  h.write("00", 263);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, "0") + "\0 ", 148);
  return h;
}

const data = (n: number): Buffer => Buffer.concat([Buffer.alloc(n, 0x41), Buffer.alloc((512 - (n % 512)) % 512)]);
const END = Buffer.alloc(1024);

async function guard(...parts: Buffer[]): Promise<{ out: Buffer; members: number }> {
  const g = new TarGuard();
  const chunks: Buffer[] = [];
  const all = Buffer.concat(parts);
  // Odd chunk sizes: a header split across chunks must still be checked whole.
  const pieces = Array.from({ length: Math.ceil(all.length / 333) }, (_, i) => all.subarray(i * 333, (i + 1) * 333));
  await pipeline(Readable.from(pieces), g, new Writable({ write: (c: Buffer, _e, done) => (chunks.push(c), done()) }));
  return { out: Buffer.concat(chunks), members: g.members };
}

describe("TarGuard", () => {
  it("passes pg_basebackup's files and directories through unchanged", async () => {
    const tar = [header("pg_wal", "5"), header("./pg_wal/archive_status/", "5"), header("global", "5"), header("global/pg_control", "0", 700), data(700), header("PG_VERSION", "0", 3), data(3), header("backup_manifest", "0", 10), data(10), END];
    const r = await guard(...tar);
    expect(r.out.equals(Buffer.concat(tar))).toBe(true);
    expect(r.members).toBe(6);
  });

  it.each([
    ["a symlink", [header("pg_tblspc", "5"), header("pg_tblspc/16384", "2", 0, "/etc")], /is a symlink/],
    ["a hard link", [header("x", "1", 0, "postgresql.conf")], /is a hard link/],
    ["an absolute path", [header("/etc/passwd", "0", 1), data(1)], /absolute path/],
    ["a .. component", [header("base", "5"), header("base/../../x", "0", 1), data(1)], /"\.\." component/],
    ["a file under a path with no directory member", [header("pg_wal/x", "0", 1), data(1)], /before a directory member/],
    ["a file under a file", [header("a", "0", 1), data(1), header("a/b", "0", 1), data(1)], /before a directory member/],
    ["a GNU long name", [header("././@LongLink", "L", 10), data(10)], /of type "L"|"\.\/\.\/@LongLink"/],
    ["a pax header", [header("PaxHeaders/x", "x", 10), data(10)], /of type "x"|before a directory member/],
    ["a FIFO", [header("fifo", "6")], /of type "6"/],
    ["GNU format", [header("x", "0", 0, "", "ustar ")], /not in ustar format/],
  ])("refuses %s", async (_what, parts, message) => {
    await expect(guard(...parts, END)).rejects.toThrow(message);
  });

  it("refuses a bad checksum and a truncated stream", async () => {
    const bad = header("x", "0", 1);
    bad[0] = 0x79;
    await expect(guard(bad, data(1), END)).rejects.toThrow(/bad checksum/);
    await expect(guard(header("x", "0", 1000), data(1000).subarray(0, 600))).rejects.toThrow(/truncated/);
    await expect(guard(header("x", "0", 1), data(1))).rejects.toThrow(/truncated/);
  });

  it("refuses data after the end-of-archive blocks", async () => {
    await expect(guard(END, header("x", "0", 1), data(1))).rejects.toThrow(/follows the tar's end/);
  });
});

describe("memberNameProblem", () => {
  it.each([
    ["base/1/1259", null],
    ["pg_wal/", null],
    ["", "an empty name"],
    ["x/./y", 'an empty or "." component'],
    ["a//b", 'an empty or "." component'],
    ["a/\nb", "a control character"],
  ])("%j -> %s", (name, problem) => {
    expect(memberNameProblem(name)).toBe(problem);
  });
});
