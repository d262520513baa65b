// What a SIGTERM or SIGINT must undo. Docker sends SIGTERM on every `service rm`/update and
// SIGKILL 10 s later, so every resource that would outlive the task (a child process, a
// .partial file, a scratch cluster, a temporary database, the lock's connection) registers
// a releaser when it is acquired and unregisters it when released normally. On a signal
// tasks/cli.ts runs the releasers newest first, each within its share of a deadline, then
// exits. The task's own code is abandoned, not unwound: children stopped here never report
// their exit (lib/core/proc.ts), so it neither starts its next step nor logs a failure.

import { ExitCode } from "./errors.js";
import type { Logger } from "./log.js";

export type Releaser = () => Promise<unknown> | void;

export interface Released {
  /** Labels of the releasers that finished, in the order they ran (newest resource first). */
  released: string[];
  failed: { label: string; error: string }[];
  /** Still running when their time was up; left to finish or to die with the process. */
  timedOut: string[];
  /** Not run at all: the deadline had passed. */
  skipped: string[];
}

/** Thrown when a task tries to start something new after a signal. */
export class Interrupted extends Error {
  constructor(what: string) {
    super(`${what}: the task is stopping after a signal`);
    this.name = "Interrupted";
  }
}

interface Entry {
  label: string;
  release: Releaser;
}

const timeout = (ms: number) => new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), ms).unref());

export class ShutdownRegistry {
  private readonly stack: Entry[] = [];
  private reason: NodeJS.Signals | null = null;

  /** The signal that started the shutdown, or null while the task runs normally. */
  get signal(): NodeJS.Signals | null {
    return this.reason;
  }

  /** Registers a releaser; returns the function that unregisters it (call it once released normally). */
  register(label: string, release: Releaser): () => void {
    const entry = { label, release };
    this.stack.push(entry);
    return () => {
      const i = this.stack.lastIndexOf(entry);
      if (i !== -1) this.stack.splice(i, 1);
    };
  }

  /** Throws Interrupted once a shutdown began: nothing new is started then. */
  assertRunning(what: string): void {
    if (this.reason !== null) throw new Interrupted(what);
  }

  /** Marks the shutdown as begun; false when it already was (a second signal, which changes nothing). */
  begin(signal: NodeJS.Signals): boolean {
    if (this.reason !== null) return false;
    this.reason = signal;
    return true;
  }

  /**
   * Runs the releasers newest first, one at a time (a process is stopped before the file it
   * writes is removed, the lock is let go last). Each gets at most `stepMs` and all of them
   * `deadlineMs`: one that hangs is left behind so the others still run. Releasers
   * registered meanwhile run too.
   */
  async releaseAll(deadlineMs: number, stepMs: number): Promise<Released> {
    const end = Date.now() + deadlineMs;
    const out: Released = { released: [], failed: [], timedOut: [], skipped: [] };
    for (let entry = this.stack.pop(); entry !== undefined; entry = this.stack.pop()) {
      const left = end - Date.now();
      if (left <= 0) {
        out.skipped.push(entry.label, ...this.stack.reverse().map((e) => e.label));
        this.stack.length = 0;
        break;
      }
      try {
        const run = Promise.resolve().then(entry.release).then(() => "done" as const);
        run.catch(() => undefined); // one that fails after its time was up is already reported as timed out
        const r = await Promise.race([run, timeout(Math.min(left, stepMs))]);
        if (r === "timeout") out.timedOut.push(entry.label);
        else out.released.push(entry.label);
      } catch (err) {
        out.failed.push({ label: entry.label, error: err instanceof Error ? err.message : String(err) });
      }
    }
    return out;
  }
}

/** The process's registry: lib registers into it, tasks/cli.ts runs it on a signal. */
export const shutdown = new ShutdownRegistry();

/**
 * Docker kills 10 s after SIGTERM (the stop grace period): the cleanup gets 8 s in all and
 * no one releaser more than 3 s (a stuck one must not starve the lock's release), then the
 * task exits regardless.
 */
const SHUTDOWN_DEADLINE_MS = 8000;
const SHUTDOWN_STEP_MS = 3000;
const SIGNAL_EXIT: Record<"SIGTERM" | "SIGINT", ExitCode> = { SIGTERM: ExitCode.terminated, SIGINT: ExitCode.interrupted };

export interface SignalHooks {
  task: string;
  log: Logger;
  /** Runs beside the releasers, bounded by its own budget (the /fail ping and webhook). */
  alongside?: (exitCode: ExitCode) => Promise<unknown>;
  /** Runs after them (the metrics record). */
  after?: (exitCode: ExitCode) => Promise<unknown>;
  /** Ends the process with the signal's code: the CLI edge's part, since the task itself is abandoned. */
  exit: (exitCode: ExitCode) => void;
}

/**
 * Installs the SIGTERM/SIGINT handlers for a running task (tasks/cli.ts): the releasers run
 * while `alongside` does, one line is logged, `after` runs, and `exit` gets 143/130. A second
 * signal during the cleanup is ignored: the deadline bounds the cleanup already, and cutting
 * it short would leave a partial file or a running scratch server behind.
 */
export function onSignals(hooks: SignalHooks): void {
  const ignored: NodeJS.Signals[] = [];
  const stop = async (signal: "SIGTERM" | "SIGINT"): Promise<void> => {
    if (!shutdown.begin(signal)) {
      ignored.push(signal);
      return;
    }
    const t0 = Date.now();
    const exitCode = SIGNAL_EXIT[signal];
    const [r] = await Promise.all([shutdown.releaseAll(SHUTDOWN_DEADLINE_MS, SHUTDOWN_STEP_MS), hooks.alongside?.(exitCode)]);
    const clean = r.failed.length === 0 && r.timedOut.length === 0 && r.skipped.length === 0;
    hooks.log.warn(
      { signal, task: hooks.task, exitCode, released: r.released, failed: r.failed, timedOut: r.timedOut, skipped: r.skipped, ignoredSignals: ignored, cleanupMs: Date.now() - t0 },
      `${hooks.task} stopped by ${signal}: ${clean ? `released ${r.released.length} resource(s), nothing half-written kept` : "cleanup incomplete, see failed/timedOut/skipped"}`,
    );
    await hooks.after?.(exitCode);
    hooks.exit(exitCode);
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
}
