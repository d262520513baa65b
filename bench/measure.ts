// Timing one command: wall-clock seconds; CPU seconds of the command and the children it
// waited for (GNU time's %U + %S: pg_dump and the compressor included, the PostgreSQL
// backend not), which the other tenants of a shared machine disturb far less than wall
// time; and for our own process its peak RSS, both from GNU time's %M (the larger of the
// process and its biggest child) and from its own VmHWM and CPU time polled in /proc.
// Shell pipelines run under `bash -o pipefail`.
import { spawn, execFileSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";

export interface Run {
  seconds: number;
  code: number;
  stdout: string;
  stderr: string;
  /** GNU time %M in KB: the process or its largest child, whichever peaked higher. */
  peakRssKB: number | null;
  /** The process's own VmHWM in KB (last value polled before it exited). */
  ownHwmKB: number | null;
  /** User + system CPU seconds of the command and its children (GNU time). */
  cpuSeconds: number | null;
  /** User + system CPU seconds of the process itself, without children (last value polled). */
  ownCpuSeconds: number | null;
}

export interface RunOptions {
  env: Record<string, string>;
  /** Measure peak RSS and own CPU of the process (ours); the baselines get CPU seconds only. */
  rss?: boolean;
  tmpDir: string;
}

const TIME_BIN = "/usr/bin/time";
const KEEP = 64 * 1024;
let timeBin: string | null | undefined;

/** GNU time, installed with apt-get when missing and we are root; null when it cannot be had. */
export function ensureTimeBinary(say: (msg: string) => void): string | null {
  if (timeBin !== undefined) return timeBin;
  if (!existsSync(TIME_BIN) && process.getuid?.() === 0) {
    say(`${TIME_BIN} is missing; installing the Debian package "time" for peak-RSS figures`);
    try {
      execFileSync("apt-get", ["install", "-y", "-qq", "time"], { stdio: "ignore", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
    } catch {
      say("apt-get install time failed; peak RSS comes from polling /proc/<pid>/status VmHWM only");
    }
  }
  timeBin = existsSync(TIME_BIN) ? TIME_BIN : null;
  return timeBin;
}

export function baseEnv(extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = { LANG: "C.UTF-8", TZ: "UTC" };
  for (const key of ["PATH", "HOME", "TMPDIR"]) {
    const v = process.env[key];
    if (v !== undefined) env[key] = v;
  }
  return { ...env, ...extra };
}

function readHwm(pid: number): number | null {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m?.[1] === undefined ? null : Number(m[1]);
  } catch {
    return null;
  }
}

const TICKS_PER_SECOND = 100;

/** utime + stime of one process, in seconds (/proc/<pid>/stat fields 14 and 15). */
function readCpu(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return null;
  }
}

function firstChild(pid: number): number | null {
  try {
    const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/);
    return kids[0] ? Number(kids[0]) : null;
  } catch {
    return null;
  }
}

let seq = 0;

export async function timed(argv: string[], opts: RunOptions): Promise<Run> {
  const wrapper = timeBin ?? null;
  const rssFile = join(opts.tmpDir, `rss-${process.pid}-${seq++}.txt`);
  const full = wrapper === null ? argv : [wrapper, "-f", "%M %U %S", "-o", rssFile, ...argv];
  const [cmd, ...args] = full as [string, ...string[]];
  let stdout = "";
  let stderr = "";
  let ownHwmKB: number | null = null;
  let ownCpuSeconds: number | null = null;
  const t0 = process.hrtime.bigint();
  const child = spawn(cmd, args, { env: baseEnv(opts.env), stdio: ["ignore", "pipe", "pipe"] });
  child.stdout.on("data", (b: Buffer) => (stdout = (stdout + b.toString("utf8")).slice(-KEEP)));
  child.stderr.on("data", (b: Buffer) => (stderr = (stderr + b.toString("utf8")).slice(-KEEP)));
  const poll =
    opts.rss === true
      ? setInterval(() => {
          const pid = wrapper === null ? child.pid : firstChild(child.pid ?? 0);
          if (pid === undefined || pid === null) return;
          const hwm = readHwm(pid);
          if (hwm !== null) ownHwmKB = Math.max(ownHwmKB ?? 0, hwm);
          const cpu = readCpu(pid);
          if (cpu !== null) ownCpuSeconds = Math.max(ownCpuSeconds ?? 0, cpu);
        }, 25)
      : null;
  const code = await new Promise<number>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (c, signal) => resolve(c ?? (signal ? 128 : 1)));
  }).finally(() => {
    if (poll !== null) clearInterval(poll);
  });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  let peakRssKB: number | null = null;
  let cpuSeconds: number | null = null;
  if (wrapper !== null) {
    try {
      const lines = readFileSync(rssFile, "utf8").trim().split("\n");
      const [rss, user, sys] = (lines[lines.length - 1] ?? "").split(" ").map(Number);
      if (opts.rss === true && rss !== undefined && Number.isFinite(rss)) peakRssKB = rss;
      if (user !== undefined && sys !== undefined && Number.isFinite(user + sys)) cpuSeconds = +(user + sys).toFixed(2);
    } catch {
      peakRssKB = null;
    }
    rmSync(rssFile, { force: true });
  }
  if (code !== 0) {
    const tail = stderr.trim().split("\n").slice(-6).join("\n");
    throw new Error(`${argv.join(" ").slice(0, 300)} exited with ${code}: ${tail}`);
  }
  const own = opts.rss === true;
  return { seconds, code, stdout, stderr, peakRssKB, ownHwmKB: own ? ownHwmKB ?? peakRssKB : null, cpuSeconds, ownCpuSeconds: own ? ownCpuSeconds : null };
}

/** Single-quotes a word for bash. */
export function sq(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** A shell pipeline, as the seed and the "best shell" baselines are written. */
export function shell(script: string, opts: RunOptions): Promise<Run> {
  return timed(["bash", "-o", "pipefail", "-c", script], opts);
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}
