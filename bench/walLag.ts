// The receiver's lag and the recovery point, plain vs signed vs encrypted (issues 24 and 27):
// for each mode a fresh wal-receive (the built CLI, default WAL_STATUS_INTERVAL_SECONDS) runs
// against the main cluster under a steady pgbench load. pg_receivewal --synchronous reports a
// flush at once, so it can serve as a synchronous standby: every 200 ms a marker transaction
// commits with synchronous_commit = on and synchronous_standby_names naming pg_receivewal, and
// its commit latency is the receiver's lag to the millisecond — the time until the receiver
// has flushed the commit, which signing and encryption could slow down (pgbench's own
// transactions keep synchronous_commit off and do not wait). With a spool (signing or
// encryption) the WAL counts as archived only once shipped to wal/: the time until the metrics
// file's position (the shipped one then) reaches the marker is the recovery point. Modes run
// in turn, rotating, within each repetition, so drift hits all alike; each repetition's median
// is recorded, and the ratios against plain are the targets.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import type { BenchCluster } from "./cluster.js";
import type { Context } from "./cases.js";
import { baseEnv, median, shell } from "./measure.js";
import type { Run } from "./measure.js";
import type { CaseResult } from "./report.js";

const SLOT = "pgsb_bench_wal";
const WINDOW_SECONDS = 20;
const SAMPLE_EVERY_MS = 200;
const LOAD = ["-n", "-c", "4", "-j", "2", "-R", "800"];

interface Mode {
  id: string;
  label: string;
  env: (keys: string) => Record<string, string>;
  spool: boolean;
}

const MODES: Mode[] = [
  { id: "plain", label: "plain (pg_receivewal into wal/)", env: () => ({}), spool: false },
  { id: "signed", label: "signed (spool, shipped with .sig)", env: (k) => ({ BACKUP_SIGNING_KEY_FILE: join(k, "sign.pem") }), spool: true },
  { id: "encrypted", label: "encrypted (spool, age)", env: (k) => ({ AGE_RECIPIENTS_FILE: join(k, "recipients.txt") }), spool: true },
  { id: "signed_encrypted", label: "signed and encrypted (spool, age, .sig)", env: (k) => ({ BACKUP_SIGNING_KEY_FILE: join(k, "sign.pem"), AGE_RECIPIENTS_FILE: join(k, "recipients.txt") }), spool: true },
];

const pct = (xs: number[], p: number) => (xs.length === 0 ? NaN : ([...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))] as number));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** utime+stime of a process and the children it reaped (age), and of its live children (pg_receivewal), in seconds. */
function cpuOfTree(pid: number): number {
  const own = (p: number, reaped: boolean): number => {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number);
      return ((f[11] ?? 0) + (f[12] ?? 0) + (reaped ? (f[13] ?? 0) + (f[14] ?? 0) : 0)) / 100;
    } catch {
      return 0;
    }
  };
  const kids = (() => {
    try {
      return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
    } catch {
      return [];
    }
  })();
  return own(pid, true) + kids.reduce((n, k) => n + own(k, false), 0);
}

function shippedLsn(metrics: string): bigint | null {
  if (!existsSync(metrics)) return null;
  const m = new RegExp(`^pgsb_wal_receive_lsn_bytes\\{slot="${SLOT}"\\} (\\d+)$`, "m").exec(readFileSync(metrics, "utf8"));
  return m === null ? null : BigInt(m[1] as string);
}

const lsnOf = (text: string): bigint => {
  const [hi, lo] = text.split("/") as [string, string];
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
};

interface WindowResult {
  lagMs: number[];
  rpoMs: number[];
  cpuSeconds: number;
}

async function window(ctx: Context, main: BenchCluster, mode: Mode, keys: string): Promise<WindowResult> {
  const dir = join(ctx.root, `wal-bench-${mode.id}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir);
  const metrics = join(dir, "metrics.prom");
  const env = { ...main.env, BACKUP_DIR: join(dir, "backups"), WAL_SLOT: SLOT, WAL_SPOOL_DIR: join(dir, "spool"), METRICS_FILE: metrics, LOG_FILE: "", ...mode.env(keys) };
  mkdirSync(env.BACKUP_DIR);
  const client = new pg.Client({ host: main.socketDir, port: main.port, user: "postgres", database: "postgres" });
  await client.connect();
  let receiver: ChildProcess | null = null;
  let untrack: () => void = () => undefined;
  let load: ChildProcess | null = null;
  try {
    await client.query("CREATE TABLE IF NOT EXISTS wal_bench_marks (id bigserial PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())");
    receiver = spawn("node", [ctx.cli, "wal-receive"], { env: baseEnv(env), stdio: ["ignore", "ignore", "pipe"] });
    untrack = ctx.track(receiver);
    let stderr = "";
    receiver.stderr?.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    const slotLsn = async (): Promise<bigint | null> => {
      const r = await client.query<{ l: string | null; active: boolean }>("SELECT restart_lsn::text AS l, active FROM pg_replication_slots WHERE slot_name = $1", [SLOT]);
      const row = r.rows[0];
      return row?.active === true && row.l !== null ? lsnOf(row.l) : null;
    };
    for (const end = Date.now() + 60_000; (await slotLsn()) === null; await sleep(100)) {
      if (Date.now() > end || receiver.exitCode !== null) throw new Error(`bench: wal-receive (${mode.id}) did not start streaming: ${stderr.slice(-500)}`);
    }
    // Only the markers wait for the receiver (its walsender's application_name); everything else keeps the cluster's synchronous_commit = off.
    const app = (await client.query<{ name: string }>("SELECT r.application_name AS name FROM pg_stat_replication r JOIN pg_replication_slots s ON s.active_pid = r.pid WHERE s.slot_name = $1", [SLOT])).rows[0]?.name;
    if (app === undefined) throw new Error(`bench: no walsender for slot ${SLOT}`);
    await client.query(`ALTER SYSTEM SET synchronous_standby_names = '"${app.replace(/["']/g, "")}"'`);
    await client.query("SELECT pg_reload_conf()");
    await client.query("SET synchronous_commit = on");
    load = spawn("pgbench", [...LOAD, "-T", String(WINDOW_SECONDS), "bench"], { env: baseEnv(main.env), stdio: "ignore" });
    const pending: { lsn: bigint; at: number }[] = [];
    const out: WindowResult = { lagMs: [], rpoMs: [], cpuSeconds: 0 };
    const cpu0 = cpuOfTree(receiver.pid as number);
    let polling = true;
    const rpoPoller = (async () => {
      while (polling || pending.length > 0) {
        const shipped = shippedLsn(metrics);
        while (shipped !== null && pending.length > 0 && (pending[0] as { lsn: bigint }).lsn <= shipped) out.rpoMs.push(Date.now() - (pending.shift() as { at: number }).at);
        if (!polling && Date.now() - (pending[0]?.at ?? Date.now()) > 30_000) break;
        await sleep(50);
      }
    })();
    const stopAt = Date.now() + WINDOW_SECONDS * 1000;
    while (Date.now() < stopAt) {
      const next = Date.now() + SAMPLE_EVERY_MS;
      const t0 = process.hrtime.bigint();
      await client.query("INSERT INTO wal_bench_marks DEFAULT VALUES");
      out.lagMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
      const committed = Date.now();
      if (mode.spool) pending.push({ lsn: lsnOf((await client.query<{ l: string }>("SELECT pg_current_wal_flush_lsn()::text AS l")).rows[0]?.l as string), at: committed });
      await sleep(Math.max(0, next - Date.now()));
    }
    out.cpuSeconds = cpuOfTree(receiver.pid as number) - cpu0;
    polling = false;
    await rpoPoller;
    if (!mode.spool) out.rpoMs = out.lagMs;
    return out;
  } finally {
    load?.kill("SIGINT");
    if (receiver !== null && receiver.exitCode === null) {
      receiver.kill("SIGTERM");
      await new Promise((r) => receiver?.once("close", r));
    }
    untrack();
    await client.query("ALTER SYSTEM RESET synchronous_standby_names").catch(() => undefined);
    await client.query("SELECT pg_reload_conf()").catch(() => undefined);
    await client.query("SELECT pg_drop_replication_slot($1) FROM pg_replication_slots WHERE slot_name = $1", [SLOT]).catch(() => undefined);
    await client.end();
    rmSync(dir, { recursive: true, force: true });
  }
}

const asRun = (seconds: number, cpuSeconds: number): Run => ({ seconds, code: 0, stdout: "", stderr: "", peakRssKB: null, ownHwmKB: null, cpuSeconds: +cpuSeconds.toFixed(2), ownCpuSeconds: null });

export async function walLagGroup(ctx: Context, main: BenchCluster): Promise<void> {
  const { results: R, say } = ctx;
  const keys = join(ctx.root, "wal-bench-keys");
  mkdirSync(keys, { recursive: true });
  const made = await shell(
    `cd ${keys} && openssl genpkey -algorithm ed25519 -out sign.pem && age-keygen -o identity.txt 2>/dev/null && age-keygen -y identity.txt > recipients.txt`,
    { env: main.env, tmpDir: ctx.root },
  );
  if (made.code !== 0) throw new Error(`bench: keys not made: ${made.stderr}`);
  const lag = new Map(MODES.map((m) => [m.id, R.add(`wal_lag_${m.id}`, `wal-receive lag, ${m.label}`, m.id === "plain" ? null : "wal_lag_plain")]));
  const rpo = new Map(MODES.filter((m) => m.spool).map((m) => [m.id, R.add(`wal_rpo_${m.id}`, `recovery point, ${m.label}`, null)]));
  const all = new Map(MODES.map((m) => [m.id, { lag: [] as number[], rpo: [] as number[] }]));
  for (let rep = 0; rep < ctx.reps; rep++) {
    // The order rotates per repetition: no mode always runs first, on a cold cache.
    const order = MODES.map((_, i) => MODES[(i + rep) % MODES.length] as Mode);
    for (const m of order) {
      const w = await window(ctx, main, m, keys);
      const seen = all.get(m.id) as { lag: number[]; rpo: number[] };
      seen.lag.push(...w.lagMs);
      seen.rpo.push(...w.rpoMs);
      R.record(lag.get(m.id) as CaseResult, asRun(median(w.lagMs) / 1000, w.cpuSeconds));
      const r = rpo.get(m.id);
      if (r !== undefined) R.record(r, asRun(median(w.rpoMs) / 1000, w.cpuSeconds));
      say(
        `${m.label}: lag median ${median(w.lagMs).toFixed(2)} ms, p95 ${pct(w.lagMs, 0.95).toFixed(2)} ms (${w.lagMs.length} commits); ` +
          `recovery point median ${(median(w.rpoMs) / 1000).toFixed(2)} s, max ${(Math.max(...w.rpoMs) / 1000).toFixed(2)} s; receiver CPU ${w.cpuSeconds.toFixed(2)} s (rep ${rep + 1}/${ctx.reps})`,
      );
    }
  }
  for (const m of MODES) {
    const s = all.get(m.id) as { lag: number[]; rpo: number[] };
    const c = lag.get(m.id);
    if (c !== undefined) c.note = `commit until the receiver flushed it (a synchronous standby for the markers), ${s.lag.length} commits in ${ctx.reps} × ${WINDOW_SECONDS} s: lag median ${median(s.lag).toFixed(2)} ms, p95 ${pct(s.lag, 0.95).toFixed(2)} ms, max ${Math.max(...s.lag).toFixed(1)} ms (${s.lag.length}); recovery point median ${(median(s.rpo) / 1000).toFixed(2)} s, p95 ${(pct(s.rpo, 0.95) / 1000).toFixed(2)} s, max ${(Math.max(...s.rpo) / 1000).toFixed(2)} s (commit until shipped to wal/; plain: flushed there). CPU s: wal-receive's own (node, pg_receivewal, age) per window`;
    say(`${m.label}: ${c?.note ?? ""}`);
  }
}
