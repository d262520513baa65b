// The recovery point with the storage box lost (issue 27): how far behind the crash a cluster
// restored from the S3 mirror alone is. `npm run build && node dist/bench/s3Rpo.js [--runs 6]
// [--mode receiver|scheduled] [--interval 60] [--secure]`. Each run: a fresh BACKUP_DIR and bucket
// prefix, wal-receive, `backup base`, a writer committing a row with its clock_timestamp() every
// 100 ms (synchronous_commit on) for a random 15–35 s (scheduled: 1.5–3.5 intervals), then the
// node dies with the box — wal-receive and pg_receivewal SIGKILLed, the source stopped
// immediately, BACKUP_DIR deleted — and restore-pitr --source s3 prepares a new data directory
// that is started until it promotes; the recovery point is the crash time minus the newest
// restored row's commit time. `receiver`: wal-receive uploads (the design); `scheduled`: wal-receive
// without S3 and `mirror` run every --interval seconds (the alternative). --secure: signed and
// encrypted WAL through the spool, the production setting. Writes bench/results/<date>-s3rpo-<mode>.{json,md}.
import { execFileSync, spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { appendFileSync, chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import type { BenchCluster } from "./cluster.js";
import { asServerUser, destroyCluster, giveToServerUser, query, serverBin, serverUserPrefix, startCluster } from "./cluster.js";
import { median } from "./measure.js";
import { freePort } from "../lib/core/port.js";

interface S3rverInstance {
  run(): Promise<{ port: number }>;
  close(): Promise<void>;
}
const S3rver = createRequire(import.meta.url)("s3rver") as new (opts: Record<string, unknown>) => S3rverInstance;
const BUCKET = "pgsb-rpo";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const t0 = Date.now();
const say = (msg: string) => process.stdout.write(`[s3rpo ${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${msg}\n`);

interface RunResult {
  run: number;
  writeSeconds: number;
  rpoSeconds: number;
  rows: number;
  restoreSeconds: number;
  fetchedBytes: number;
  bucketBytes: number;
}

async function waitFor(what: string, seconds: number, ok: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`s3rpo: no ${what} after ${seconds} s`);
    await sleep(100);
  }
}

/** Runs the CLI without blocking the writer's loop. */
function cli(path: string, args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path, ...args], { env: { PATH: process.env.PATH ?? "", LOG_FILE: "", ...env } });
    let [stdout, stderr] = ["", ""];
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

function kill(child: ChildProcess): void {
  const kids = (() => {
    try {
      return execFileSync("ps", ["-o", "pid=", "--ppid", String(child.pid)]).toString().split("\n").map((s) => Number(s.trim())).filter((n) => n > 0);
    } catch {
      return [];
    }
  })();
  for (const p of [...kids, child.pid as number]) {
    try {
      process.kill(p, "SIGKILL");
    } catch {
      // gone
    }
  }
}

async function main(): Promise<void> {
  const argv = await yargs(hideBin(process.argv))
    .option("runs", { type: "number", default: 6 })
    .option("mode", { choices: ["receiver", "scheduled"] as const, default: "receiver" as const })
    .option("interval", { type: "number", default: 60, describe: "scheduled: seconds between mirror runs" })
    .option("secure", { type: "boolean", default: false, describe: "sign and encrypt WAL (the spool)" })
    .option("log", { type: "string", describe: "write each run's wal-receive log (debug) to this folder" })
    .strict()
    .parse();
  const path = fileURLToPath(new URL("../tasks/cli.js", import.meta.url));
  const root = mkdtempSync(join(tmpdir(), "pgsb-s3rpo-"));
  chmodSync(root, 0o755);
  const s3 = new S3rver({ address: "127.0.0.1", port: 0, silent: true, directory: join(root, "s3"), configureBuckets: [{ name: BUCKET }] });
  const { port } = await s3.run();
  const keys = join(root, "keys");
  mkdirSync(keys);
  execFileSync("openssl", ["genpkey", "-algorithm", "ed25519", "-out", join(keys, "sign.pem")]);
  execFileSync("openssl", ["pkey", "-in", join(keys, "sign.pem"), "-pubout", "-out", join(keys, "verify.pem")]);
  execFileSync("age-keygen", ["-o", join(keys, "id.txt")], { stdio: "ignore" });
  writeFileSync(join(keys, "rec.txt"), execFileSync("age-keygen", ["-y", join(keys, "id.txt")]));
  writeFileSync(join(keys, "s3id"), "S3RVER\n");
  const s3env = { S3_BUCKET: BUCKET, S3_ENDPOINT: `http://127.0.0.1:${port}`, AWS_ACCESS_KEY_ID_FILE: join(keys, "s3id"), AWS_SECRET_ACCESS_KEY_FILE: join(keys, "s3id") };
  const src: BenchCluster = await startCluster(root, "source", ["synchronous_commit = on", "fsync = on"]);
  const results: RunResult[] = [];
  const owner = serverUserPrefix().length > 0 ? ["--owner", asServerUser("sh", ["-c", 'echo "$(id -u):$(id -g)"']).trim()] : [];
  try {
    await query(src, "postgres", "CREATE TABLE ticks (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())");
    for (let run = 1; run <= argv.runs; run++) {
      const backupDir = join(root, `box-${run}`);
      mkdirSync(backupDir);
      const prefix = `run-${run}`;
      const secure: Record<string, string> = argv.secure ? { BACKUP_SIGNING_KEY_FILE: join(keys, "sign.pem"), AGE_RECIPIENTS_FILE: join(keys, "rec.txt"), WAL_SPOOL_DIR: join(root, `spool-${run}`) } : {};
      const env = { ...src.env, BACKUP_DIR: backupDir, BACKUP_COMPRESSION: "zstd", S3_PREFIX: prefix, ...s3env, ...secure };
      const receiverEnv = argv.mode === "receiver" ? env : { ...src.env, BACKUP_DIR: backupDir, ...secure };
      const logFile = argv.log === undefined ? "" : join(argv.log, `wal-receive-${run}.log`);
      const receiver = spawn(process.execPath, [path, "wal-receive"], { env: { PATH: process.env.PATH ?? "", LOG_FILE: logFile, LOG_LEVEL: "debug", ...receiverEnv }, stdio: "ignore" });
      const wal = join(backupDir, "wal");
      await waitFor("WAL in wal/", 60, () => existsSync(wal) && readdirSync(wal).some((n) => n.includes(".partial")));
      const base = await cli(path, ["backup", "base"], env);
      if (base.code !== 0) throw new Error(`backup base: ${base.stderr.slice(-400)}`);
      let mirrors: Promise<void> = Promise.resolve();
      let stop = false;
      if (argv.mode === "scheduled") {
        mirrors = (async () => {
          for (let next = Date.now(); !stop; next += argv.interval * 1000) {
            while (!stop && Date.now() < next) await sleep(100);
            if (!stop) await cli(path, ["mirror"], env);
          }
        })();
      }
      const writeSeconds = argv.mode === "receiver" ? 15 + Math.random() * 20 : argv.interval * (1.5 + Math.random() * 2);
      const until = Date.now() + writeSeconds * 1000;
      while (Date.now() < until) {
        await query(src, "postgres", "INSERT INTO ticks DEFAULT VALUES");
        await sleep(100);
      }
      const crashAt = new Date();
      if (argv.log !== undefined) writeFileSync(join(argv.log, `crash-${run}.txt`), `${crashAt.toISOString()}\n`);
      stop = true;
      kill(receiver);
      asServerUser(join(src.bindir, "pg_ctl"), ["-D", src.dataDir, "-m", "immediate", "-w", "stop"]);
      await mirrors;
      rmSync(backupDir, { recursive: true, force: true });
      const pgdata = join(root, `restored-${run}`);
      const t1 = Date.now();
      const r = await cli(path, ["restore-pitr", "--source", "s3", "--pgdata", pgdata, ...owner], { ...env, BACKUP_DIR: join(root, "empty"), BACKUP_VERIFY_KEY_FILE: argv.secure ? join(keys, "verify.pem") : "", AGE_IDENTITY_FILE: argv.secure ? join(keys, "id.txt") : "", BACKUP_SIGNING_KEY_FILE: "", AGE_RECIPIENTS_FILE: "" });
      if (r.code !== 0) throw new Error(`restore-pitr: ${r.stderr.slice(-600)}`);
      const restoreSeconds = (Date.now() - t1) / 1000;
      const restored: BenchCluster = { ...src, name: `restored-${run}`, dir: pgdata, dataDir: pgdata, port: await freePort() };
      restored.env = { ...src.env, PGPORT: String(restored.port) };
      appendFileSync(join(pgdata, "postgresql.auto.conf"), `port = ${restored.port}\n`);
      giveToServerUser(pgdata);
      asServerUser(join(src.bindir, "pg_ctl"), ["-D", pgdata, "-l", join(src.dir, `restored-${run}.log`), "-w", "-t", "120", "start"]);
      await waitFor("promotion", 120, async () => (await query<{ p: boolean }>(restored, "postgres", "SELECT NOT pg_is_in_recovery() AS p").catch(() => [{ p: false }]))[0]?.p === true);
      const [row] = await query<{ at: Date; n: string }>(restored, "postgres", "SELECT max(at) AS at, count(*) AS n FROM ticks");
      const [, fetched, of] = /"fetchedBytes":(\d+),"bucketBytes":(\d+)/.exec(r.stdout + r.stderr) ?? ["", "0", "0"];
      const result = { run, writeSeconds, rpoSeconds: (crashAt.getTime() - (row?.at as Date).getTime()) / 1000, rows: Number(row?.n), restoreSeconds, fetchedBytes: Number(fetched), bucketBytes: Number(of) };
      results.push(result);
      say(`run ${run}: ${argv.mode}${argv.secure ? " (signed, encrypted)" : ""}: the newest restored row was committed ${result.rpoSeconds.toFixed(2)} s before the crash; restore-pitr ${restoreSeconds.toFixed(1)} s`);
      destroyCluster({ ...restored, dir: pgdata });
      asServerUser(join(src.bindir, "pg_ctl"), ["-D", src.dataDir, "-l", join(src.dir, "server.log"), "-w", "-t", "120", "start"]);
    }
  } finally {
    destroyCluster(src);
    await s3.close();
    rmSync(root, { recursive: true, force: true });
  }
  const rpo = results.map((r) => r.rpoSeconds);
  const label = `${argv.mode}${argv.mode === "scheduled" ? ` every ${argv.interval} s` : ""}${argv.secure ? ", signed and encrypted" : ", plain"}`;
  const summary = `recovery point with the storage box lost, ${label}: median ${median(rpo).toFixed(2)} s, max ${Math.max(...rpo).toFixed(2)} s over ${rpo.length} runs`;
  say(summary);
  const out = fileURLToPath(new URL("../../bench/results", import.meta.url));
  const stem = join(out, `${new Date().toISOString().slice(0, 10)}-s3rpo-${argv.mode}${argv.secure ? "-secure" : ""}`);
  writeFileSync(`${stem}.json`, JSON.stringify({ mode: argv.mode, interval: argv.interval, secure: argv.secure, defaults: "WAL_STATUS_INTERVAL_SECONDS=5, S3_WAL_SNAPSHOT_SECONDS=5", serverVersion: serverBin("postgres"), results }, null, 2) + "\n");
  const rows = results.map((r) => `| ${r.run} | ${r.writeSeconds.toFixed(1)} | ${r.rpoSeconds.toFixed(2)} | ${r.rows} | ${r.restoreSeconds.toFixed(1)} | ${r.fetchedBytes} / ${r.bucketBytes} |`);
  writeFileSync(
    `${stem}.md`,
    [`# ${summary}`, "", "Defaults (WAL_STATUS_INTERVAL_SECONDS=5, S3_WAL_SNAPSHOT_SECONDS=5); s3rver on 127.0.0.1; PostgreSQL with synchronous_commit on; 2 shared cores.", "", "| run | writing (s) | recovery point (s behind the crash) | rows restored | restore-pitr (s) | bytes fetched / in the bucket |", "| ---: | ---: | ---: | ---: | ---: | ---: |", ...rows, ""].join("\n"),
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
