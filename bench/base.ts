// The physical tier's case (issue 19): `backup base` against the bare pipeline it wraps,
// pg_basebackup's tar on stdout through zstd at the same level, side by side per repetition.
import { mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import type { BenchCluster } from "./cluster.js";
import type { Context } from "./cases.js";
import { shell, sq, timed } from "./measure.js";

export async function baseGroup(ctx: Context, main: BenchCluster): Promise<void> {
  const { results: R, say } = ctx;
  const bare = R.add("shell_basebackup_zstd", `pg_basebackup -Ft -D - -X fetch --checkpoint=fast | zstd -T0 -${ctx.zstdLevel} > file`, null);
  const ours = R.add("ours_base_zstd", `ours: backup base (zstd -${ctx.zstdLevel})`, "shell_basebackup_zstd");
  const out = join(ctx.root, "base-shell-out");
  const dir = join(ctx.root, "backups-base");
  for (let rep = 0; rep < ctx.reps; rep++) {
    const tag = `rep ${rep + 1}/${ctx.reps}`;
    const run = await shell(`pg_basebackup -Ft -D - -X fetch --checkpoint=fast | zstd -q -T0 -${ctx.zstdLevel} > ${sq(out)}`, { env: main.env, tmpDir: ctx.root });
    R.record(bare, run, statSync(out).size);
    rmSync(out, { force: true });
    say(`${bare.label}: ${run.seconds.toFixed(2)} s (${tag})`);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir);
    const mine = await timed(["node", ctx.cli, "backup", "base"], { env: { ...main.env, BACKUP_DIR: dir, BACKUP_COMPRESSION: "zstd", BASE_BACKUP_CHECKPOINT: "fast" }, rss: true, tmpDir: ctx.root });
    if (!/base backup written/.test(mine.stdout)) throw new Error(`${ours.label}: expected "base backup written", got: ${mine.stdout.slice(0, 300)} ${mine.stderr.slice(-300)}`);
    const file = readdirSync(join(dir, "base")).find((f) => f.endsWith(".tar.zst")) as string;
    R.record(ours, mine, statSync(join(dir, "base", file)).size);
    say(`${ours.label}: ${mine.seconds.toFixed(2)} s (${tag})`);
  }
  rmSync(dir, { recursive: true, force: true });
}
