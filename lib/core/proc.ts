// Child processes: argument arrays only (never a shell), the environment passed in, and a
// failure turned into one error carrying the program, exit code, signal and stderr tail.
// Built on node:child_process directly (execa cost 70 ms of module loading per run); a
// stream with a descriptor, such as another child's stdin, can be given as stdin or stdout.
import { spawn } from "node:child_process";
import type { ChildProcess, StdioNull, StdioPipe } from "node:child_process";
import type { Readable, Stream, Writable } from "node:stream";
import type { Secret } from "./secret.js";
import { redact } from "./secret.js";
import { shutdown } from "./shutdown.js";

/** Exit statuses with a meaning worth naming in an error message. */
const EXIT_MEANING: Record<number, string> = {
  126: "not executable",
  127: "program not found",
  130: "interrupted (SIGINT)",
  137: "killed (SIGKILL, often the out-of-memory killer)",
  141: "broken pipe (SIGPIPE: its reader stopped)",
  143: "terminated (SIGTERM)",
};

/** The end of stderr kept for messages (psql and pg_dump put the error last). */
const KEEP_STDERR = 16 * 1024;

export class ProcessError extends Error {
  readonly program: string;
  readonly exitCode: number | undefined;
  readonly signal: string | undefined;
  readonly stderrTail: string;
  constructor(program: string, exitCode: number | undefined, signal: string | undefined, stderrTail: string, cause?: unknown) {
    const how = signal !== undefined ? `was killed by ${signal}` : `exited with ${exitCode ?? "?"}${exitCode !== undefined && EXIT_MEANING[exitCode] ? ` (${EXIT_MEANING[exitCode]})` : ""}`;
    super(`${program} ${how}${stderrTail ? `: ${stderrTail}` : ""}`, { cause });
    this.name = "ProcessError";
    this.program = program;
    this.exitCode = exitCode;
    this.signal = signal;
    this.stderrTail = stderrTail;
  }
}

export function tail(text: string, maxLines = 8, maxChars = 2000): string {
  const lines = text.trim().split("\n");
  return lines.slice(-maxLines).join("\n").slice(-maxChars);
}

/** How a child ended. `started` is false when it could not be started at all (then `code` is 127 or 126). */
export interface Exit {
  started: boolean;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The end of what it printed on stderr, secrets redacted. */
  stderr: string;
}

export function exitOk(e: Exit): boolean {
  return e.started && e.code === 0 && e.signal === null;
}

export function exitError(program: string, e: Exit): ProcessError {
  return new ProcessError(program, e.code ?? undefined, e.signal ?? undefined, tail(e.stderr));
}

type In = StdioPipe | StdioNull | Stream | number;
type Out = StdioPipe | StdioNull | Stream | number;

export interface ChildOptions {
  env: NodeJS.ProcessEnv;
  stdin?: In;
  stdout?: Out;
  cwd?: string;
  secrets?: readonly (Secret | null)[];
  /**
   * A shutdown releaser's own short child (wal-receive's last snapshot through age at SIGTERM):
   * it may start after the signal, and its exit is reported, not abandoned.
   */
  inShutdown?: boolean;
}

export interface Child {
  readonly process: ChildProcess;
  /** Present when stdin is "pipe". */
  readonly stdin: Writable | null;
  /** Present when stdout is "pipe". */
  readonly stdout: Readable | null;
  /** Settles (never rejects) once the child has exited and its stderr is read. */
  readonly exit: Promise<Exit>;
  /** Resolves on exit 0; rejects with a ProcessError naming the program otherwise. */
  readonly done: Promise<void>;
  /** SIGKILL, if it is still running. */
  kill(): void;
}

/** How long a child stopped for a signal gets to exit on SIGTERM (runuser passes it on; SIGKILL it cannot) before SIGKILL. */
const STOP_GRACE_MS = 1000;

const exited = (child: ChildProcess, ms: number) =>
  new Promise<boolean>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve(true);
    const timer = setTimeout(() => resolve(false), ms);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve(true);
    });
  });

/** The shutdown releaser of a child: SIGTERM, then SIGKILL if it lingers. */
async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  if (await exited(child, STOP_GRACE_MS)) return;
  child.kill("SIGKILL");
  await exited(child, STOP_GRACE_MS);
}

/** Starts `program`; stderr is always captured (its tail goes into errors). Refused (Interrupted) after a signal. */
export function start(program: string, args: readonly string[], opts: ChildOptions): Child {
  if (opts.inShutdown !== true) shutdown.assertRunning(`${program} not started`);
  const child = spawn(program, args, { env: opts.env, cwd: opts.cwd, stdio: [opts.stdin ?? "ignore", opts.stdout ?? "ignore", "pipe"] });
  const unregister = shutdown.register(`${program} (pid ${child.pid ?? "?"})`, () => stopChild(child));
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString("utf8")).slice(-KEEP_STDERR);
  });
  const exit = new Promise<Exit>((resolve) => {
    child.on("error", (err: NodeJS.ErrnoException) => {
      // Spawn failures are reported here and no 'close' follows.
      if (child.pid !== undefined) return;
      unregister();
      const missing = err.code === "ENOENT";
      resolve({ started: false, code: missing ? 127 : 126, signal: null, stderr: missing ? `${program} is not installed or not on PATH` : `${program} could not be started: ${err.message}` });
    });
    child.once("close", (code, signal) => {
      unregister();
      // After a signal the task is abandoned: a child it stopped reports nothing, so the task
      // neither fails loudly nor goes on. A child that died of SIGINT/SIGTERM itself was most
      // likely signalled along with us (Ctrl-C reaches the whole process group), so our own
      // handler gets a moment to begin first.
      const settle = () => {
        if (shutdown.signal === null || opts.inShutdown === true) resolve({ started: true, code, signal, stderr: redact(stderr, opts.secrets ?? []) });
      };
      if (signal === "SIGINT" || signal === "SIGTERM") setTimeout(settle, 100);
      else settle();
    });
  });
  // Writing into a child that has exited raises EPIPE on its stdin; the exit status explains it.
  child.stdin?.on("error", () => undefined);
  const done = exit.then((e) => {
    if (!exitOk(e)) throw exitError(program, e);
  });
  done.catch(() => undefined); // awaited by the caller; never an unhandled rejection on early exits
  return {
    process: child,
    stdin: child.stdin,
    stdout: child.stdout,
    exit,
    done,
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    },
  };
}

/**
 * Starts a streaming filter (a compressor or decompressor): bytes in on stdin, out on
 * stdout, both pipes. The caller wires the streams and awaits `done`.
 */
/**
 * A filter that failed only because the next one stopped reading (EPIPE, SIGPIPE) or because it
 * was stopped after another stage failed: in a chain of filters, never the failure to report.
 */
export function isSecondaryFailure(err: ProcessError): boolean {
  return err.signal === "SIGPIPE" || err.signal === "SIGTERM" || /broken pipe|EPIPE/i.test(err.stderrTail);
}

/** A filter program (stdin -> stdout): a compressor, decompressor, or age. */
export interface Program {
  program: string;
  args: string[];
  /** What ran, for the log and the manifest: e.g. "lbzip2 -n 2 -9". */
  label: string;
}

export function spawnFilter(program: string, args: readonly string[], env: NodeJS.ProcessEnv): Child {
  return start(program, args, { env, stdin: "pipe", stdout: "pipe" });
}

/** Runs a short command and returns its stdout as bytes (dumps are not always valid UTF-8); throws ProcessError on failure. */
export async function runCommandBytes(
  program: string,
  args: readonly string[],
  opts: { env: NodeJS.ProcessEnv; input?: string | Uint8Array; secrets?: readonly (Secret | null)[]; cwd?: string; inShutdown?: boolean },
): Promise<Buffer> {
  const child = start(program, args, { env: opts.env, cwd: opts.cwd, secrets: opts.secrets, stdin: opts.input === undefined ? "ignore" : "pipe", stdout: "pipe", inShutdown: opts.inShutdown });
  const chunks: Buffer[] = [];
  child.stdout?.on("data", (d: Buffer) => chunks.push(d));
  child.stdin?.end(opts.input);
  await child.done;
  return Buffer.concat(chunks);
}

/** Runs a short command and returns its stdout as text; throws ProcessError on failure. */
export async function runCommand(...a: Parameters<typeof runCommandBytes>): Promise<string> {
  return (await runCommandBytes(...a)).toString("utf8");
}
