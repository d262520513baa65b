// When the server no longer has the WAL that follows the newest file in wal/ (its slot was
// invalidated or dropped while the receiver was down), pg_receivewal cannot go on: it always
// resumes after the newest file in its folder, and version 15 takes no start position. So the
// archive starts again at the server's current position: pg_receivewal runs in an empty folder
// inside wal/ (a folder, which every reader of wal/ ignores) until it has written its first
// file, which is moved into wal/; from then on pg_receivewal resumes from that file. The WAL in
// between is a gap: the caller logs it, verify reports it, and the next base backup starts a
// new restorable range. Nothing in wal/ is moved or deleted.
import { lstat, mkdir, readdir, readFile, rename, rm, rmdir } from "node:fs/promises";
import { join } from "node:path";
import type { Config } from "../config/config.js";
import type { Deps } from "../core/deps.js";
import { sleep } from "../core/concurrency.js";
import { ExitCode, TaskError, errnoCode } from "../core/errors.js";
import type { Logger } from "../core/log.js";
import { tail } from "../core/proc.js";
import type { Exit } from "../core/proc.js";
import { withClient } from "../postgres/connection.js";
import { parseWalName, walDir } from "../physical/layout.js";
import { classifyReceiverExit, restartDelayMs } from "./fault.js";
import { receiveArgs, startReceivewal, stopCleanly } from "./process.js";
import { recreateSlot } from "./slot.js";

const POLL_MS = 200;
const NUDGE_EVERY = 10;

/** An idle server sends nothing, and pg_receivewal writes no file before it gets WAL: a logical message is a WAL record. */
async function nudge(config: Config, log: Logger): Promise<void> {
  await withClient(config.pg, config.pg.database, (c) => c.query("SELECT pg_logical_emit_message(false, 'pg-swarm-backup', 'wal-receive restarts after a gap')"), log).catch(
    (err: unknown) => log.debug({ error: (err as Error).message }, "no WAL record written to speed up the restart; waiting for the server's own WAL"),
  );
}

async function walNames(dir: string, kinds: readonly string[] = ["segment"]): Promise<string[]> {
  return (await readdir(dir)).filter((n) => kinds.includes(parseWalName(n)?.kind ?? ""));
}

/** pg_receivewal fetches the timeline's history file again; the copy wal/ already holds is the same file. */
async function sameFile(a: string, b: string): Promise<boolean> {
  const [x, y] = await Promise.all([readFile(a), readFile(b)]);
  return x.equals(y);
}

/** Runs pg_receivewal into `staging` until it has written a file (null) or it exits first (its Exit). */
async function receiveFirstFile(config: Config, deps: Deps, log: Logger, staging: string): Promise<Exit | null> {
  // The failed pg_receivewal reported its start as received, so the slot now points at the missing
  // WAL; pg_receivewal in an empty folder would start there. A fresh slot makes it start at the server's position.
  await withClient(config.pg, config.pg.database, (c) => recreateSlot(c, config.wal.slot), log);
  const r = startReceivewal(config, deps, log, receiveArgs(config, staging));
  let exit: Exit | null = null;
  void r.child.exit.then((e) => (exit = e));
  try {
    // Repeated: a record written before pg_receivewal has chosen its start position is not sent to it.
    for (let polls = 0; (await walNames(staging)).length === 0; polls++) {
      if (exit !== null) return exit;
      if (polls % NUDGE_EVERY === 0) await nudge(config, log);
      await sleep(POLL_MS);
    }
    return null;
  } finally {
    await stopCleanly(r.child, log);
    r.release();
  }
}

/** A few tries: the walsender of the pg_receivewal that just failed may hold the slot for a moment. */
const ATTEMPTS = 5;

/**
 * Streams from the server's current position into a fresh folder and moves its first file into
 * `wal` (the folder pg_receivewal writes: wal/, or the spool it is shipped from); returns that file's name.
 */
export async function restartAfterGap(config: Config, deps: Deps, log: Logger, wal = walDir(config.backupDir)): Promise<string> {
  const staging = join(wal, `.restart-${deps.now().getTime()}`);
  await mkdir(staging, { mode: config.files.dir });
  for (let attempt = 1; ; attempt++) {
    // The slot may still be held by the walsender of the pg_receivewal that just failed: then the drop fails, and is retried.
    const exit = await receiveFirstFile(config, deps, log, staging).catch((err: unknown) => ({ started: true, code: null, signal: null, stderr: (err as Error).message }) satisfies Exit);
    if (exit === null) break;
    if (attempt === ATTEMPTS) {
      throw new TaskError(ExitCode.failed, `pg_receivewal could not start the archive again at the server's current position (${tail(exit.stderr, 3, 600)}); check the wal-receive log`);
    }
    log.warn({ event: "stop", code: exit.code, fault: classifyReceiverExit(exit.stderr), attempt, stderr: tail(exit.stderr, 2, 400) }, "pg_receivewal stopped while starting again after the gap; retrying");
    await sleep(restartDelayMs(attempt));
  }
  const moved: string[] = [];
  for (const name of await walNames(staging, ["segment", "history"])) {
    const target = join(wal, name);
    const exists = await lstat(target).then(() => true, (err: unknown) => errnoCode(err) !== "ENOENT");
    if (!exists) {
      await rename(join(staging, name), target);
      if (parseWalName(name)?.kind === "segment") moved.push(name);
    } else if (parseWalName(name)?.kind === "history" && (await sameFile(join(staging, name), target))) {
      await rm(join(staging, name));
    }
  }
  await rmdir(staging).catch((err: unknown) => log.warn({ folder: staging, error: errnoCode(err) }, `${staging} is not empty and was left in place; it holds WAL files that already exist in wal/`));
  const first = moved.sort()[0];
  if (first === undefined) throw new TaskError(ExitCode.failed, `pg_receivewal's first file after the gap already exists in ${wal}; move the files of ${wal} aside and restart wal-receive`);
  return first;
}
