// The S3 mirror against a real S3 server (s3rver, started here on 127.0.0.1 with a random
// port and a temp folder): multipart upload with sha256 metadata, download with checksum
// proof, mirrored deletions, a server that dies mid-upload, and wrong credentials.
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DeleteObjectCommand, HeadObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { scanCatalog, usable } from "../../lib/store/catalog.js";
import { sha256File, verifyChecksum } from "../../lib/store/checksum.js";
import type { Config } from "../../lib/config/config.js";
import { ExitCode, TaskError } from "../../lib/core/errors.js";
import type { LocalBackup } from "../../lib/s3/mirror.js";
import { deleteRemote, downloadBackup, fetchFromMirror, mirrorAll, mirrorDeletions, uploadBackup } from "../../lib/s3/mirror.js";
import type { Tier } from "../../lib/store/naming.js";
import { backupName } from "../../lib/store/naming.js";
import { listRemote, remoteCatalog } from "../../lib/s3/remoteCatalog.js";
import { MANIFEST_MAX_BYTES } from "../../lib/store/manifest.js";
import type { MirrorTarget } from "../../lib/s3/client.js";
import { getBytes, getText, mirrorTarget } from "../../lib/s3/client.js";
import type { CleanupReport } from "../../tasks/cleanup.js";
import { run as cleanup } from "../../tasks/cleanup.js";
import { backupAndMirror } from "../../tasks/mirror.js";
import { freePort } from "../../lib/core/port.js";
import { cliEnv, runCli, tempDir, testConfig, testDeps } from "../helpers.js";
import type { Server } from "../s3Server.js";
import { BUCKET, s3Env, startS3 } from "../s3Server.js";
import { testManifest } from "../manifests.js";

const MiB = 1024 * 1024;

/** A backup as the backup task leaves it (data, .sha256, .json), with random bytes for data. */
function fakeBackup(backupDir: string, tier: Tier, time: Date, bytes: number): LocalBackup {
  const name = backupName(tier, time, "bzip2");
  const dir = join(backupDir, tier);
  mkdirSync(dir, { recursive: true });
  const path = join(dir, name);
  const data = randomBytes(bytes);
  writeFileSync(path, data);
  const sha256 = createHash("sha256").update(data).digest("hex");
  const manifest = testManifest(name, { rawBytes: bytes, compressedBytes: bytes, sha256, databases: ["postgres", "app"], included: ["postgres", "app"] });
  writeFileSync(path + ".sha256", `${sha256}  ${name}\n`);
  writeFileSync(path + ".json", JSON.stringify(manifest, null, 2) + "\n");
  return { name, tier, path, manifest };
}

function removeLocal(b: LocalBackup): void {
  for (const s of ["", ".sha256", ".json"]) rmSync(b.path + s, { force: true });
}

async function head(t: MirrorTarget, key: string) {
  return t.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
}

const T = (iso: string) => new Date(iso);
let shared: Server;

beforeAll(async () => {
  shared = await startS3(tempDir("pgsb-s3rver-"));
});
afterAll(() => shared.stop());

function setup(prefix: string): { dir: string; config: Config; t: MirrorTarget; deps: ReturnType<typeof testDeps> } {
  const dir = tempDir();
  const config = testConfig(inject("cluster"), dir, s3Env(shared.port, prefix));
  const deps = testDeps();
  if (config.s3 === null) throw new Error("S3 config missing");
  return { dir, config, t: mirrorTarget(config.s3, deps.log), deps };
}

describe("upload", () => {
  it("sends a > 8 MiB backup as a multipart upload with sha256 metadata, then the sidecars; a second run uploads nothing", async () => {
    const { dir, config, t, deps } = setup("upload");
    const b = fakeBackup(dir, "full", T("2026-03-01T03:00:00Z"), 12 * MiB + 12345);
    const parts: number[] = [];
    t.client.middlewareStack.add(
      (next) => async (args) => {
        const input = args.input as { PartNumber?: number };
        if (input.PartNumber !== undefined) parts.push(input.PartNumber);
        return next(args);
      },
      { step: "initialize", name: "countParts" },
    );
    const r = await uploadBackup(t, b);
    expect(r).toMatchObject({ key: `upload/full/${b.name}`, bytes: 12 * MiB + 12345, parts: 2 });
    expect(parts.sort()).toEqual([1, 2]);
    const h = await head(t, r.key);
    expect(h.ContentLength).toBe(12 * MiB + 12345);
    expect(h.Metadata?.sha256).toBe(b.manifest.sha256);
    for (const sidecar of [".sha256", ".json"]) expect(await getText(t, r.key + sidecar)).toBe(readFileSync(b.path + sidecar, "utf8"));
    const remote = await listRemote(t);
    expect(remote.map((x) => [x.name, x.bytes, x.problem])).toEqual([[b.name, 12 * MiB + 12345, null]]);
    expect(deps.logs.some((l) => String(l.msg).includes("in 2 part(s)"))).toBe(true);

    const again = await mirrorAll(t, await scanCatalog(config.backupDir), { thorough: true });
    expect(again).toMatchObject({ planned: [], uploaded: [], inSync: [b.name] });
  });


  it("mirror re-uploads what S3 lacks or holds differently; a LIST sees sizes and sidecars, the thorough run also sha256 metadata", async () => {
    const { dir, t } = setup("resync");
    const a = fakeBackup(dir, "full", T("2026-03-01T03:00:00Z"), 1000);
    const b = fakeBackup(dir, "incremental", T("2026-03-01T04:00:00Z"), 2000);
    await mirrorAll(t, await scanCatalog(dir));
    const c = fakeBackup(dir, "incremental", T("2026-03-01T05:00:00Z"), 3000);
    // Same size, other bytes and metadata: only a HEAD can tell.
    await t.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: `resync/full/${a.name}`, Body: randomBytes(1000), Metadata: { sha256: "0".repeat(64) } }));
    await t.client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: `resync/incremental/${b.name}.json` }));

    const quick = await mirrorAll(t, await scanCatalog(dir), { dryRun: true });
    expect(quick.planned).toEqual([
      { name: c.name, reason: "not in S3" },
      { name: b.name, reason: "sidecars missing in S3" },
    ]);
    expect(quick.uploaded).toEqual([]);
    const r = await mirrorAll(t, await scanCatalog(dir), { thorough: true });
    expect(r.planned.map((p) => [p.name, p.reason])).toEqual([
      [c.name, "not in S3"],
      [b.name, "sidecars missing in S3"],
      [a.name, "sha256 in S3 differs (000000000000…)"],
    ]);
    expect((await head(t, `resync/full/${a.name}`)).Metadata?.sha256).toBe(a.manifest.sha256);
    expect((await mirrorAll(t, await scanCatalog(dir), { thorough: true })).planned).toEqual([]);
  });
});

describe("download", () => {
  it("fetches a backup whose local copy was deleted, proves its checksum, and refuses a corrupted remote copy", async () => {
    const { dir, config, t, deps } = setup("download");
    const b = fakeBackup(dir, "differential", T("2026-03-04T03:00:00Z"), 3 * MiB);
    await uploadBackup(t, b);
    removeLocal(b);
    expect(await fetchFromMirror(config, b.name, deps.log)).toBe(b.path);
    expect(await sha256File(b.path)).toBe(b.manifest.sha256);
    expect(await verifyChecksum(b.path, b.manifest.sha256)).toMatchObject({ ok: true });
    expect(usable(await scanCatalog(dir)).map((e) => e.name)).toEqual([b.name]);

    // Bit rot in the bucket: same size, the metadata still claims the old sha256.
    await t.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: `download/differential/${b.name}`, Body: randomBytes(3 * MiB), Metadata: { sha256: b.manifest.sha256 } }));
    removeLocal(b);
    const err = await downloadBackup(t, b.name, dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskError);
    expect((err as TaskError).exitCode).toBe(ExitCode.refused);
    expect((err as TaskError).message).toMatch(new RegExp(`s3://${BUCKET}/download/differential/${b.name.replace(/\./g, "\\.")} is corrupt: checksum mismatch .*it was not used and nothing was written`));
    expect(readdirSync(join(dir, "differential"))).toEqual([]);

    expect(await downloadBackup(t, "20200101_000000_full.sql.bz2", dir)).toBeNull();
    expect(await fetchFromMirror({ ...config, s3: null }, b.name, deps.log)).toBeNull();
  });

  it("a download that fills BACKUP_DIR is a storage error (9) naming it, with nothing left behind", async () => {
    const { dir, t } = setup("enospc");
    const b = fakeBackup(dir, "full", T("2026-03-05T03:00:00Z"), 1 * MiB);
    await uploadBackup(t, b);
    const small = tempDir("pgsb-enospc-");
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=256k", "tmpfs", small]);
    try {
      const err = await downloadBackup(t, b.name, small).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TaskError);
      expect((err as TaskError).exitCode).toBe(ExitCode.storage);
      expect((err as TaskError).message).toMatch(new RegExp(`^BACKUP_DIR=${small}: cannot write .*${b.name.replace(/\./g, "\\.")}\\.[0-9a-f]+\\.partial \\(ENOSPC`));
      expect(readdirSync(join(small, "full"))).toEqual([]);
      // The same through the CLI: restore-full of a bare name fetches it from the mirror first.
      const r = await runCli(["restore-full", b.name], cliEnv(inject("cluster"), small, s3Env(shared.port, "enospc")));
      expect(r.code, r.stderr).toBe(9);
      expect(r.stderr).toMatch(new RegExp(`BACKUP_DIR=${small}: cannot write .*ENOSPC: no space left on the device`));
      expect(readdirSync(join(small, "full"))).toEqual([]);
    } finally {
      execFileSync("umount", [small]);
    }
  });
});

describe("remote manifests", () => {
  it("a forged or oversized manifest in S3 makes that backup unusable with the reason, and a download of it is refused", async () => {
    const { dir, config, t } = setup("forged");
    const evil = fakeBackup(dir, "full", T("2026-03-06T03:00:00Z"), 1000);
    const huge = fakeBackup(dir, "incremental", T("2026-03-06T04:00:00Z"), 1000);
    await mirrorAll(t, await scanCatalog(dir));
    const key = (b: LocalBackup) => `forged/${b.tier}/${b.name}.json`;
    await t.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key(evil), Body: JSON.stringify({ ...evil.manifest, compression: { codec: "evil", program: "x", level: 1 } }) }));
    await t.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key(huge), Body: Buffer.alloc(MANIFEST_MAX_BYTES + 1, 0x20) }));
    const entries = await remoteCatalog(t, config.backupDir);
    const problem = (b: LocalBackup) => entries.find((e) => e.name === b.name)?.problem;
    expect(problem(evil)).toBe('invalid manifest in S3: compression.codec: "evil" is not one of bzip2, zstd, gzip, none');
    expect(problem(huge)).toMatch(new RegExp(`^invalid manifest in S3: it is ${MANIFEST_MAX_BYTES + 1} bytes, more than the ${MANIFEST_MAX_BYTES}`));
    removeLocal(evil);
    const err = await downloadBackup(t, evil.name, dir).catch((e: unknown) => e);
    expect((err as TaskError).exitCode).toBe(ExitCode.refused);
    expect((err as TaskError).message).toMatch(/has an unusable manifest \(compression\.codec: "evil" is not one of bzip2, zstd, gzip, none\); it was not used/);
    expect(readdirSync(join(dir, "full"))).toEqual([]);
  });
});

describe("deletions", () => {
  it("deletes the names cleanup deleted (data and sidecars), and nothing with S3_RETENTION=keep", async () => {
    const { dir, config, t, deps } = setup("delete");
    const [a, b, c] = ["2026-03-01T03:00:00Z", "2026-03-01T04:00:00Z", "2026-03-01T05:00:00Z"].map((iso, i) => fakeBackup(dir, i === 0 ? "full" : "incremental", T(iso), 100 + i));
    await mirrorAll(t, await scanCatalog(dir));
    // s3rver races with itself when a multi-key delete empties a folder (two rmdirs, a 500);
    // a foreign object in each folder keeps them non-empty. Listings ignore such keys.
    for (const tier of ["full", "incremental"]) await t.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: `delete/${tier}/README`, Body: "not a backup" }));
    expect((await listRemote(t)).length).toBe(3);

    const keep = testConfig(inject("cluster"), dir, { ...s3Env(shared.port, "delete"), S3_RETENTION: "keep" });
    expect(await mirrorDeletions(keep, [a!.name], deps.log)).toEqual({ status: "keep" });
    expect(await mirrorDeletions({ ...config, s3: null }, [a!.name], deps.log)).toEqual({ status: "off" });
    expect((await listRemote(t)).length).toBe(3);

    expect(await mirrorDeletions(config, [a!.name, b!.name], deps.log)).toEqual({ status: "deleted", names: [a!.name, b!.name], objects: 8 });
    expect((await listRemote(t)).map((r) => [r.name, r.problem])).toEqual([[c!.name, null]]);
    expect(await mirrorDeletions(config, [a!.name], deps.log)).toMatchObject({ status: "deleted" });

    // Older MinIO and other S3-compatible servers demand Content-MD5 on DeleteObjects, not CRC32.
    const sent: Record<string, string>[] = [];
    t.client.middlewareStack.add(
      (next) => async (args) => {
        sent.push({ ...(args.request as { headers: Record<string, string> }).headers });
        return next(args);
      },
      { step: "finalizeRequest", priority: "low", name: "captureHeaders" },
    );
    expect(await deleteRemote(t, [c!.name])).toHaveLength(4);
    expect(sent.map((h) => Object.keys(h).filter((k) => /content-md5|checksum/i.test(k)))).toEqual([["content-md5"], ["content-md5"]]);
    expect(await listRemote(t)).toEqual([]);
  });
});

describe("failures", () => {
  it("server down mid-upload: the error is clear, exit code 6, local backup intact; the next mirror run uploads it", async () => {
    const dir = tempDir();
    const s3dir = tempDir("pgsb-s3rver-");
    let server = await startS3(s3dir);
    const env = cliEnv(inject("cluster"), dir, s3Env(server.port, "down"));
    const config = testConfig(inject("cluster"), dir, env);
    const t = mirrorTarget(config.s3!, testDeps().log, { partSize: 5 * MiB, queueSize: 1, maxAttempts: 1 });
    const b = fakeBackup(dir, "full", T("2026-03-01T03:00:00Z"), 16 * MiB);
    t.client.middlewareStack.add(
      (next) => async (args) => {
        const out = await next(args);
        if ((args.input as { PartNumber?: number }).PartNumber === 1) await server.stop();
        return out;
      },
      { step: "initialize", name: "stopServerAfterFirstPart" },
    );
    const err = await uploadBackup(t, b).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskError);
    expect((err as TaskError).exitCode).toBe(ExitCode.mirrorFailed);
    expect((err as TaskError).message).toMatch(/^upload of \S+ to s3:\/\/pgsb-backups\/down\/full\/\S+ failed: cannot reach S3_ENDPOINT=http:\/\/127\.0\.0\.1:\d+ \((ECONNREFUSED|ECONNRESET|EPIPE)\); check the endpoint/);
    expect(await verifyChecksum(b.path, b.manifest.sha256)).toMatchObject({ ok: true });

    const down = await runCli(["mirror"], env);
    expect(down.code).toBe(ExitCode.mirrorFailed);
    expect(down.stderr).toMatch(/pg-swarm-backup mirror: listing of s3:\/\/pgsb-backups\/down\/ failed: cannot reach S3_ENDPOINT/);

    server = await startS3(s3dir, server.port);
    try {
      expect(await listRemote(t)).toEqual([]); // the interrupted multipart upload left no object
      const up = await runCli(["mirror"], env);
      expect(up.stderr).not.toMatch(/"level":"error"/);
      expect(up.code).toBe(0);
      expect(up.stdout).toMatch(/^uploaded 1 backup\(s\) to s3:\/\/pgsb-backups\/down\/; 0 already in S3\n {2}uploaded \S+: not in S3\n$/);
      expect((await head(t, `down/full/${b.name}`)).Metadata?.sha256).toBe(b.manifest.sha256);
      expect((await runCli(["mirror"], env)).stdout).toMatch(/^uploaded 0 backup\(s\) .*; 1 already in S3\n$/);
    } finally {
      await server.stop();
    }
  });

  it("backup then mirror: a real backup stays when S3 is down (exit 6); the next backup uploads both; restore can fetch it back", async () => {
    const dir = tempDir();
    const port = await freePort();
    const config = testConfig(inject("cluster"), dir, s3Env(port, "real"));
    const args = { tier: "full" as const, force: true, dryRun: false, allowNewCluster: false };
    const err = await backupAndMirror(config, testDeps(), args, { maxAttempts: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskError);
    expect((err as TaskError).exitCode).toBe(ExitCode.mirrorFailed);
    expect((err as TaskError).message).toMatch(/^the full backup \S+ is written and intact, but the S3 mirror failed: upload of .* cannot reach S3_ENDPOINT=.*\. The next backup or `pg-swarm-backup mirror` uploads what is missing$/);
    const [first] = usable(await scanCatalog(dir));
    expect(await verifyChecksum(first!.path, first!.manifest!.sha256)).toMatchObject({ ok: true });

    const server = await startS3(tempDir("pgsb-s3rver-"), port);
    try {
      await new Promise((r) => setTimeout(r, 1100)); // backup names have one-second resolution
      const second = await backupAndMirror(config, testDeps(), args);
      expect(second.status).toBe("written");
      const t = mirrorTarget(config.s3!, testDeps().log);
      expect((await listRemote(t)).map((r) => [r.name, r.problem])).toEqual(usable(await scanCatalog(dir)).map((e) => [e.name, null]));

      removeLocal(first! as LocalBackup);
      expect(await fetchFromMirror(config, first!.name, testDeps().log)).toBe(first!.path);
      expect(await verifyChecksum(first!.path, first!.manifest!.sha256)).toMatchObject({ ok: true });
      execFileSync("bunzip2", ["-t", first!.path]);
    } finally {
      await server.stop();
    }
  });

  it("cleanup while S3 is down deletes locally (exit 6); the next cleanup deletes those backups from S3, a --dry-run first shows them", async () => {
    const dir = tempDir();
    const s3dir = tempDir("pgsb-s3rver-");
    let server = await startS3(s3dir);
    const config = testConfig(inject("cluster"), dir, s3Env(server.port, "retry"));
    const t = mirrorTarget(config.s3!, testDeps().log);
    const full = fakeBackup(dir, "full", T("2026-03-01T03:00:00Z"), 1000);
    const old = [fakeBackup(dir, "differential", T("2026-03-01T04:00:00Z"), 2000), fakeBackup(dir, "differential", T("2026-03-01T05:00:00Z"), 3000)];
    await mirrorAll(t, await scanCatalog(dir));
    // Keeps the differential folder non-empty: s3rver races with itself when a delete empties one.
    await t.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: "retry/differential/README", Body: "not a backup" }));
    const args = { dryRun: false, json: true, now: "2027-01-01" };
    await server.stop();

    const down = testDeps();
    await expect(cleanup(config, down, args)).rejects.toMatchObject({ exitCode: ExitCode.mirrorFailed, message: expect.stringMatching(/^the S3 mirror cannot be listed \(listing of s3:\/\/pgsb-backups\/retry\/ failed: cannot reach S3_ENDPOINT=.*; cleanup deleted from BACKUP_DIR only, nothing in S3\./) });
    const local = JSON.parse(down.output.join("")) as CleanupReport;
    expect(local.decisions.map((d) => [d.name, d.action, d.location])).toEqual([[full.name, "keep", undefined], ...old.map((b) => [b.name, "delete", undefined])]);
    for (const b of old) for (const s of ["", ".sha256", ".json"]) expect(existsSync(b.path + s)).toBe(false);
    expect(existsSync(full.path)).toBe(true);

    server = await startS3(s3dir, server.port);
    try {
      const dry = testDeps();
      await cleanup(config, dry, { ...args, dryRun: true });
      const plan = JSON.parse(dry.output.join("")) as CleanupReport;
      expect(plan.decisions.map((d) => [d.name, d.action, d.location, d.bytes])).toEqual([[full.name, "keep", undefined, expect.any(Number)], [old[0]!.name, "delete", "s3", 2000], [old[1]!.name, "delete", "s3", 3000]]);
      expect(plan.freedBytes).toBe(0);
      const human = testDeps();
      await cleanup(config, human, { ...args, dryRun: true, json: false });
      expect(human.output.join("")).toMatch(/ACTION\s+WHERE\s+TIER.*\n.*keep\s+local\s+full[\s\S]*delete\s+S3 only\s+differential/);
      expect(human.output.join("")).toContain("keep 1, delete 2 (2 only in S3), 0 B would be freed");
      expect((await listRemote(t)).map((r) => r.name)).toEqual([full.name, ...old.map((b) => b.name)]);

      const up = testDeps();
      const report = await cleanup(config, up, args);
      expect(report.freedBytes).toBe(0);
      expect((await listRemote(t)).map((r) => r.name)).toEqual([full.name]);
      expect(existsSync(full.path)).toBe(true);
    } finally {
      await server.stop();
    }
  });

  it("wrong credentials: a clear error naming the settings, exit code 6, and neither key id nor secret printed", async () => {
    const dir = tempDir();
    fakeBackup(dir, "full", T("2026-03-01T03:00:00Z"), 1000);
    const wrong = { id: "WRONGKEYID4711", secret: "wr0ng/s3cret+VALUE-0815" };
    const env = cliEnv(inject("cluster"), dir, { ...s3Env(shared.port, "creds", wrong), LOG_LEVEL: "debug" });
    for (const args of [["mirror"], ["list", "--source", "s3"]]) {
      const r = await runCli(args, env);
      expect(r.code).toBe(ExitCode.mirrorFailed);
      expect(r.stderr).toMatch(/S3 rejected the credentials \(InvalidAccessKeyId: The AWS Access Key Id you provided does not exist in our records\.\); check AWS_ACCESS_KEY_ID_FILE\/AWS_SECRET_ACCESS_KEY_FILE/);
      for (const text of [r.stdout, r.stderr]) {
        expect(text).not.toContain(wrong.secret);
        expect(text).not.toContain(wrong.id);
      }
    }
  });
});

describe("CLI", () => {
  it("mirror --dry-run uploads nothing; mirror uploads; list --source s3 shows the bucket", async () => {
    const dir = tempDir();
    const a = fakeBackup(dir, "full", T("2026-03-01T03:00:00Z"), 1000);
    const b = fakeBackup(dir, "incremental", T("2026-03-01T04:00:00Z"), 1000);
    const env = cliEnv(inject("cluster"), dir, s3Env(shared.port, "cli"));
    const dry = await runCli(["mirror", "--dry-run"], env);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toBe(`would upload 2 backup(s) to s3://${BUCKET}/cli/; 0 already in S3\n  upload ${b.name}: not in S3\n  upload ${a.name}: not in S3\n`);
    expect((await runCli(["list", "--source", "s3"], env)).stdout).toMatch(/^no backups in s3:\/\/pgsb-backups\/cli\//);
    expect((await runCli(["mirror"], env)).code).toBe(0);
    const json = await runCli(["list", "--source", "s3", "--json"], env);
    expect(json.code).toBe(0);
    const parsed = JSON.parse(json.stdout) as { source: string; backups: { name: string; included: string[]; sha256: string; problem: null }[] };
    expect(parsed.source).toBe(`s3://${BUCKET}/cli/`);
    expect(parsed.backups.map((x) => [x.name, x.sha256, x.problem])).toEqual([[a.name, a.manifest.sha256, null], [b.name, b.manifest.sha256, null]]);
    const text = await runCli(["list", "--source", "s3", "--tier", "incremental"], env);
    expect(text.stdout).toMatch(new RegExp(`incremental .* 2/2 postgres, app\\s+${b.name.replace(/\./g, "\\.")}`));
    expect(text.stdout).not.toContain(a.name);
  });
});

describe("restore from the mirror", () => {
  it("restore-database and restore-latest download what BACKUP_DIR lacks, verify it, and restore it", async () => {
    const cluster = inject("cluster");
    const db = `s3src_${process.pid}`;
    const { sql } = await import("../cluster.js");
    await sql(cluster, "postgres", `CREATE DATABASE ${db}`);
    await sql(cluster, db, "CREATE TABLE t (x int); INSERT INTO t SELECT generate_series(1, 500)");
    const { dir, config } = setup("restore");
    const written = await backupAndMirror(config, testDeps(), { tier: "full", force: true, dryRun: false, allowNewCluster: false });
    expect(written.status).toBe("written");
    if (written.status !== "written") return;
    rmSync(join(dir, "full"), { recursive: true });
    const env = { ...cliEnv(cluster, dir), ...s3Env(shared.port, "restore") };
    try {
      const one = await runCli(["restore-database", written.name, db, "--as", `${db}_copy`], env);
      expect(one.code, one.stderr).toBe(0);
      expect((await sql(cluster, `${db}_copy`, "SELECT count(*)::int AS n FROM t")).rows[0]).toEqual({ n: 500 });
      expect(readdirSync(join(dir, "full"))).toContain(written.name);

      rmSync(join(dir, "full"), { recursive: true });
      const plan = await runCli(["restore-latest", "--dry-run"], env);
      expect(plan.code, plan.stderr).toBe(0);
      expect(plan.stdout).toContain(written.name);
    } finally {
      await sql(cluster, "postgres", `DROP DATABASE IF EXISTS ${db}_copy`);
      await sql(cluster, "postgres", `DROP DATABASE ${db}`);
    }
  });

  it("a signed backup round-trips with its .sig (uploaded before the manifest, downloaded, deleted) and restores with BACKUP_VERIFY_KEY_FILE", async () => {
    const cluster = inject("cluster");
    const keys = tempDir("pgsb-s3keys-");
    execFileSync("openssl", ["genpkey", "-algorithm", "ed25519", "-out", join(keys, "sign.pem")]);
    execFileSync("openssl", ["pkey", "-in", join(keys, "sign.pem"), "-pubout", "-out", join(keys, "verify.pem")]);
    const db = `s3sig_${process.pid}`;
    const { sql } = await import("../cluster.js");
    await sql(cluster, "postgres", `CREATE DATABASE ${db}`);
    await sql(cluster, db, "CREATE TABLE t (x int); INSERT INTO t SELECT generate_series(1, 70)");
    const dir = tempDir();
    const config = testConfig(cluster, dir, { ...s3Env(shared.port, "signed"), BACKUP_SIGNING_KEY_FILE: join(keys, "sign.pem") });
    const t = mirrorTarget(config.s3!, testDeps().log);
    const puts: string[] = [];
    try {
      const written = await backupAndMirror(config, testDeps(), { tier: "full", force: true, dryRun: false, allowNewCluster: false });
      if (written.status !== "written") throw new Error("no backup written");
      const key = `signed/full/${written.name}`;
      const sig = readFileSync(`${written.path}.sha256.sig`);
      expect(sig).toHaveLength(64);
      expect(await getBytes(t, `${key}.sha256.sig`)).toEqual(sig);
      expect((await listRemote(t)).map((r) => [r.name, r.hasSignature, r.problem])).toEqual([[written.name, true, null]]);

      // A signature lost in S3 is put back by the next mirror run, before the manifest again.
      await t.client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: `${key}.sha256.sig` }));
      t.client.middlewareStack.add(
        (next) => async (args) => {
          const input = args.input as { Key?: string; Body?: unknown };
          if (input.Body !== undefined && input.Key !== undefined) puts.push(input.Key.slice(key.length));
          return next(args);
        },
        { step: "initialize", name: "recordPuts" },
      );
      expect(await mirrorAll(t, await scanCatalog(dir))).toMatchObject({ planned: [{ name: written.name, reason: "signature missing in S3" }] });
      expect(puts.slice(-3)).toEqual([".sha256", ".sha256.sig", ".json"]);

      rmSync(join(dir, "full"), { recursive: true });
      const env = { ...cliEnv(cluster, dir), ...s3Env(shared.port, "signed"), BACKUP_VERIFY_KEY_FILE: join(keys, "verify.pem") };
      const r = await runCli(["restore-database", written.name, db, "--as", `${db}_copy`], env);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain("signatures and checksums verified for 1 file(s) as they were read, each once");
      expect(readFileSync(`${written.path}.sha256.sig`)).toEqual(sig);
      expect((await sql(cluster, `${db}_copy`, "SELECT count(*)::int AS n FROM t")).rows[0]).toEqual({ n: 70 });

      await t.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: "signed/full/README", Body: "keeps the folder" }));
      await deleteRemote(t, [written.name]);
      expect(await listRemote(t)).toEqual([]);
    } finally {
      await sql(cluster, "postgres", `DROP DATABASE IF EXISTS ${db}_copy`);
      await sql(cluster, "postgres", `DROP DATABASE ${db}`);
    }
  });

  it("an encrypted backup is mirrored as it is stored (age's bytes), fetched back, and restored with AGE_IDENTITY_FILE", async () => {
    const cluster = inject("cluster");
    const keys = tempDir("pgsb-s3age-");
    execFileSync("age-keygen", ["-o", join(keys, "id.txt")], { stdio: "ignore" });
    writeFileSync(join(keys, "rec.txt"), execFileSync("age-keygen", ["-y", join(keys, "id.txt")]));
    const db = `s3age_${process.pid}`;
    const { sql } = await import("../cluster.js");
    await sql(cluster, "postgres", `CREATE DATABASE ${db}`);
    await sql(cluster, db, "CREATE TABLE t (x text); INSERT INTO t SELECT 'plaintext-marker-' || g FROM generate_series(1, 90) g");
    const dir = tempDir();
    const config = testConfig(cluster, dir, { ...s3Env(shared.port, "encrypted"), AGE_RECIPIENTS_FILE: join(keys, "rec.txt"), BACKUP_COMPRESSION: "none" });
    const t = mirrorTarget(config.s3!, testDeps().log);
    try {
      const written = await backupAndMirror(config, testDeps(), { tier: "full", force: true, dryRun: false, allowNewCluster: false });
      if (written.status !== "written") throw new Error("no backup written");
      expect(written.name).toMatch(/_full\.sql\.age$/);
      const stored = readFileSync(written.path);
      const remote = await getBytes(t, `encrypted/full/${written.name}`);
      expect(remote).toEqual(stored);
      expect(remote?.includes("plaintext-marker")).toBe(false);
      expect((await listRemote(t)).map((r) => [r.name, r.problem])).toEqual([[written.name, null]]);

      rmSync(join(dir, "full"), { recursive: true });
      const env = { ...cliEnv(cluster, dir), ...s3Env(shared.port, "encrypted") };
      const refused = await runCli(["restore-database", written.name, db, "--as", `${db}_copy`], env);
      expect(refused.code).toBe(4);
      expect(refused.stderr).toContain("set AGE_IDENTITY_FILE");
      const r = await runCli(["restore-database", written.name, db, "--as", `${db}_copy`], { ...env, AGE_IDENTITY_FILE: join(keys, "id.txt") });
      expect(r.code, r.stderr).toBe(0);
      expect((await sql(cluster, `${db}_copy`, "SELECT count(*)::int AS n FROM t")).rows[0]).toEqual({ n: 90 });
      await deleteRemote(t, [written.name]);
    } finally {
      await sql(cluster, "postgres", `DROP DATABASE IF EXISTS ${db}_copy`);
      await sql(cluster, "postgres", `DROP DATABASE ${db}`);
    }
  });
});
