// The .sha256 sidecar: the one-line form every backup before signing has, and the two-line
// form that covers the manifest too; both are read, and anything else is refused.
import { rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { checksumFileText, parseChecksumFile, sha256File, verifyChecksum } from "../../../lib/store/checksum.js";
import { tempDir } from "../../helpers.js";

const NAME = "20260301_030000_full.sql.bz2";
const A = "a".repeat(64);
const B = "b".repeat(64);

describe("parseChecksumFile", () => {
  it.each<[string, string, ReturnType<typeof parseChecksumFile>]>([
    ["the one-line form", `${A}  ${NAME}\n`, { data: A, manifest: null }],
    ["the one-line form without newline", `${A}  ${NAME}`, { data: A, manifest: null }],
    ["binary-mode marker", `${A} *${NAME}\n`, { data: A, manifest: null }],
    ["the two-line form", `${A}  ${NAME}\n${B}  ${NAME}.json\n`, { data: A, manifest: B }],
    ["CRLF line ends", `${A}  ${NAME}\r\n${B}  ${NAME}.json\r\n`, { data: A, manifest: B }],
  ])("reads %s", (_label, text, expected) => {
    expect(parseChecksumFile(text, NAME)).toEqual(expected);
  });

  it.each([
    ["empty", ""],
    ["another file's name", `${A}  20260301_030000_full.sql.gz\n`],
    ["upper-case hex", `${A.toUpperCase()}  ${NAME}\n`],
    ["a short hash", `${"a".repeat(63)}  ${NAME}\n`],
    ["the manifest line first", `${B}  ${NAME}.json\n${A}  ${NAME}\n`],
    ["another second file", `${A}  ${NAME}\n${B}  ${NAME}.sha256\n`],
    ["a third line", `${A}  ${NAME}\n${B}  ${NAME}.json\n${B}  x\n`],
    ["a path", `${A}  /backups/full/${NAME}\n`],
  ])("refuses %s", (_label, text) => {
    expect(parseChecksumFile(text, NAME)).toMatch(/is malformed \(expected "<sha256> {2}20260301_030000_full\.sql\.bz2", optionally followed by/);
  });

  it("writes what it reads, and what sha256sum -c expects", () => {
    const text = checksumFileText(NAME, A, B);
    expect(text).toBe(`${A}  ${NAME}\n${B}  ${NAME}.json\n`);
    expect(parseChecksumFile(text, NAME)).toEqual({ data: A, manifest: B });
  });
});

describe("verifyChecksum", () => {
  const dir = tempDir("pgsb-checksum-");
  const path = join(dir, NAME);
  writeFileSync(path, "data");
  writeFileSync(path + ".json", '{"manifest":true}\n');

  it("checks the data file against a one-line sidecar, as before", async () => {
    writeFileSync(path + ".sha256", `${await sha256File(path)}  ${NAME}\n`);
    expect(await verifyChecksum(path)).toMatchObject({ ok: true, manifestCovered: false });
  });

  it("checks the manifest too when the sidecar lists it", async () => {
    writeFileSync(path + ".sha256", checksumFileText(NAME, await sha256File(path), await sha256File(path + ".json")));
    expect(await verifyChecksum(path)).toMatchObject({ ok: true, manifestCovered: true });
    writeFileSync(path + ".json", '{"manifest":false}\n');
    expect(await verifyChecksum(path)).toEqual({ ok: false, problem: expect.stringMatching(/^20260301_030000_full\.sql\.bz2: manifest 20260301_030000_full\.sql\.bz2\.json was changed after the backup/) });
  });

  it("trusts the sidecar bytes it is given over the file on disk", async () => {
    writeFileSync(path + ".sha256", `${A}  ${NAME}\n`);
    const good = Buffer.from(`${await sha256File(path)}  ${NAME}\n`);
    expect(await verifyChecksum(path, undefined, good)).toMatchObject({ ok: true });
    expect(await verifyChecksum(path)).toMatchObject({ ok: false, problem: expect.stringMatching(/checksum mismatch/) });
  });

  it("follows no symlinked sidecar or manifest (a race with the catalog's lstat cannot redirect it)", async () => {
    const outside = tempDir("pgsb-outside-");
    writeFileSync(join(outside, "sum"), `${await sha256File(path)}  ${NAME}\n`);
    rmSync(path + ".sha256", { force: true });
    symlinkSync(join(outside, "sum"), path + ".sha256");
    expect(await verifyChecksum(path)).toEqual({ ok: false, problem: `${NAME}: checksum file ${NAME}.sha256 is missing` });
    rmSync(path + ".sha256");
    writeFileSync(join(outside, "manifest"), '{"manifest":true}\n');
    writeFileSync(path + ".sha256", checksumFileText(NAME, await sha256File(path), await sha256File(join(outside, "manifest"))));
    rmSync(path + ".json");
    symlinkSync(join(outside, "manifest"), path + ".json");
    expect(await verifyChecksum(path)).toMatchObject({ ok: false, problem: expect.stringMatching(/\.json is missing/) });
  });
});
