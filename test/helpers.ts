// Shared test plumbing: a config for a test cluster, deps that capture output and logs,
// and running the built CLI as a real process (for exit codes and stderr).
import { spawn } from "node:child_process";
import { lstatSync, mkdtempSync, readdirSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import pino from "pino";
import type { Config } from "../lib/config/config.js";
import { resolveConfig } from "../lib/config/config.js";
import type { Deps } from "../lib/core/deps.js";
import type { ClusterInfo } from "./cluster.js";
import { clusterEnv } from "./cluster.js";

export const CLI = join(import.meta.dirname, "..", "dist", "tasks", "cli.js");

const madeDirs: string[] = [];

/** A fresh folder under the system temp dir; test/cleanup.ts removes it after the test file. */
export function tempDir(prefix = "pgsb-test-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  madeDirs.push(dir);
  return dir;
}

/** Removes every folder tempDir made in this test file (the files of a test cluster's server user too: we are root). */
export function removeTempDirs(): void {
  for (const dir of madeDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

export function testConfig(c: ClusterInfo, backupDir: string, extra: Record<string, string> = {}): Readonly<Config> {
  return resolveConfig({ PATH: process.env.PATH, ...clusterEnv(c), BACKUP_DIR: backupDir, LOG_FILE: "", TZ: "Europe/Berlin", ...extra });
}

export interface CapturedDeps extends Deps {
  output: string[];
  logs: Record<string, unknown>[];
}

export function testDeps(now?: () => Date): CapturedDeps {
  const output: string[] = [];
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString("utf8").split("\n")) if (line.trim() !== "") logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const log = pino({ level: "debug" }, sink);
  return { log, now: now ?? (() => new Date()), env: process.env, out: (t) => output.push(t), output, logs };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI (npm test builds it first) with exactly `env` plus PATH. */
export function runCli(args: string[], env: Record<string, string>, timeoutMs = 120_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? "", LOG_FILE: "", ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export function cliEnv(c: ClusterInfo, backupDir: string, extra: Record<string, string> = {}): Record<string, string> {
  return { ...clusterEnv(c), BACKUP_DIR: backupDir, TZ: "Europe/Berlin", ...extra };
}

/** Every file under dir as "size" or "-> target", so a test can prove nothing changed. */
export function snapshot(dir: string, rel = ""): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(join(dir, rel)).sort()) {
    const path = join(dir, rel, name);
    const info = lstatSync(path);
    if (info.isDirectory()) Object.assign(out, snapshot(dir, join(rel, name)));
    else out[join(rel, name)] = info.isSymbolicLink() ? `-> ${readlinkSync(path)}` : String(info.size);
  }
  return out;
}
