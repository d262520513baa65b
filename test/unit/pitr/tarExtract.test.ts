// The tar reader on real files: what it writes (modes whatever the tar says), and that a member
// it refuses leaves nothing of itself, on disk or outside the folder.
import { createHash } from "node:crypto";
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { silentLogger } from "../../../lib/core/log.js";
import { extractTar } from "../../../lib/pitr/tarExtract.js";
import { TarMemberError } from "../../../lib/pitr/tarPolicy.js";
import { tempDir } from "../../helpers.js";
import { TAR_END, tarFile, tarHeader } from "../../tarFixtures.js";

const log = silentLogger();

/** Hands the tar over in odd pieces, so headers and data straddle chunks. */
async function* pieces(tar: Buffer, size = 333): AsyncGenerator<Buffer> {
  for (let at = 0; at < tar.length; at += size) yield tar.subarray(at, at + size);
}

function manifestText(): string {
  const body = '{ "PostgreSQL-Backup-Manifest-Version": 1,\n"Files": [],\n"WAL-Ranges": [\n{ "Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100" }\n],\n';
  return `${body}"Manifest-Checksum": "${createHash("sha256").update(body).digest("hex")}"}\n`;
}

function fresh(): { root: string; into: string } {
  const root = tempDir("pgsb-tarx-");
  const into = join(root, "data");
  mkdirSync(into, { mode: 0o700 });
  return { root, into };
}

const mode = (p: string) => lstatSync(p).mode & 0o7777;

describe("extractTar", () => {
  it("writes files 0600 and folders 0700 whatever the tar says (setuid, setgid, sticky, world-writable)", async () => {
    const { into } = fresh();
    const tar = Buffer.concat([
      tarHeader("global", "5", 0, { mode: 0o3777 }),
      tarFile("global/pg_control", "control", { mode: 0o4755 }),
      tarFile("PG_VERSION", "15\n", { mode: 0o2777 }),
      tarHeader("pg_wal", "5"),
      tarHeader("./pg_wal/archive_status/", "5", 0, { mode: 0o1777 }),
      tarFile("backup_manifest", manifestText()),
      TAR_END,
    ]);
    const r = await extractTar(pieces(tar), into, log);
    expect(r.members).toBe(6);
    expect(r.rawBytes).toBe(tar.length);
    expect(readFileSync(join(into, "global/pg_control"), "utf8")).toBe("control");
    expect([mode(join(into, "global/pg_control")), mode(join(into, "PG_VERSION")), mode(join(into, "backup_manifest"))]).toEqual([0o600, 0o600, 0o600]);
    expect([mode(join(into, "global")), mode(join(into, "pg_wal")), mode(join(into, "pg_wal/archive_status"))]).toEqual([0o700, 0o700, 0o700]);
    expect(r.backupManifest).toEqual({ sha256: createHash("sha256").update(manifestText()).digest("hex"), bytes: manifestText().length, checksumOk: true, range: { timeline: 1, startLsn: "0/2000028", stopLsn: "0/2000100" } });
  });

  it("notices a backup_manifest whose Manifest-Checksum does not match its contents", async () => {
    const { into } = fresh();
    const r = await extractTar(pieces(Buffer.concat([tarFile("backup_manifest", manifestText().replace("0/2000100", "0/2000200")), TAR_END])), into, log);
    expect(r.backupManifest?.checksumOk).toBe(false);
  });

  it.each<[string, Buffer[], RegExp, string[]]>([
    ["a symlink member", [tarHeader("pg_tblspc", "5"), tarHeader("pg_tblspc/16384", "2", 0, { linkname: "/etc" })], /"pg_tblspc\/16384" is a symlink/, ["pg_tblspc"]],
    ["a file through a symlink-named member", [tarFile("evil", "x"), tarFile("evil/passwd", "root::0:0")], /"evil\/passwd" comes before a directory member for "evil"/, ["evil"]],
    ["a .. member", [tarHeader("global", "5"), tarFile("global/../../escaped", "x")], /"global\/\.\.\/\.\.\/escaped" has a "\.\." component/, ["global"]],
    ["an absolute member", [tarFile("/tmp/pgsb-tar-absolute", "x")], /has an absolute path/, []],
    ["a hard link", [tarFile("a", "x"), tarHeader("b", "1", 0, { linkname: "/etc/shadow" })], /"b" is a hard link/, ["a"]],
    ["a repeated file", [tarFile("a", "x"), tarFile("a", "y")], /"a" appears twice/, ["a"]],
  ])("refuses %s before a byte of it is written", async (_what, members, problem, left) => {
    const { root, into } = fresh();
    const err = await extractTar(pieces(Buffer.concat([...members, TAR_END])), into, log).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TarMemberError);
    expect((err as Error).message).toMatch(problem);
    expect(readdirSync(into).sort()).toEqual(left);
    expect(readdirSync(root)).toEqual(["data"]);
    expect(existsSync("/tmp/pgsb-tar-absolute")).toBe(false);
    if (left.includes("a")) expect(readFileSync(join(into, "a"), "utf8")).toBe("x");
  });

  it.each<[string, Buffer, RegExp]>([
    ["truncated in a member", Buffer.concat([tarHeader("a", "0", 1000), Buffer.alloc(600)]), /ends before its end-of-archive blocks/],
    ["without end blocks", tarFile("a", "x"), /ends before its end-of-archive blocks/],
    ["data after the end", Buffer.concat([tarFile("a", "x"), TAR_END, tarFile("b", "y")]), /data follows the tar's end-of-archive blocks/],
  ])("fails on a tar %s", async (_what, tar, problem) => {
    const { into } = fresh();
    await expect(extractTar(pieces(tar), into, log)).rejects.toThrow(problem);
  });

  it("accepts zero padding after the end blocks (as a tar ends on a record boundary)", async () => {
    const { into } = fresh();
    const r = await extractTar(pieces(Buffer.concat([tarFile("a", "x"), TAR_END, Buffer.alloc(9216)])), into, log);
    expect(r).toMatchObject({ members: 1, backupManifest: null });
  });
});
