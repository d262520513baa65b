// A signed backup changed while a restore reads it. The file is opened once and every 8 MiB
// chunk is checked against the signed manifest before a byte of it reaches the decompressor or
// psql: a copy renamed over the path after the open is never read (the descriptor keeps
// reading what it opened), bytes overwritten in place stop the restore at that chunk (exit 4,
// nothing renamed into place, temporary databases dropped), and an evil copy swapped in and
// out in a loop never runs, however the timing falls.
import { copyFileSync, existsSync, linkSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ExitCode, TaskError } from "../../lib/core/errors.js";
import { CHUNK_BYTES } from "../../lib/store/chunks.js";
import { readHooks } from "../../lib/store/verifiedRead.js";
import { run as backup } from "../../tasks/backup.js";
import { run as restore } from "../../tasks/restore.js";
import type { ClusterInfo } from "../cluster.js";
import { ClusterSet, normalisedDumpall, psqlScript, sql } from "../cluster.js";
import { cliEnv, runCli, tempDir, testConfig, testDeps } from "../helpers.js";

const clusters = new ClusterSet();
const keys = tempDir("pgsb-swap-keys-");
const SIGN = join(keys, "sign.pem");
const VERIFY = join(keys, "verify.pem");
let src: ClusterInfo;
let dst: ClusterInfo;
let dir: string;
let path: string;
let name: string;
let evil: string;
const marker = join(tmpdir(), `pgsb-swap-pwned-${process.pid}`);

beforeAll(async () => {
  execFileSync("openssl", ["genpkey", "-algorithm", "ed25519", "-out", SIGN]);
  execFileSync("openssl", ["pkey", "-in", SIGN, "-pubout", "-out", VERIFY]);
  src = await clusters.create("swap-src");
  psqlScript(src, "postgres", "CREATE DATABASE big;");
  // About 24 MB of SQL, stored uncompressed: three 8 MiB chunks and a fourth.
  psqlScript(src, "big", "CREATE TABLE rows (id int PRIMARY KEY, v text); INSERT INTO rows SELECT g, repeat('x', 40) || g FROM generate_series(1, 500000) g;");
  dir = tempDir("pgsb-swap-");
  const r = await backup(testConfig(src, dir, { BACKUP_COMPRESSION: "none", BACKUP_SIGNING_KEY_FILE: SIGN }), testDeps(), { tier: "full", force: true, dryRun: false, allowNewCluster: false });
  if (r.status !== "written") throw new Error("no backup");
  [name, path] = [r.name, r.path];
  expect(statSync(path).size).toBeGreaterThan(3 * CHUNK_BYTES);
  // The evil copy: the same file with a COPY … TO PROGRAM in its first chunk, as the share's writer would plant it.
  const text = readFileSync(path, "latin1");
  evil = join(dir, "evil.sql");
  writeFileSync(evil, text.replace("CREATE TABLE public.rows (", () => `DO $$ BEGIN EXECUTE 'COPY (SELECT 1) TO PROGRAM ''touch ${marker}'''; END $$;\nCREATE TABLE public.evil (x int);\nCREATE TABLE public.rows (`), "latin1");
  dst = await clusters.create("swap-dst");
  psqlScript(dst, "postgres", "CREATE DATABASE big;");
  psqlScript(dst, "big", "CREATE TABLE before_restore (x int); INSERT INTO before_restore VALUES (1);");
});

afterEach(() => {
  readHooks.beforeChunk = null;
  rmSync(marker, { force: true });
});

afterAll(() => clusters.destroyAll());

const config = () => testConfig(dst, dir, { BACKUP_VERIFY_KEY_FILE: VERIFY });
const args = { command: "restore-full" as const, file: "", dropExisting: true };
const temps = async () => (await sql(dst, "postgres", "SELECT datname FROM pg_database WHERE datname LIKE 'pgsb\\_%'")).rows;

function restoreGood(): void {
  copyFileSync(join(dir, "good.sql"), path);
}

describe("a signed backup changed while it is read", () => {
  beforeAll(() => copyFileSync(path, join(dir, "good.sql")));

  it("a copy renamed over the path between two chunks is never read: the genuine backup is restored", async () => {
    readHooks.beforeChunk = async (file, chunksRead) => {
      if (file === name && chunksRead === 1) {
        copyFileSync(evil, `${path}.swap`);
        renameSync(`${path}.swap`, path);
      }
    };
    const out = await restore(config(), testDeps(), { ...args, file: path });
    expect(out.status).toBe("restored");
    expect(existsSync(marker)).toBe(false);
    expect((await sql(dst, "big", "SELECT count(*)::int AS n FROM rows")).rows).toEqual([{ n: 500000 }]);
    expect((await sql(dst, "big", "SELECT to_regclass('public.evil') AS t")).rows).toEqual([{ t: null }]);
    restoreGood();
  });

  it("bytes overwritten in place after the first chunk stop the restore at that chunk: exit 4, nothing renamed, temporaries dropped", async () => {
    psqlScript(dst, "big", "CREATE TABLE IF NOT EXISTS before_restore (x int);");
    const before = normalisedDumpall(dst);
    readHooks.beforeChunk = async (file, chunksRead) => {
      if (file !== name || chunksRead !== 1) return;
      const fh = await open(path, "r+");
      await fh.write(Buffer.from("SELECT 1; -- not what was signed\n"), 0, undefined, CHUNK_BYTES + 100);
      await fh.close();
    };
    const err = await restore(config(), testDeps(), { ...args, file: path }).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(TaskError);
    expect((err as TaskError).exitCode).toBe(ExitCode.refused);
    expect((err as TaskError).message).toMatch(new RegExp(`${name}: checksum mismatch in chunk 2 of \\d+ \\(bytes ${CHUNK_BYTES}–.*no database was renamed into place`));
    expect(normalisedDumpall(dst)).toBe(before);
    expect(await temps()).toEqual([]);
    restoreGood();
  });

  it("a byte flipped in the last chunk stops the restore with nothing renamed (exit 4)", async () => {
    const before = normalisedDumpall(dst);
    const data = readFileSync(path);
    data.writeUInt8(data.readUInt8(data.length - 3) ^ 1, data.length - 3);
    writeFileSync(path, data);
    const chunks = Math.ceil(data.length / CHUNK_BYTES);
    const r = await runCli(["restore-full", path, "--drop-existing"], cliEnv(dst, dir, { BACKUP_VERIFY_KEY_FILE: VERIFY }));
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toContain(`${name}: checksum mismatch in chunk ${chunks} of ${chunks}`);
    expect(normalisedDumpall(dst)).toBe(before);
    expect(await temps()).toEqual([]);
    restoreGood();
  });

  it("an evil copy swapped in and out every 15 ms during ten restores never runs", async () => {
    const good = join(dir, "good.sql");
    let flip = false;
    let swaps = 0;
    const loop = setInterval(() => {
      flip = !flip;
      const tmp = `${path}.loop`;
      rmSync(tmp, { force: true });
      linkSync(flip ? evil : good, tmp);
      renameSync(tmp, path);
      swaps++;
    }, 15);
    const codes: (number | null)[] = [];
    try {
      for (let i = 0; i < 10; i++) {
        const r = await runCli(["restore-full", path, "--drop-existing"], cliEnv(dst, dir, { BACKUP_VERIFY_KEY_FILE: VERIFY }));
        codes.push(r.code);
        expect([0, 4], r.stderr).toContain(r.code);
        expect(existsSync(marker)).toBe(false);
        expect((await sql(dst, "big", "SELECT to_regclass('public.evil') AS t")).rows).toEqual([{ t: null }]);
      }
    } finally {
      clearInterval(loop);
      restoreGood();
    }
    expect(swaps).toBeGreaterThan(20);
    console.log(`swap loop: ${swaps} swaps, exit codes ${codes.join(" ")}`);
  });

  it("reads every byte of the file exactly once", async () => {
    const deps = testDeps();
    await restore(config(), deps, { ...args, file: path });
    const line = deps.logs.find((l) => String(l.msg).startsWith("signatures and checksums verified for 1 file(s)"));
    expect(line?.reads).toEqual([{ file: name, bytesRead: statSync(path).size }]);
    expect(createHash("sha256").update(readFileSync(path)).digest("hex")).toBe(JSON.parse(readFileSync(`${path}.json`, "utf8")).sha256);
  });
});
