// Physical-tier fixtures made with the real tools, for restore-pitr and verify tests:
// pg_receivewal into BACKUP_DIR/wal with a slot, a base backup (pg_basebackup -Ft -D - into
// zstd) with its .sha256 and .json as `backup base` writes them, and a cluster started on a
// restored data directory as the postgres OS user.
import { execFileSync, spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { chownSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { ClusterInfo } from "./cluster.js";
import { clusterEnv, startCluster } from "./cluster.js";
import { findServerBinary } from "../lib/core/bin.js";
import { freePort } from "../lib/core/port.js";
import { baseBackupName } from "../lib/physical/layout.js";
import type { BaseManifest } from "../lib/physical/layout.js";
import { checksumFileText } from "../lib/store/checksum.js";
import { tempDir } from "./helpers.js";

const env = (c: ClusterInfo): NodeJS.ProcessEnv => ({ PATH: process.env.PATH, ...clusterEnv(c) });
const sha256 = (b: Buffer | string): string => createHash("sha256").update(b).digest("hex");

export interface Receiver {
  child: ChildProcess;
  /** Stops pg_receivewal (SIGINT: it flushes and exits) within `ms`. */
  stop(ms?: number): Promise<void>;
}

/** pg_receivewal into `walDir` with a slot created first, so no WAL is lost between runs. */
export function startReceiver(c: ClusterInfo, walDir: string, compress: "lz4" | "gzip" | "none"): Receiver {
  mkdirSync(walDir, { recursive: true });
  const bin = join(c.bindir, "pg_receivewal");
  execFileSync(bin, ["--create-slot", "--if-not-exists", "-S", "pitr_test"], { env: env(c) });
  const child = spawn(bin, ["-D", walDir, "-S", "pitr_test", "--synchronous", "-n", ...(compress === "none" ? [] : [`--compress=${compress}`])], { env: env(c), stdio: "ignore" });
  return {
    child,
    stop: (ms = 5000) =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const timer = setTimeout(() => child.kill("SIGKILL"), ms);
        child.once("exit", () => {
          clearTimeout(timer);
          resolve();
        });
        child.kill("SIGINT");
      }),
  };
}

/** A base backup in `backupDir/base` as `backup base` wrote it before chunk lists (zstd, manifest format 1): restore-pitr and verify still read those, checking the file whole. */
export function makeBaseBackup(c: ClusterInfo, backupDir: string): { name: string; manifest: BaseManifest } {
  const started = new Date(Math.floor(Date.now() / 1000) * 1000);
  const name = baseBackupName(started, "zstd");
  const dir = join(backupDir, "base");
  mkdirSync(dir, { recursive: true });
  const work = tempDir("pgsb-basefix-");
  try {
    const raw = join(work, "base.tar");
    execFileSync("sh", ["-c", `"$0" -Ft -D - -X none -c fast > "$1"`, join(c.bindir, "pg_basebackup"), raw], { env: env(c), timeout: 60_000 });
    const manifestText = execFileSync("tar", ["-xOf", raw, "backup_manifest"], { maxBuffer: 1 << 26 });
    // The WAL range is in the backup_manifest; with -X none pg_basebackup prints no LSNs.
    const range = (JSON.parse(manifestText.toString("utf8")) as { "WAL-Ranges": { Timeline: number; "Start-LSN": string; "End-LSN": string }[] })["WAL-Ranges"][0];
    if (range === undefined) throw new Error("backup_manifest has no WAL-Ranges");
    const path = join(dir, name);
    execFileSync("zstd", ["-q", "-1", "-o", path, raw]);
    const data = readFileSync(path);
    const sysid = execFileSync("psql", ["-XAtc", "SELECT system_identifier FROM pg_control_system()"], { env: env(c) }).toString().trim();
    const version = execFileSync("psql", ["-XAtc", "SHOW server_version"], { env: env(c) }).toString().trim();
    const manifest: BaseManifest = {
      format: 1,
      kind: "base",
      tool: { name: "pg-swarm-backup", version: "test" },
      name,
      startedAt: started.toISOString(),
      finishedAt: new Date().toISOString(),
      startLsn: range["Start-LSN"],
      stopLsn: range["End-LSN"],
      timeline: range.Timeline,
      walSegmentSize: 16 * 1024 * 1024,
      systemIdentifier: sysid,
      serverVersion: version,
      pgBasebackupVersion: execFileSync(join(c.bindir, "pg_basebackup"), ["--version"]).toString().trim(),
      compression: { codec: "zstd", program: "zstd", level: 1 },
      rawBytes: statSync(raw).size,
      compressedBytes: data.length,
      sha256: sha256(data),
      backupManifestSha256: sha256(manifestText),
    };
    const json = JSON.stringify(manifest, null, 2) + "\n";
    writeFileSync(path + ".json", json);
    writeFileSync(path + ".sha256", checksumFileText(name, manifest.sha256, sha256(json)));
    return { name, manifest };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** A folder (owned by the server user when we are root) to restore into: DIR/data does not exist yet. */
export async function restoreTarget(name: string): Promise<ClusterInfo> {
  const dir = tempDir(`pgsb-${name}-`);
  const socketDir = join(dir, "sock");
  mkdirSync(socketDir);
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync("id", ["-u", "postgres"]).toString());
    const gid = Number(execFileSync("id", ["-g", "postgres"]).toString());
    chownSync(dir, uid, gid);
    chownSync(socketDir, uid, gid);
  }
  const initdb = findServerBinary("initdb");
  if (initdb === null) throw new Error("initdb not found; run scripts/setup.sh");
  return { dir, dataDir: join(dir, "data"), socketDir, port: await freePort(), bindir: dirname(initdb) };
}

/** Starts the restored data directory as the postgres OS user, on its own port and socket. */
export function startRestored(t: ClusterInfo): void {
  writeFileSync(join(t.dataDir, "postgresql.auto.conf"), [`port = ${t.port}`, `unix_socket_directories = '${t.socketDir}'`, "archive_mode = off", ""].join("\n"), { flag: "a" });
  if (process.getuid?.() === 0) execFileSync("chown", ["-R", "postgres:postgres", t.dataDir]);
  startCluster(t);
}
