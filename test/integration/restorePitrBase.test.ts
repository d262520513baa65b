// restore-pitr and verify against base backups that are encrypted, signed, damaged or forged:
// a real source cluster, pg_receivewal into a WAL folder copied into each BACKUP_DIR, real
// `backup base` runs (a signed uncompressed one of several 8 MiB chunks, an age-encrypted zstd
// one), and forged ones made from the genuine tar by rewriting members, stored exactly as
// `backup base` stores a base backup. Every refusal must leave --pgdata as it was.
import { execFileSync } from "node:child_process";
import { createPrivateKey, createPublicKey } from "node:crypto";
import { closeSync, cpSync, existsSync, lstatSync, openSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sleep } from "../../lib/core/concurrency.js";
import { ExitCode, TaskError } from "../../lib/core/errors.js";
import { silentLogger } from "../../lib/core/log.js";
import { scanBaseCatalog } from "../../lib/base/catalog.js";
import type { BaseManifest } from "../../lib/physical/layout.js";
import { planPitr } from "../../lib/pitr/plan.js";
import { restorePitr } from "../../lib/pitr/restore.js";
import { trustBase } from "../../lib/pitr/trustedBase.js";
import { historiesByTimeline, listWalArchive, readHistoryFiles } from "../../lib/wal/archive.js";
import { stagedHistories } from "../../lib/pitr/plannedWal.js";
import { signWalStatement, walStatement } from "../../lib/wal/signature.js";
import type { ClusterInfo } from "../cluster.js";
import { createCluster, destroyCluster, sql } from "../cluster.js";
import { cliEnv, runCli, tempDir } from "../helpers.js";
import type { Receiver } from "../pitrFixtures.js";
import { restoreTarget, startReceiver, startRestored } from "../pitrFixtures.js";
import { storeBase } from "../baseForge.js";
import type { TarMember } from "../tarFixtures.js";
import { buildTar, tarHeader, tarMembers, withData, withMode } from "../tarFixtures.js";

let src: ClusterInfo;
let receiver: Receiver | undefined;
let walMaster: string;
let plainDir: string;
let encDir: string;
let plain: { name: string; manifest: BaseManifest; tar: Buffer };
let between: string;
const keys: Record<"sign" | "verify" | "identity" | "recipients" | "otherIdentity", string> = { sign: "", verify: "", identity: "", recipients: "", otherIdentity: "" };
const cleanup: (() => void)[] = [];
const SECRETS = ["secret_payroll", "alice_secret_role", "TOPSECRET-ROW-VALUE"];

/** A BACKUP_DIR with a copy of the WAL received so far. */
/** A BACKUP_DIR holding the test's WAL, every file signed as wal-receive signs it (restores here with a verify key need signed WAL). */
function backupDirWithWal(prefix: string): string {
  const d = tempDir(prefix);
  cleanup.push(() => rmSync(d, { recursive: true, force: true }));
  cpSync(walMaster, join(d, "wal"), { recursive: true, preserveTimestamps: true });
  const key = createPrivateKey(readFileSync(keys.sign));
  for (const f of readdirSync(join(d, "wal")).filter((n) => !n.endsWith(".sig"))) {
    const path = join(d, "wal", f);
    writeFileSync(`${path}.sig`, signWalStatement(walStatement(f, readFileSync(path), plain.manifest.systemIdentifier), key));
  }
  return d;
}

async function target(name: string): Promise<ClusterInfo> {
  const t = await restoreTarget(name);
  cleanup.push(() => destroyCluster(t));
  return t;
}

/** A BACKUP_DIR holding `members` as a base backup with the genuine one's manifest, signed when `signed`. */
function forged(prefix: string, members: TarMember[], signed: boolean): string {
  const d = backupDirWithWal(prefix);
  storeBase(d, plain.manifest, buildTar(members), signed ? createPrivateKey(readFileSync(keys.sign)) : null);
  return d;
}

/** The genuine tar's members with `change` applied to the one named `name`. */
function edit(name: string, change: (m: TarMember) => TarMember | TarMember[]): TarMember[] {
  const all = tarMembers(plain.tar);
  if (!all.some((m) => m.name === name)) throw new Error(`no member ${name}`);
  return all.flatMap((m) => (m.name === name ? change(m) : [m]));
}

async function promoted(t: ClusterInfo): Promise<void> {
  startRestored(t);
  for (const end = Date.now() + 60_000; ; await sleep(200)) {
    const r = await sql(t, "postgres", "SELECT pg_is_in_recovery() AS r").catch(() => null);
    if (r?.rows[0].r === false) return;
    if (Date.now() > end) throw new Error(`the restored cluster did not promote: ${readFileSync(join(t.dir, "server.log"), "utf8").slice(-2000)}`);
  }
}

beforeAll(async () => {
  src = await createCluster({ name: "pitr-base" });
  cleanup.push(() => destroyCluster(src));
  walMaster = tempDir("pgsb-pitr-base-wal-");
  cleanup.push(() => rmSync(walMaster, { recursive: true, force: true }));
  receiver = startReceiver(src, walMaster, "none");
  const k = tempDir("pgsb-pitr-base-keys-");
  cleanup.push(() => rmSync(k, { recursive: true, force: true }));
  Object.assign(keys, { sign: join(k, "sign.pem"), verify: join(k, "verify.pem"), identity: join(k, "id.txt"), recipients: join(k, "rec.txt"), otherIdentity: join(k, "other.txt") });
  execFileSync("openssl", ["genpkey", "-algorithm", "ed25519", "-out", keys.sign]);
  execFileSync("openssl", ["pkey", "-in", keys.sign, "-pubout", "-out", keys.verify]);
  execFileSync("age-keygen", ["-o", keys.identity], { stdio: "ignore" });
  execFileSync("age-keygen", ["-o", keys.otherIdentity], { stdio: "ignore" });
  writeFileSync(keys.recipients, execFileSync("age-keygen", ["-y", keys.identity]));
  await sql(src, "postgres", "CREATE ROLE alice_secret_role LOGIN; CREATE TABLE secret_payroll (v text); INSERT INTO secret_payroll SELECT 'TOPSECRET-ROW-VALUE' FROM generate_series(1, 100)");
  await sql(src, "postgres", "CREATE TABLE marks (label text PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())");
  plainDir = tempDir("pgsb-pitr-base-plain-");
  encDir = tempDir("pgsb-pitr-base-enc-");
  cleanup.push(() => rmSync(plainDir, { recursive: true, force: true }), () => rmSync(encDir, { recursive: true, force: true }));
  for (const [d, extra] of [
    [plainDir, { BACKUP_COMPRESSION: "none", BACKUP_SIGNING_KEY_FILE: keys.sign }],
    [encDir, { BACKUP_COMPRESSION: "zstd", AGE_RECIPIENTS_FILE: keys.recipients }],
  ] as const) {
    const r = await runCli(["backup", "base"], cliEnv(src, d, { BASE_BACKUP_CHECKPOINT: "fast", ...extra }));
    if (r.code !== 0) throw new Error(`backup base failed: ${r.stderr}`);
  }
  const name = readdirSync(join(plainDir, "base")).find((n) => n.endsWith("_base.tar")) as string;
  plain = { name, manifest: JSON.parse(readFileSync(join(plainDir, "base", `${name}.json`), "utf8")) as BaseManifest, tar: readFileSync(join(plainDir, "base", name)) };
  await sql(src, "postgres", "INSERT INTO marks (label) VALUES ('first')");
  await sleep(1500);
  between = (await sql(src, "postgres", "SELECT to_json(clock_timestamp())#>>'{}' AS t")).rows[0].t as string;
  await sleep(1500);
  await sql(src, "postgres", "INSERT INTO marks (label) VALUES ('second')");
  await sql(src, "postgres", "SELECT pg_switch_wal()");
  await sleep(1500);
  await receiver.stop();
  for (const d of [plainDir, encDir]) cpSync(walMaster, join(d, "wal"), { recursive: true, preserveTimestamps: true });
}, 120_000);

afterAll(async () => {
  await receiver?.stop();
  for (const f of cleanup.reverse()) {
    try {
      f();
    } catch {
      // keep cleaning
    }
  }
});

describe("an encrypted base backup (age) with plain WAL", () => {
  it("holds no plaintext table name, role name or row, and the stock tools read it: age -d | zstd -dc | tar -x", async () => {
    const [name] = readdirSync(join(encDir, "base")).filter((n) => n.endsWith(".tar.zst.age"));
    expect(name).toBeDefined();
    const stored = readFileSync(join(encDir, "base", name as string));
    for (const s of SECRETS) expect(stored.includes(s), s).toBe(false);
    const m = JSON.parse(readFileSync(join(encDir, "base", `${name}.json`), "utf8")) as BaseManifest;
    expect(m.encryption).toEqual({ tool: "age", recipients: [readFileSync(keys.recipients, "utf8").trim()] });
    const out = tempDir("pgsb-pitr-base-stock-");
    cleanup.push(() => rmSync(out, { recursive: true, force: true }));
    execFileSync("sh", ["-c", 'age -d -i "$1" "$2" | zstd -dc | tar -x -C "$3"', "sh", keys.identity, join(encDir, "base", name as string), out]);
    expect(readFileSync(join(out, "PG_VERSION"), "utf8")).toMatch(/^\d+\n$/);
    expect(execFileSync(join(src.bindir, "pg_verifybackup"), [out]).toString()).toContain("backup successfully verified");
  });

  it("without AGE_IDENTITY_FILE, or with another identity: exit 4 naming it and the recipients, --pgdata untouched", async () => {
    const recipient = readFileSync(keys.recipients, "utf8").trim();
    const t = await target("pitr-base-noid");
    const none = await runCli(["restore-pitr", "--pgdata", t.dataDir], cliEnv(src, encDir));
    expect(none.code).toBe(ExitCode.refused);
    expect(none.stderr).toContain(`is encrypted to ${recipient.slice(0, 16)}`);
    expect(none.stderr).toContain("set AGE_IDENTITY_FILE");
    const other = await runCli(["restore-pitr", "--pgdata", t.dataDir], cliEnv(src, encDir, { AGE_IDENTITY_FILE: keys.otherIdentity }));
    expect(other.code).toBe(ExitCode.refused);
    expect(other.stderr).toContain(`AGE_IDENTITY_FILE=${keys.otherIdentity} holds the key of`);
    expect(readdirSync(t.dir)).toEqual(["sock"]);
    const v = await runCli(["verify"], cliEnv(src, encDir));
    expect(v.code).toBe(ExitCode.refused);
    expect(v.stderr).toContain("verify cannot read the newest base backup");
    expect(v.stderr).toContain("AGE_IDENTITY_FILE");
  });

  it("recovers to a time between two commits with AGE_IDENTITY_FILE, and the staged WAL is gone once the cluster promoted", async () => {
    const t = await target("pitr-base-enc");
    const r = await runCli(["restore-pitr", "--pgdata", t.dataDir, "--at", between], cliEnv(src, encDir, { AGE_IDENTITY_FILE: keys.identity }));
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(join(t.dataDir, "pgsb_wal"))).toBe(true);
    await promoted(t);
    expect((await sql(t, "postgres", "SELECT label FROM marks ORDER BY at")).rows.map((x) => x.label as string)).toEqual(["first"]);
    expect((await sql(t, "postgres", "SELECT count(*)::int AS n FROM secret_payroll")).rows[0].n).toBe(100);
    // recovery_end_command removed it when recovery ended; the WAL the cluster still needs is in pg_wal.
    expect(existsSync(join(t.dataDir, "pgsb_wal"))).toBe(false);
  });

  it("verify reads it with the identity: base-checksum chunk by chunk, base-verifybackup", async () => {
    const v = await runCli(["verify", "--json"], cliEnv(src, encDir, { AGE_IDENTITY_FILE: keys.identity }));
    const checks = (JSON.parse(v.stdout) as { checks: { name: string; ok: boolean; message: string }[] }).checks.filter((c) => c.name.startsWith("base-"));
    expect(checks.map((c) => [c.name, c.ok])).toEqual([
      ["base-checksum", true],
      ["base-verifybackup", true],
    ]);
    expect(checks[0]?.message).toMatch(/each of its 1 chunks as it was read/);
  });
});

describe("a signed base backup, damaged or swapped", () => {
  it("is several chunks long", () => {
    expect(plain.manifest.chunks?.sha256.length).toBeGreaterThanOrEqual(3);
  });

  it("a byte flipped in its last chunk: exit 4 naming the file and the chunk, nothing in --pgdata; verify's base-checksum fails the same way", async () => {
    const d = backupDirWithWal("pgsb-pitr-base-flip-");
    cpSync(join(plainDir, "base"), join(d, "base"), { recursive: true });
    const path = join(d, "base", plain.name);
    const bytes = readFileSync(path);
    const at = bytes.length - 700;
    bytes[at] = (bytes[at] as number) ^ 0x01;
    writeFileSync(path, bytes);
    const count = plain.manifest.chunks?.sha256.length as number;
    const t = await target("pitr-base-flip");
    const r = await runCli(["restore-pitr", "--pgdata", t.dataDir], cliEnv(src, d, { BACKUP_VERIFY_KEY_FILE: keys.verify }));
    expect(r.code).toBe(ExitCode.refused);
    expect(r.stderr).toContain(`${plain.name}: checksum mismatch in chunk ${count} of ${count} (bytes`);
    expect(r.stderr).toContain("the file was changed after the backup, or while it was read");
    expect(readdirSync(t.dir)).toEqual(["sock"]);
    const v = await runCli(["verify", "--json"], cliEnv(src, d, { BACKUP_VERIFY_KEY_FILE: keys.verify }));
    const sum = (JSON.parse(v.stdout) as { checks: { name: string; ok: boolean; message: string }[] }).checks.find((c) => c.name === "base-checksum");
    expect(sum).toMatchObject({ ok: false, message: expect.stringContaining(`chunk ${count} of ${count}`) });
  });

  /** restore-pitr in this process, with a hook after each verified chunk. */
  async function restoreWithHook(d: string, t: ClusterInfo, afterChunk: (i: number) => Promise<void>) {
    const bases = await scanBaseCatalog(d);
    const listing = await listWalArchive(d);
    const reads = await readHistoryFiles(listing, { verifyKey: null, identity: null, env: process.env });
    const plan = planPitr(bases, { segments: listing.segments, historyNames: listing.histories.map((h) => h.file.name), histories: historiesByTimeline(reads) }, null);
    const base = await trustBase(join(d, "base", plain.name), createPublicKey(readFileSync(keys.verify)));
    return restorePitr(plan, {
      backupDir: d,
      base,
      dataDir: t.dataDir,
      existing: "absent",
      owner: null,
      trustUnsigned: false,
      identity: null,
      threads: 2,
      env: process.env,
      log: silentLogger(),
      now: () => new Date(),
      afterChunk,
      histories: stagedHistories(plan, reads),
      wal: { verifyKey: null, identity: null },
    });
  }

  it("another file renamed over the path after the first chunk: the one descriptor keeps reading what it opened, and the other file never reaches the data directory", async () => {
    const d = backupDirWithWal("pgsb-pitr-base-swap-");
    cpSync(join(plainDir, "base"), join(d, "base"), { recursive: true });
    const evil = join(d, "evil.tar");
    writeFileSync(evil, buildTar([...tarMembers(plain.tar), { header: tarHeader("EVIL_MARKER", "0", 5), name: "EVIL_MARKER", data: Buffer.from("owned") }]));
    const t = await target("pitr-base-swap");
    const swapped: number[] = [];
    const r = await restoreWithHook(d, t, async (i) => {
      if (i === 1) {
        renameSync(evil, join(d, "base", plain.name));
        swapped.push(i);
      }
    });
    expect(swapped).toEqual([1]);
    expect(readFileSync(join(d, "base", plain.name)).includes("EVIL_MARKER")).toBe(true);
    expect(r.dataDir).toBe(t.dataDir);
    expect(existsSync(join(t.dataDir, "EVIL_MARKER"))).toBe(false);
    expect(existsSync(join(t.dataDir, "global", "pg_control"))).toBe(true);
  });

  it("the file overwritten in place after the first chunk: the first changed chunk is refused, nothing in --pgdata", async () => {
    const d = backupDirWithWal("pgsb-pitr-base-inplace-");
    cpSync(join(plainDir, "base"), join(d, "base"), { recursive: true });
    const path = join(d, "base", plain.name);
    const t = await target("pitr-base-inplace");
    const chunk = 8 * 1024 * 1024;
    const err = await restoreWithHook(d, t, async (i) => {
      // One chunk may already be read ahead; from the third on nothing is read before the hook returns.
      if (i === 1) {
        const fd = openSync(path, "r+");
        writeSync(fd, Buffer.alloc(plain.tar.length - 2 * chunk, 0x41), 0, plain.tar.length - 2 * chunk, 2 * chunk);
        closeSync(fd);
      }
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskError);
    expect((err as TaskError).exitCode).toBe(ExitCode.refused);
    expect((err as Error).message).toMatch(new RegExp(`${plain.name.replace(/\./g, "\\.")}: checksum mismatch in chunk 3 of \\d+ \\(bytes 16777216–`));
    expect(readdirSync(t.dir)).toEqual(["sock"]);
  });
});

describe("forged base backups", () => {
  it("a setuid (4755) file and a setgid, sticky, world-writable folder: written 0600 and 0700", async () => {
    const members = tarMembers(plain.tar).map((m) => (m.name === "global/pg_control" || m.name === "PG_VERSION" ? { ...m, header: withMode(m.header, 0o4755) } : m.name === "base" ? { ...m, header: withMode(m.header, 0o3777) } : m));
    const d = forged("pgsb-pitr-base-setuid-", members, false);
    const t = await target("pitr-base-setuid");
    const r = await runCli(["restore-pitr", "--pgdata", t.dataDir], cliEnv(src, d));
    expect(r.code, r.stderr).toBe(0);
    expect(lstatSync(join(t.dataDir, "global", "pg_control")).mode & 0o7777).toBe(0o600);
    expect(lstatSync(join(t.dataDir, "PG_VERSION")).mode & 0o7777).toBe(0o600);
    expect(lstatSync(join(t.dataDir, "base")).mode & 0o7777).toBe(0o700);
    expect(execFileSync("find", [t.dataDir, "-perm", "/7000"]).toString()).toBe("");
  });

  it.each<[string, () => TarMember[], string]>([
    ["a symlink, then a file through it", () => [...tarMembers(plain.tar).slice(0, 3), { header: tarHeader("pg_evil", "2", 0, { linkname: "/tmp" }), name: "pg_evil", data: Buffer.alloc(0) }, { header: tarHeader("pg_evil/pgsb-owned", "0", 1), name: "pg_evil/pgsb-owned", data: Buffer.from("x") }, ...tarMembers(plain.tar).slice(3)], 'tar member "pg_evil" is a symlink'],
    ["a file through a .. member", () => edit("PG_VERSION", (m) => [m, { header: tarHeader("global/../../pgsb-owned", "0", 1), name: "global/../../pgsb-owned", data: Buffer.from("x") }]), 'tar member "global/../../pgsb-owned" has a ".." component'],
  ])("%s: exit 4 naming the member, nothing in --pgdata or outside", async (_what, members, named) => {
    const d = forged("pgsb-pitr-base-path-", members(), false);
    const t = await target("pitr-base-path");
    const r = await runCli(["restore-pitr", "--pgdata", t.dataDir, "--trust-unsigned"], cliEnv(src, d));
    expect(r.code).toBe(ExitCode.refused);
    expect(r.stderr).toContain(`is not a tar pg_basebackup wrote: ${named}`);
    expect(readdirSync(t.dir)).toEqual(["sock"]);
    expect(existsSync("/tmp/pgsb-owned")).toBe(false);
    expect(existsSync(join(t.dir, "pgsb-owned"))).toBe(false);
  });

  describe("postgresql.auto.conf setting commands and libraries", () => {
    const evilConf = (m: TarMember) => withData(m, `${m.data.toString()}archive_command = 'touch /tmp/pgsb-archive-pwned'\nssl_passphrase_command = 'cat /run/secrets/postgres_password'\nshared_preload_libraries = 'pgsb_evil'\n`);

    it("without a verify key: refused (exit 4) listing each, nothing in --pgdata; --trust-unsigned restores them", async () => {
      const d = forged("pgsb-pitr-base-conf-", edit("postgresql.auto.conf", evilConf), false);
      const t = await target("pitr-base-conf");
      const r = await runCli(["restore-pitr", "--pgdata", t.dataDir], cliEnv(src, d));
      expect(r.code).toBe(ExitCode.refused);
      expect(r.stderr).toMatch(/postgresql\.auto\.conf:\d+ archive_command = "touch \/tmp\/pgsb-archive-pwned" \(runs a shell command for every WAL segment\)/);
      expect(r.stderr).toMatch(/postgresql\.auto\.conf:\d+ ssl_passphrase_command = "cat \/run\/secrets\/postgres_password"/);
      expect(r.stderr).toMatch(/postgresql\.auto\.conf:\d+ shared_preload_libraries = "pgsb_evil" \(loads libraries into the server when it starts\)/);
      expect(readdirSync(t.dir)).toEqual(["sock"]);
      const trusted = await runCli(["restore-pitr", "--pgdata", t.dataDir, "--trust-unsigned"], cliEnv(src, d));
      expect(trusted.code, trusted.stderr).toBe(0);
      expect(readFileSync(join(t.dataDir, "postgresql.auto.conf"), "utf8")).toContain("shared_preload_libraries = 'pgsb_evil'");
    });

    it("with a verify key and a signed base backup: restored without --trust-unsigned", async () => {
      const d = forged("pgsb-pitr-base-conf-signed-", edit("postgresql.auto.conf", evilConf), true);
      const t = await target("pitr-base-conf-signed");
      const r = await runCli(["restore-pitr", "--pgdata", t.dataDir], cliEnv(src, d, { BACKUP_VERIFY_KEY_FILE: keys.verify }));
      expect(r.code, r.stderr).toBe(0);
      expect(readFileSync(join(t.dataDir, "postgresql.auto.conf"), "utf8")).toContain("archive_command = 'touch /tmp/pgsb-archive-pwned'");
    });
  });
});
