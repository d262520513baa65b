// The measured cases, one function per group. Within a group each repetition runs every
// case once, side by side, so drift (page cache, CPU frequency) hits all of them alike.
import { execFileSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { readdirSync, readFileSync, rmSync, statSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { compressorFor } from "../lib/backup/compression.js";
import type { BenchCluster } from "./cluster.js";
import { destroyCluster, startCluster } from "./cluster.js";
import { addManyDatabases, manyName, touchBigDatabase } from "./dataset.js";
import type { Run } from "./measure.js";
import { shell, sq, timed } from "./measure.js";
import type { PgBackRest } from "./pgbackrest.js";
import type { Results } from "./report.js";

export interface Context {
  root: string;
  reps: number;
  cores: number;
  cli: string;
  zstdLevel: number;
  bzip2Level: number;
  results: Results;
  say: (msg: string) => void;
  /** Registers a cluster for teardown; returns it. */
  own: (c: BenchCluster) => BenchCluster;
  disown: (c: BenchCluster) => void;
  /** Registers a long-running child (wal-receive) to be sent SIGTERM if the bench is stopped; returns its unregister. */
  track: (child: ChildProcess) => () => void;
}

const RELAY = fileURLToPath(new URL("./relay.js", import.meta.url));

export function freshDir(ctx: Context, name: string): string {
  const dir = join(ctx.root, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** The one backup file of a tier in BACKUP_DIR, newest first. */
export function backupFiles(backupDir: string, tier: string): string[] {
  const dir = join(backupDir, tier);
  return readdirSync(dir)
    .filter((f) => /^\d{8}_\d{6}_.*\.sql(\.(bz2|zst|gz))?(\.age)?$/.test(f))
    .sort()
    .reverse()
    .map((f) => join(dir, f));
}

export function ours(ctx: Context, c: BenchCluster, backupDir: string, args: string[], extra: Record<string, string> = {}): Promise<Run> {
  return timed(["node", ctx.cli, ...args], { env: { ...c.env, BACKUP_DIR: backupDir, ...extra }, rss: true, tmpDir: ctx.root });
}

/** "3.21 s, CPU 5.10 s (node 0.42 s), peak RSS 96 MB" for the progress lines. */
export function brief(run: Run): string {
  const parts = [`${run.seconds.toFixed(2)} s`];
  if (run.cpuSeconds !== null) parts.push(`CPU ${run.cpuSeconds.toFixed(2)} s${run.ownCpuSeconds === null ? "" : ` (node ${run.ownCpuSeconds.toFixed(2)} s)`}`);
  if (run.peakRssKB !== null) parts.push(`peak RSS ${(run.peakRssKB / 1024).toFixed(0)} MB`);
  return parts.join(", ");
}

export function expectOutput(run: Run, pattern: RegExp, what: string): void {
  if (!pattern.test(run.stdout)) throw new Error(`${what}: expected output matching ${pattern}, got: ${run.stdout.trim().slice(0, 300)} ${run.stderr.trim().slice(-300)}`);
}

function compressorCmd(ctx: Context, codec: "bzip2" | "zstd", level: number): string {
  const p = compressorFor(codec, level, ctx.cores, process.env);
  if (p === null) throw new Error(`no compressor for ${codec}`);
  return [p.program, ...p.args].map(sq).join(" ");
}

/** Full backups: the floor, the seed, the best shell pipelines, ours with each codec. */
export async function fullGroup(ctx: Context, main: BenchCluster): Promise<void> {
  const { results: R, say } = ctx;
  const floor = R.add("floor", "pg_dumpall > /dev/null (the floor)", null);
  const seed = R.add("seed_bz2", "seed: pg_dumpall | bzip2 > file", "floor");
  const lbz = R.add("shell_lbzip2", `pg_dumpall | lbzip2 -n${ctx.cores} > file`, "seed_bz2");
  const zst = R.add("shell_zstd", `pg_dumpall | zstd -T0 -${ctx.zstdLevel} > file`, "floor");
  const zstdLevels = [ctx.zstdLevel - 1, ctx.zstdLevel + 1].filter((l) => l >= 1);
  const zstdOthers = zstdLevels.map((l) => ({ level: l, c: R.add(`shell_zstd_${l}`, `pg_dumpall | zstd -T0 -${l} > file (level choice)`, "floor") }));
  // The relay alone (bench/relay.ts): what counting rows in the stream costs before any orchestration.
  const relayBz2 = R.add("relay_lbzip2", `pg_dumpall | node, rows counted | lbzip2 -n${ctx.cores} > file (the relay alone)`, "shell_lbzip2");
  const relayZst = R.add("relay_zstd", `pg_dumpall | node, rows counted | zstd -T0 -${ctx.zstdLevel} > file (the relay alone)`, "shell_zstd");
  const oursBz2 = R.add("ours_full_bz2", "ours: backup full (bzip2, default)", "shell_lbzip2");
  const oursZstd = R.add("ours_full_zstd", `ours: backup full (zstd -${ctx.zstdLevel})`, "shell_zstd");
  // Encryption at rest: the same fulls through age (docs/security.md "Encryption at rest"), each against its plain twin.
  const recipients = join(ctx.root, "age-recipients.txt");
  execFileSync("sh", ["-c", `age-keygen 2>/dev/null | age-keygen -y > ${sq(recipients)}`]);
  const oursBz2Age = R.add("ours_full_bz2_age", "ours: backup full (bzip2) encrypted with age", "ours_full_bz2");
  const oursZstdAge = R.add("ours_full_zstd_age", `ours: backup full (zstd -${ctx.zstdLevel}) encrypted with age`, "ours_full_zstd");
  const env = { env: main.env, tmpDir: ctx.root };
  const out = join(ctx.root, "shell-out");
  say("warming the page cache: pg_dumpall > /dev/null");
  await shell("pg_dumpall > /dev/null", env);
  for (let rep = 0; rep < ctx.reps; rep++) {
    const tag = `rep ${rep + 1}/${ctx.reps}`;
    const step = async (c: typeof floor, script: string) => {
      const run = await shell(script, env);
      let size: number | null = null;
      try {
        size = statSync(out).size;
      } catch {
        size = null;
      }
      rmSync(out, { force: true });
      R.record(c, run, size);
      say(`${c.label}: ${brief(run)} (${tag})`);
    };
    await step(floor, "pg_dumpall > /dev/null");
    await step(seed, `pg_dumpall | bzip2 -${ctx.bzip2Level} > ${sq(out)}`);
    await step(lbz, `pg_dumpall | lbzip2 -n ${ctx.cores} -${ctx.bzip2Level} > ${sq(out)}`);
    await step(zst, `pg_dumpall | zstd -q -T0 -${ctx.zstdLevel} > ${sq(out)}`);
    for (const z of zstdOthers) await step(z.c, `pg_dumpall | zstd -q -T0 -${z.level} > ${sq(out)}`);
    await step(relayBz2, `node ${sq(RELAY)} ${sq(out)} lbzip2 -n ${ctx.cores} -${ctx.bzip2Level}`);
    await step(relayZst, `node ${sq(RELAY)} ${sq(out)} zstd -q -T0 -${ctx.zstdLevel}`);
    for (const [c, codec, encrypted] of [
      [oursBz2, "bzip2", false],
      [oursBz2Age, "bzip2", true],
      [oursZstd, "zstd", false],
      [oursZstdAge, "zstd", true],
    ] as const) {
      const dir = freshDir(ctx, `backups-${codec}${encrypted ? "-age" : ""}`);
      const run = await ours(ctx, main, dir, ["backup", "full", "--force"], { BACKUP_COMPRESSION: codec, ...(encrypted ? { AGE_RECIPIENTS_FILE: recipients } : {}) });
      expectOutput(run, /full backup written/, c.label);
      const file = backupFiles(dir, "full")[0] as string;
      const manifest = JSON.parse(readFileSync(`${file}.json`, "utf8")) as { rawBytes: number };
      c.note = `${(manifest.rawBytes / 1e6).toFixed(0)} MB of SQL`;
      R.record(c, run, statSync(file).size);
      say(`${c.label}: ${brief(run)} (${tag})`);
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

/** Incrementals on a second cluster: one of 20 databases changed, then nothing changed on 50. */
export async function incrementalGroup(ctx: Context, bigScale: number): Promise<void> {
  const { results: R, say } = ctx;
  const bare = R.add("pgdump_one", `pg_dump ${manyName(1)} | lbzip2 -n${ctx.cores} (bare, 1 of 20)`, null);
  const one = R.add("ours_incr_one20", "ours: backup incremental, 1 of 20 databases changed", "pgdump_one");
  const none = R.add("ours_incr_nochange50", "ours: backup incremental, no change, 50 databases", null);
  const many = ctx.own(await startCluster(ctx.root, "many"));
  try {
    say(`cluster "many": ${manyName(1)} with pgbench -s ${bigScale}, ${manyName(2)}..${manyName(20)} small`);
    addManyDatabases(many, 1, 20, bigScale);
    const dir = freshDir(ctx, "backups-many");
    expectOutput(await ours(ctx, many, dir, ["backup", "full", "--force"]), /full backup written/, "setup full (20 databases)");
    const out = join(ctx.root, "one.sql.bz2");
    const compress = compressorCmd(ctx, "bzip2", ctx.bzip2Level);
    for (let rep = 0; rep < ctx.reps; rep++) {
      const tag = `rep ${rep + 1}/${ctx.reps}`;
      touchBigDatabase(many, rep);
      const run = await ours(ctx, many, dir, ["backup", "incremental"]);
      expectOutput(run, /incremental backup written: .*\(1\/\d+ databases/, one.label);
      R.record(one, run, statSync(backupFiles(dir, "incremental")[0] as string).size);
      say(`${one.label}: ${brief(run)} (${tag})`);
      const b = await shell(`pg_dump ${manyName(1)} | ${compress} > ${sq(out)}`, { env: many.env, tmpDir: ctx.root });
      R.record(bare, b, statSync(out).size);
      rmSync(out, { force: true });
      say(`${bare.label}: ${brief(b)} (${tag})`);
    }
    say(`cluster "many": adding ${manyName(21)}..${manyName(50)}`);
    addManyDatabases(many, 21, 50, 0);
    expectOutput(await ours(ctx, many, dir, ["backup", "full", "--force"]), /full backup written/, "setup full (50 databases)");
    for (let rep = 0; rep < ctx.reps; rep++) {
      const run = await ours(ctx, many, dir, ["backup", "incremental"]);
      expectOutput(run, /skipped/, none.label);
      R.record(none, run);
      say(`${none.label}: ${brief(run)} (rep ${rep + 1}/${ctx.reps})`);
    }
  } finally {
    destroyCluster(many);
    ctx.disown(many);
  }
}

/** pgBackRest full (zst) and a no-change incremental on the main cluster. */
export async function pgbackrestGroup(ctx: Context, br: PgBackRest, main: BenchCluster): Promise<void> {
  const { results: R, say } = ctx;
  const full = R.add("pgbackrest_full", `${br.version}: backup --type=full (zst)`, null);
  const incr = R.add("pgbackrest_incr", `${br.version}: backup --type=incr, no change`, null);
  const opts = { env: main.env, tmpDir: ctx.root };
  for (let rep = 0; rep < ctx.reps; rep++) {
    const run = await br.backup("full", opts);
    R.record(full, run);
    say(`${full.label}: ${brief(run)} (rep ${rep + 1}/${ctx.reps})`);
  }
  for (let rep = 0; rep < ctx.reps; rep++) {
    const run = await br.backup("incr", opts);
    R.record(incr, run);
    say(`${incr.label}: ${brief(run)} (rep ${rep + 1}/${ctx.reps})`);
  }
}
