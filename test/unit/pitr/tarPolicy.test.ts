import { describe, expect, it } from "vitest";
import { TarMemberError, decideMember, memberNameProblem, readHeader } from "../../../lib/pitr/tarPolicy.js";
import type { TarHeader } from "../../../lib/pitr/tarPolicy.js";
import { tarHeader } from "../../tarFixtures.js";

const h = (raw: string, type = "0", size = 0): TarHeader => ({ raw, name: raw.replace(/^(\.\/)+(?=.)/, "").replace(/\/$/, ""), type, size });
const state = (dirs: string[] = [], names: string[] = []) => ({ dirs: new Set(dirs), names: new Set([...dirs, ...names]) });

describe("readHeader", () => {
  it("reads pg_basebackup's ustar header: name, type, size; a leading ./ and trailing / dropped", () => {
    expect(readHeader(tarHeader("global/pg_control", "0", 8192), 1)).toEqual({ raw: "global/pg_control", name: "global/pg_control", type: "0", size: 8192 });
    expect(readHeader(tarHeader("./pg_wal/archive_status/", "5"), 2)).toMatchObject({ name: "pg_wal/archive_status", type: "5" });
  });

  it("joins a ustar prefix and reads a base-256 size", () => {
    const b = tarHeader("name", "0", 0, { prefix: "some/dir" });
    expect(readHeader(b, 1).name).toBe("some/dir/name");
    const big = tarHeader("big", "0", 0, { base256Size: 9 * 2 ** 30 });
    expect(readHeader(big, 1).size).toBe(9 * 2 ** 30);
  });

  it.each<[string, Buffer, RegExp]>([
    ["a bad checksum", (() => { const b = tarHeader("x", "0", 1); b[0] = 0x79; return b; })(), /tar header 3 has a bad checksum/],
    ["no ustar magic (v7 tar)", tarHeader("x", "0", 1, { magic: "\0\0\0\0\0\0" }), /tar member 3 is not in ustar format/],
    ["a malformed size", tarHeader("x", "0", 0, { sizeField: "12z" }), /malformed size field "12z"/],
  ])("refuses %s", (_what, block, message) => {
    expect(() => readHeader(block, 3)).toThrow(TarMemberError);
    expect(() => readHeader(block, 3)).toThrow(message);
  });
});

describe("decideMember", () => {
  it.each<[string, TarHeader, ReturnType<typeof state>, string]>([
    ["a file at the top", h("PG_VERSION", "0", 3), state(), "file"],
    ["an old-style file (type NUL)", h("backup_label", "\0", 225), state(), "file"],
    ["a directory", h("global", "5"), state(), "dir"],
    ["a file in a directory written before", h("global/pg_control", "0", 8192), state(["global"]), "file"],
    ["the server's ./pg_wal/archive_status/", h("./pg_wal/archive_status/", "5"), state(["pg_wal"]), "dir"],
    ["an empty tablespace_map", h("tablespace_map", "0", 0), state(), "file"],
  ])("accepts %s", (_what, header, st, kind) => {
    expect(decideMember(header, st)).toEqual({ kind });
  });

  it.each<[string, TarHeader, ReturnType<typeof state>, RegExp]>([
    ["a symlink", h("pg_tblspc/16384", "2"), state(["pg_tblspc"]), /"pg_tblspc\/16384" is a symlink \(pg_basebackup writes those only for tablespaces/],
    ["a hard link", h("x", "1"), state(), /is a hard link/],
    ["a character device", h("dev", "3"), state(), /is a character device/],
    ["a block device", h("dev", "4"), state(), /is a block device/],
    ["a FIFO", h("fifo", "6"), state(), /is a FIFO/],
    ["a pax header", h("PaxHeaders/x", "x", 30), state(), /is a pax extended header, which pg_basebackup never writes/],
    ["a pax global header", h("pax_global_header", "g", 30), state(), /is a pax global header/],
    ["a GNU long name", h("././@LongLink", "L", 120), state(), /is a GNU long-name header/],
    ["an unknown type", h("x", "Z"), state(), /is of type "Z"/],
    ["an absolute path", h("/etc/passwd", "0", 1), state(), /"\/etc\/passwd" has an absolute path/],
    ["a .. component", h("global/../../etc/cron.d/x", "0", 1), state(["global"]), /has a "\.\." component/],
    ["a bare ..", h("..", "5"), state(), /has a "\.\." component/],
    ["an empty component", h("global//x", "0", 1), state(["global"]), /has an empty or "\." component/],
    ["a control character", h("a\nb", "0", 1), state(), /has a control character/],
    ["a member under a symlink-named path it never saw as a folder", h("evil/file", "0", 1), state([], ["evil"]), /comes before a directory member for "evil"/],
    ["a parent never written", h("base/1/1259", "0", 1), state(["base"]), /comes before a directory member for "base\/1"/],
    ["a name twice", h("PG_VERSION", "0", 3), state([], ["PG_VERSION"]), /appears twice/],
    ["a folder over a file", h("PG_VERSION", "5"), state([], ["PG_VERSION"]), /appears twice/],
    ["a directory with data", h("global", "5", 10), state(), /is a directory with 10 bytes of data/],
    ["a non-empty tablespace_map", h("tablespace_map", "0", 40), state(), /is not empty: it lists tablespaces/],
  ])("refuses %s, naming the member", (_what, header, st, problem) => {
    const d = decideMember(header, st);
    expect("problem" in d ? d.problem : "").toMatch(problem);
  });
});

describe("memberNameProblem", () => {
  it.each([
    ["base/1/1259", null],
    ["", "an empty name"],
    [".", "an empty name"],
    ["/x", "an absolute path"],
    ["a/./b", 'an empty or "." component'],
    ["a/\x7fb", "a control character"],
    ["x".repeat(256), "a name longer than pg_basebackup writes"],
  ])("%j: %s", (name, problem) => {
    expect(memberNameProblem(name)).toBe(problem);
  });
});
