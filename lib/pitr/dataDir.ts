// The data directory restore-pitr prepares: what is there now (nothing, an empty folder, a
// stopped cluster's files, or a live postmaster's), and moving old contents aside. Nothing
// here deletes: old data is renamed to DIR.pgsb-moved-<UTC stamp>, or, when DIR is a mount
// point (a Docker volume mounted as PGDATA) that cannot be renamed, into DIR/.pgsb-moved-<stamp>/.
import { connect } from "node:net";
import { lstat, mkdir, readdir, readFile, rename, rmdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { errnoCode } from "../core/errors.js";
import { utcStamp } from "../store/naming.js";

export type DataDirState = { kind: "absent" } | { kind: "empty" } | { kind: "non-empty"; entries: number } | { kind: "live"; why: string } | { kind: "not-a-directory"; what: string };

/**
 * Whether `pid` is a running postgres here. The pid in a stale postmaster.pid (a crashed or
 * killed server, often pid 1 of its container) may belong to another program now, such as
 * this task's own init: only a process named postgres counts.
 */
async function alive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => null);
  if (stat !== null) return /^\d+ \((postgres|postmaster)\) [^Z]/.test(stat);
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoCode(err) === "EPERM";
  }
}

function answers(socketPath: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(socketPath);
    const timer = setTimeout(() => {
      s.destroy();
      resolve(false);
    }, timeoutMs);
    s.once("connect", () => {
      clearTimeout(timer);
      s.destroy();
      resolve(true);
    });
    s.once("error", () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

/**
 * Whether postmaster.pid names a live postmaster: its pid runs here (same pid namespace), or
 * the unix socket it names answers (a server in another container sharing the folder).
 */
async function livePostmaster(dir: string): Promise<string | null> {
  const text = await readFile(join(dir, "postmaster.pid"), "utf8").catch(() => null);
  if (text === null) return null;
  const [pidLine, , , port, socketDir] = text.split("\n");
  const pid = Number(pidLine);
  if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && (await alive(pid))) return `postmaster.pid names process ${pid}, which is running`;
  if (port !== undefined && /^\d+$/.test(port.trim()) && socketDir !== undefined && socketDir.trim() !== "") {
    const socket = join(socketDir.trim(), `.s.PGSQL.${port.trim()}`);
    if (await answers(socket)) return `the server socket ${socket} that postmaster.pid names answers`;
  }
  return null;
}

export async function inspectDataDir(dir: string): Promise<DataDirState> {
  let info;
  try {
    info = await lstat(dir);
  } catch (err) {
    if (errnoCode(err) === "ENOENT") return { kind: "absent" };
    throw err;
  }
  if (info.isSymbolicLink()) return { kind: "not-a-directory", what: "a symlink" };
  if (!info.isDirectory()) return { kind: "not-a-directory", what: "a file" };
  const live = await livePostmaster(dir);
  if (live !== null) return { kind: "live", why: live };
  const entries = (await readdir(dir)).length;
  return entries === 0 ? { kind: "empty" } : { kind: "non-empty", entries };
}

/** Renames `dir` to `dir.pgsb-moved-<stamp>` (a free name); returns the new path. */
export async function moveAside(dir: string, now: Date): Promise<string> {
  const base = `${dir}.pgsb-moved-${utcStamp(now)}`;
  for (let i = 0; ; i++) {
    const to = i === 0 ? base : `${base}-${i}`;
    const taken = await lstat(to).then(() => true, (err: unknown) => (errnoCode(err) === "ENOENT" ? false : Promise.reject(err as Error)));
    if (taken) continue;
    await rename(dir, to);
    return to;
  }
}

/** Whether `dir` is a mount point: another file system than its parent's (a volume mounted as PGDATA). */
export async function isMountPoint(dir: string): Promise<boolean> {
  const [own, parent] = await Promise.all([lstat(dir), lstat(dirname(dir))]);
  return own.dev !== parent.dev || own.ino === parent.ino;
}

/** Moves every entry of `dir` but `keep` into a new `dir/.pgsb-moved-<stamp>`; returns that folder. */
export async function moveContentsAside(dir: string, now: Date, keep: string): Promise<string> {
  const entries = (await readdir(dir)).filter((n) => n !== keep);
  let to = join(dir, `.pgsb-moved-${utcStamp(now)}`);
  for (let i = 1; await lstat(to).then(() => true, () => false); i++) to = join(dir, `.pgsb-moved-${utcStamp(now)}-${i}`);
  await mkdir(to, { mode: 0o700 });
  for (const name of entries) await rename(join(dir, name), join(to, name));
  return to;
}

/** Moves every entry of `from` into `dir` (same file system) and removes the empty `from`. */
export async function moveContentsIn(from: string, dir: string): Promise<void> {
  for (const name of await readdir(from)) await rename(join(from, name), join(dir, name));
  await rmdir(from);
}
