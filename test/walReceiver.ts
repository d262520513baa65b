// wal-receive as a real process for integration tests: the built CLI started with an
// environment, its JSON log lines, its exit, and a stop by SIGTERM bounded by SIGKILL of it
// and its children. Also the signing and age keys the signed and encrypted tiers need.
import { execFileSync, spawn } from "node:child_process";
import { join } from "node:path";
import { CLI, tempDir } from "./helpers.js";

export interface WalReceiveProcess {
  pid: number;
  logs: () => Record<string, unknown>[];
  exited: Promise<{ code: number | null; stderr: string }>;
}

const running: WalReceiveProcess[] = [];

/** Starts `wal-receive` with exactly `env` (plus PATH, no log file). */
export function startWalReceive(env: Record<string, string>): WalReceiveProcess {
  const child = spawn(process.execPath, [CLI, "wal-receive"], { env: { PATH: process.env.PATH ?? "", LOG_FILE: "", ...env } });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<{ code: number | null; stderr: string }>((resolve) => child.on("close", (code) => resolve({ code, stderr })));
  const r: WalReceiveProcess = {
    pid: child.pid as number,
    exited,
    logs: () =>
      stderr
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
  running.push(r);
  void exited.then(() => running.splice(running.indexOf(r), 1));
  return r;
}

export function childrenOf(pid: number): number[] {
  try {
    return execFileSync("ps", ["-o", "pid=", "--ppid", String(pid)]).toString().split("\n").map((s) => Number(s.trim())).filter((n) => n > 0);
  } catch {
    return [];
  }
}

/** SIGTERM, and SIGKILL (of it and its children) after 10 s. */
export async function stopWalReceive(r: WalReceiveProcess): Promise<{ code: number | null; stderr: string }> {
  try {
    process.kill(r.pid, "SIGTERM");
  } catch {
    // already gone
  }
  const timer = setTimeout(() => {
    for (const p of childrenOf(r.pid)) process.kill(p, "SIGKILL");
    process.kill(r.pid, "SIGKILL");
  }, 10_000);
  const out = await r.exited;
  clearTimeout(timer);
  return out;
}

/** Stops every wal-receive a test left running (afterEach / afterAll). */
export async function stopAllWalReceive(): Promise<void> {
  for (const r of [...running]) await stopWalReceive(r);
}

export async function waitFor<T>(what: string, fn: () => Promise<T | null | undefined | false> | T | null | undefined | false, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== null && v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface TestKeys {
  dir: string;
  /** Ed25519 pair as `openssl genpkey` writes it. */
  sign: string;
  verify: string;
  /** age identities and their recipients files, by name. */
  identity: (name: string) => string;
  recipients: (name: string) => string;
  /** One identity file holding several identities (a key rotation). */
  identities: (...names: string[]) => string;
}

export function makeKeys(...ageNames: string[]): TestKeys {
  const dir = tempDir("pgsb-keys-");
  execFileSync("openssl", ["genpkey", "-algorithm", "ed25519", "-out", join(dir, "sign.pem")]);
  execFileSync("openssl", ["pkey", "-in", join(dir, "sign.pem"), "-pubout", "-out", join(dir, "verify.pem")]);
  for (const n of ageNames) {
    execFileSync("age-keygen", ["-o", join(dir, `${n}.identity`)], { stdio: "ignore" });
    execFileSync("sh", ["-c", `age-keygen -y "$0" > "$1"`, join(dir, `${n}.identity`), join(dir, `${n}.recipients`)]);
  }
  return {
    dir,
    sign: join(dir, "sign.pem"),
    verify: join(dir, "verify.pem"),
    identity: (n) => join(dir, `${n}.identity`),
    recipients: (n) => join(dir, `${n}.recipients`),
    identities: (...names) => {
      const path = join(dir, `${names.join("+")}.identities`);
      execFileSync("sh", ["-c", `cat "$@" > "${path}"`, "sh", ...names.map((n) => join(dir, `${n}.identity`))]);
      return path;
    },
  };
}

/** After a file's tests: every wal-receive stopped, then each cleanup run newest first, whatever the others did. */
export async function cleanUpAfterWalTests(cleanup: (() => void)[]): Promise<void> {
  await stopAllWalReceive();
  for (const f of cleanup.reverse()) {
    try {
      f();
    } catch {
      // keep cleaning
    }
  }
}
