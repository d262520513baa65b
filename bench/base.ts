// The physical tier's case (issue 19, 27): `backup base` against the bare pipeline it wraps,
// pg_basebackup's tar on stdout through zstd at the same level, plain and with `age -r`
// appended (ours with AGE_RECIPIENTS_FILE), side by side per repetition. One more row measures
// the design not taken for the backup_manifest's hash: a side branch (`tee` into a Node reader
// that hashes every raw byte) beside the bare pipeline.
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { BenchCluster } from "./cluster.js";
import type { Context } from "./cases.js";
import { shell, sq, timed } from "./measure.js";

/** A Node process that reads stdin to its end and hashes it: what hashing a tar member in a side branch costs at least. */
const HASH_STDIN = 'const h=require("crypto").createHash("sha256");process.stdin.on("data",(b)=>h.update(b)).on("end",()=>process.stdout.write(h.digest("hex")+"\\n"))';

export async function baseGroup(ctx: Context, main: BenchCluster): Promise<void> {
  const { results: R, say } = ctx;
  const basebackup = "pg_basebackup -Ft -D - -X fetch --checkpoint=fast";
  const zstd = `zstd -q -T0 -${ctx.zstdLevel}`;
  const bare = R.add("shell_basebackup_zstd", `${basebackup} | zstd -T0 -${ctx.zstdLevel} > file`, null);
  const ours = R.add("ours_base_zstd", `ours: backup base (zstd -${ctx.zstdLevel})`, "shell_basebackup_zstd");
  const bareAge = R.add("shell_basebackup_zstd_age", `${basebackup} | zstd -T0 -${ctx.zstdLevel} | age -r KEY > file`, null);
  const oursAge = R.add("ours_base_zstd_age", `ours: backup base (zstd -${ctx.zstdLevel}, AGE_RECIPIENTS_FILE)`, "shell_basebackup_zstd_age");
  const tee = R.add("shell_basebackup_tee_hash", `${basebackup} | tee FIFO | zstd -T0 -${ctx.zstdLevel} > file, node hashing FIFO (a side branch)`, "shell_basebackup_zstd");
  const keys = join(ctx.root, "base-age");
  mkdirSync(keys, { recursive: true });
  execFileSync("age-keygen", ["-o", join(keys, "identity.txt")], { stdio: "ignore" });
  const recipient = execFileSync("age-keygen", ["-y", join(keys, "identity.txt")]).toString().trim();
  writeFileSync(join(keys, "recipients.txt"), `${recipient}\n`);
  const out = join(ctx.root, "base-shell-out");
  const fifo = join(ctx.root, "base-tee-fifo");
  const dir = join(ctx.root, "backups-base");
  const shellCase = async (c: typeof bare, script: string, tag: string) => {
    const run = await shell(script, { env: main.env, tmpDir: ctx.root });
    R.record(c, run, statSync(out).size);
    rmSync(out, { force: true });
    say(`${c.label}: ${run.seconds.toFixed(2)} s (${tag})`);
  };
  const oursCase = async (c: typeof ours, extra: Record<string, string>, ext: string, tag: string) => {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir);
    const mine = await timed(["node", ctx.cli, "backup", "base"], { env: { ...main.env, BACKUP_DIR: dir, BACKUP_COMPRESSION: "zstd", BASE_BACKUP_CHECKPOINT: "fast", ...extra }, rss: true, tmpDir: ctx.root });
    if (!/base backup written/.test(mine.stdout)) throw new Error(`${c.label}: expected "base backup written", got: ${mine.stdout.slice(0, 300)} ${mine.stderr.slice(-300)}`);
    const file = readdirSync(join(dir, "base")).find((f) => f.endsWith(ext)) as string;
    R.record(c, mine, statSync(join(dir, "base", file)).size);
    say(`${c.label}: ${mine.seconds.toFixed(2)} s (${tag})`);
  };
  for (let rep = 0; rep < ctx.reps; rep++) {
    const tag = `rep ${rep + 1}/${ctx.reps}`;
    await shellCase(bare, `${basebackup} | ${zstd} > ${sq(out)}`, tag);
    await oursCase(ours, {}, ".tar.zst", tag);
    await shellCase(bareAge, `${basebackup} | ${zstd} | age -r ${sq(recipient)} > ${sq(out)}`, tag);
    await oursCase(oursAge, { AGE_RECIPIENTS_FILE: join(keys, "recipients.txt") }, ".tar.zst.age", tag);
    rmSync(fifo, { force: true });
    execFileSync("mkfifo", [fifo]);
    await shellCase(tee, `node -e ${sq(HASH_STDIN)} < ${sq(fifo)} > /dev/null & ${basebackup} | tee ${sq(fifo)} | ${zstd} > ${sq(out)}; s=$?; wait $! && exit $s`, tag);
  }
  rmSync(dir, { recursive: true, force: true });
  rmSync(fifo, { force: true });
}
