// Point-in-time recovery against the logical restore of the same data (issue 19): the main
// cluster gets a physical tier (pg_receivewal into wal/, `backup base`) and a logical full;
// each repetition then times restore-pitr plus the server's replay until it promotes, and
// restore-latest into a fresh empty cluster (its initdb not timed, as in the restore group).
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { BenchCluster } from "./cluster.js";
import { asServerUser, destroyCluster, serverBin, serverUserPrefix, startCluster } from "./cluster.js";
import type { Context } from "./cases.js";
import { shell, sq, timed } from "./measure.js";
import { freePort } from "../lib/core/port.js";

const SLOT = "pgsb_bench";

async function waitFor(what: string, seconds: number, ok: () => boolean): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`bench: no ${what} after ${seconds} s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A physical tier and a logical full of `main` in `dir`: WAL streamed from before the base backup to after it. */
async function physicalTier(ctx: Context, main: BenchCluster, dir: string): Promise<void> {
  const wal = join(dir, "wal");
  mkdirSync(wal, { recursive: true });
  const receivewal = serverBin("pg_receivewal");
  asServerUser(receivewal, ["--create-slot", "--if-not-exists", "-S", SLOT], main.env);
  const receiver = spawn(receivewal, ["-D", wal, "-S", SLOT, "--synchronous", "--compress=gzip", "-n"], { env: { ...process.env, ...main.env }, stdio: "ignore" });
  try {
    await waitFor("WAL from pg_receivewal", 60, () => readdirSync(wal).some((f) => f.endsWith(".partial")));
    const env = { ...main.env, BACKUP_DIR: dir, BACKUP_COMPRESSION: "zstd", BASE_BACKUP_CHECKPOINT: "fast" };
    for (const args of [["backup", "base"], ["backup", "full", "--force"]]) {
      const run = await timed(["node", ctx.cli, ...args], { env, tmpDir: ctx.root });
      if (run.code !== 0) throw new Error(`bench: ${args.join(" ")} exited ${run.code}: ${run.stderr.slice(-300)}`);
    }
    // WAL written after the base backup, replayed by every point-in-time restore.
    await shell(`psql -X -q -d bench -c 'UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 10 = 0' && psql -X -q -c 'SELECT pg_switch_wal()' >/dev/null`, { env: main.env, tmpDir: ctx.root });
    await new Promise((r) => setTimeout(r, 1000));
  } finally {
    receiver.kill("SIGINT");
    await new Promise((r) => receiver.once("exit", r));
    asServerUser(serverBin("psql"), ["-X", "-q", "-c", `SELECT pg_drop_replication_slot('${SLOT}')`], main.env);
  }
}

export async function pitrGroup(ctx: Context, main: BenchCluster): Promise<void> {
  const { results: R, say } = ctx;
  const logical = R.add("ours_restore_latest_pitrdata", "ours: restore-latest of the same data (fresh cluster)", null);
  const pitr = R.add("ours_restore_pitr", "ours: restore-pitr + replay until promoted", "ours_restore_latest_pitrdata");
  const dir = join(ctx.root, "backups-pitr");
  say("physical tier for the pitr group: pg_receivewal, backup base, backup full");
  await physicalTier(ctx, main, dir);
  const pgCtl = serverBin("pg_ctl");
  const controldata = serverBin("pg_controldata");
  for (let rep = 0; rep < ctx.reps; rep++) {
    const tag = `rep ${rep + 1}/${ctx.reps}`;
    const target = ctx.own(await startCluster(ctx.root, `pitr-logical-${rep}`));
    try {
      const run = await timed(["node", ctx.cli, "restore-latest"], { env: { ...target.env, BACKUP_DIR: dir }, tmpDir: ctx.root });
      if (run.code !== 0) throw new Error(`bench: restore-latest exited ${run.code}: ${run.stderr.slice(-300)}`);
      R.record(logical, run);
      say(`${logical.label}: ${run.seconds.toFixed(2)} s (${tag})`);
    } finally {
      destroyCluster(target);
      ctx.disown(target);
    }
    const pgdata = join(ctx.root, `pitr-data-${rep}`);
    const port = await freePort();
    const sock = main.socketDir;
    const owner = serverUserPrefix().length > 0 ? `--owner ${sq(asServerUser("sh", ["-c", 'echo "$(id -u):$(id -g)"']).trim())}` : "";
    const user = serverUserPrefix().map(sq).join(" ");
    // The restored data directory carries main's settings: a port and socket of its own come last.
    const script = [
      `node ${sq(ctx.cli)} restore-pitr --pgdata ${sq(pgdata)} ${owner} >/dev/null`,
      `printf '%s\\n' "port = ${port}" "unix_socket_directories = '${sock}'" >> ${sq(join(pgdata, "postgresql.auto.conf"))}`,
      `${user} ${sq(pgCtl)} -D ${sq(pgdata)} -l ${sq(join(pgdata, "startup.log"))} -w -t 600 start >/dev/null`,
      `until ${user} ${sq(controldata)} -D ${sq(pgdata)} | grep -q 'in production'; do sleep 0.1; done`,
    ].join(" && ");
    try {
      const run = await shell(script, { env: { ...main.env, BACKUP_DIR: dir }, tmpDir: ctx.root });
      if (run.code !== 0) throw new Error(`bench: restore-pitr exited ${run.code}: ${run.stderr.slice(-300)}`);
      R.record(pitr, run);
      say(`${pitr.label}: ${run.seconds.toFixed(2)} s (${tag})`);
    } finally {
      if (existsSync(join(pgdata, "postmaster.pid"))) asServerUser(pgCtl, ["-D", pgdata, "-m", "immediate", "-w", "stop"]);
      rmSync(pgdata, { recursive: true, force: true });
    }
  }
  rmSync(dir, { recursive: true, force: true });
}
