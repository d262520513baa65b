// The supervisor's per-segment-switch hook: a tick runs every WAL_STATUS_INTERVAL_SECONDS,
// as soon as a segment or history file is completed in the folder pg_receivewal writes
// (fs.watch; on a share where change events do not arrive the interval still does), and when
// pg_receivewal exits (a server that died leaves its last WAL to ship). The supervisor's tick
// runs switchChecks.ts first — the one place for checks at every switch — then the monitor
// and the shipper. Ticks never overlap; one asked for while another runs follows it.
import { watch } from "node:fs";
import type { FSWatcher } from "node:fs";
import type { Logger } from "../core/log.js";
import { parseWalName } from "../physical/layout.js";

export type TickReason = "start" | "interval" | "switch" | "exit" | "shutdown";

export interface SwitchWatchOptions {
  /** Where pg_receivewal writes (wal/ or the spool). */
  dir: string;
  intervalMs: number;
  tick: (reason: TickReason) => Promise<void>;
  log: Logger;
}

/** A completed segment or a history file: pg_receivewal renames a segment from .partial when it is complete. Pure. */
export function isSwitchName(name: string): boolean {
  const f = parseWalName(name);
  return f !== null && (f.kind === "history" || (f.kind === "segment" && !f.partial));
}

export class SwitchWatch {
  readonly #o: SwitchWatchOptions;
  #timer: NodeJS.Timeout | null = null;
  #watcher: FSWatcher | null = null;
  /** The tick waiting for the running one to end; later requests share it. */
  #queued: Promise<void> | null = null;
  #chain: Promise<void> = Promise.resolve();

  constructor(o: SwitchWatchOptions) {
    this.#o = o;
  }

  start(): void {
    this.#timer = setInterval(() => void this.run("interval").catch(() => undefined), this.#o.intervalMs);
    this.#timer.unref();
    try {
      this.#watcher = watch(this.#o.dir, (_event, name) => {
        if (typeof name === "string" && isSwitchName(name)) void this.run("switch").catch(() => undefined);
      });
      this.#watcher.on("error", (err) => {
        this.#o.log.debug({ error: err.message }, `no change events from ${this.#o.dir}; checking every status interval only`);
        this.#watcher?.close();
        this.#watcher = null;
      });
    } catch (err) {
      this.#o.log.debug({ error: (err as Error).message }, `no change events from ${this.#o.dir}; checking every status interval only`);
    }
  }

  /** Runs a tick now, or right after the one running; resolves when a tick that began after this call has ended. */
  run(reason: TickReason): Promise<void> {
    if (this.#queued !== null) return this.#queued;
    const next = this.#chain.then(() => {
      this.#queued = null;
      return this.#o.tick(reason);
    });
    this.#queued = next;
    this.#chain = next.catch(() => undefined);
    return next;
  }

  /** Runs `fn` between ticks: after the running (and a queued) one, before any later one. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#chain.then(fn);
    this.#chain = next.then(
      () => undefined,
      () => undefined,
    );
    return next;
  }

  /** Stops the timer and the watcher; waits for a running tick. */
  async stop(): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#watcher?.close();
    this.#watcher = null;
    await this.#chain;
  }
}
