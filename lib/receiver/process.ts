// One pg_receivewal process: its arguments, and a start that also registers the clean stop.
// pg_receivewal 15 closes its files on SIGINT only (SIGTERM kills it outright), so on a
// shutdown it gets SIGINT first; proc.ts's SIGTERM releaser follows if it lingers.
import type { Config } from "../config/config.js";
import type { Deps } from "../core/deps.js";
import { sleep } from "../core/concurrency.js";
import type { Logger } from "../core/log.js";
import { findServerBinary } from "../core/bin.js";
import { start } from "../core/proc.js";
import type { Child } from "../core/proc.js";
import { shutdown } from "../core/shutdown.js";
import { KEEPALIVE_CONNINFO, childEnv } from "../postgres/connection.js";
import { walDir } from "../physical/layout.js";

/** pg_receivewal's arguments for the receive loop, into `dir` (wal/ unless restarting after a gap). Pure. */
export function receiveArgs(config: Config, dir = walDir(config.backupDir)): string[] {
  const w = config.wal;
  return [
    "-D", dir,
    // Dead-peer detection (keepalives, tcp_user_timeout); the rest of the connection comes from childEnv.
    `--dbname=${KEEPALIVE_CONNINFO}`,
    `--slot=${w.slot}`,
    "--no-loop",
    "--no-password",
    // Flush every write and report at once: the recovery point is what reached the storage box.
    "--synchronous",
    `--status-interval=${w.statusIntervalSeconds}`,
    ...(w.compression === "none" ? [] : [`--compress=${w.compression}`]),
  ];
}

export function receivewalBinary(): string {
  return findServerBinary("pg_receivewal") ?? "pg_receivewal";
}

/** How long pg_receivewal gets to flush and close its files on SIGINT before it is terminated. */
const CLEAN_STOP_MS = 2500;

/** SIGINT, then waits for the exit (at most CLEAN_STOP_MS) and logs it. */
export async function stopCleanly(child: Child, log: Logger): Promise<void> {
  const p = child.process;
  if (p.exitCode !== null || p.signalCode !== null) return;
  const ended = new Promise<[number | null, string | null]>((resolve) => p.once("exit", (code, signal) => resolve([code, signal])));
  p.kill("SIGINT");
  const r = await Promise.race([ended, sleep(CLEAN_STOP_MS).then(() => null)]);
  if (r === null) {
    log.warn({ event: "stop", pid: p.pid }, `pg_receivewal did not stop within ${CLEAN_STOP_MS} ms of SIGINT; terminating it`);
    child.kill();
  } else log.info({ event: "stop", code: r[0], signal: r[1] }, "pg_receivewal stopped; its .partial file stays, and the next start continues it");
}

export interface Receiver {
  child: Child;
  /** Call once it has exited on its own. */
  release: () => void;
}

/** Starts pg_receivewal with `args`; a shutdown stops it cleanly (registered after start(), so it runs before proc.ts's SIGTERM). */
export function startReceivewal(config: Config, deps: Deps, log: Logger, args: readonly string[]): Receiver {
  const child = start(receivewalBinary(), args, { env: childEnv(config.pg, deps.env), secrets: [config.pg.password] });
  const release = shutdown.register(`pg_receivewal clean stop (pid ${child.process.pid ?? "?"})`, () => stopCleanly(child, log));
  return { child, release };
}
