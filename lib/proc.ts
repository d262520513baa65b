// Child processes: argument arrays only (never a shell), the environment passed in, and a
// failure turned into one error carrying the program, exit code, signal and stderr tail.
import { execa } from "execa";
import type { Secret } from "./secret.js";
import { redact } from "./secret.js";

/** Exit statuses with a meaning worth naming in an error message. */
const EXIT_MEANING: Record<number, string> = {
  126: "not executable",
  127: "program not found",
  130: "interrupted (SIGINT)",
  137: "killed (SIGKILL, often the out-of-memory killer)",
  141: "broken pipe (SIGPIPE: its reader stopped)",
  143: "terminated (SIGTERM)",
};

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

/** Turns an execa failure into a ProcessError; other errors pass through. */
export function toProcessError(program: string, err: unknown, secrets: readonly (Secret | null)[] = []): Error {
  const e = err as { exitCode?: number; signal?: string; stderr?: unknown; code?: string; message?: string };
  if (e.code === "ENOENT") {
    return new ProcessError(program, 127, undefined, `${program} is not installed or not on PATH`, err);
  }
  // Children run with encoding "buffer" hand their stderr over as bytes.
  const stderr = typeof e.stderr === "string" ? e.stderr : e.stderr instanceof Uint8Array ? Buffer.from(e.stderr).toString("utf8") : "";
  return new ProcessError(program, e.exitCode, e.signal, redact(tail(stderr), secrets), err);
}

/**
 * Starts a streaming filter (a compressor or decompressor): bytes in on stdin, out on stdout,
 * stderr kept for the error message. The caller wires the streams and awaits the process.
 */
export function spawnFilter(program: string, args: readonly string[], env: NodeJS.ProcessEnv) {
  return execa(program, args, { env, extendEnv: false, stdin: "pipe", stdout: "pipe", buffer: { stdout: false, stderr: true }, encoding: "buffer" });
}

/** Runs a short command and returns its stdout; throws ProcessError on failure. */
export async function runCommand(
  program: string,
  args: readonly string[],
  opts: { env: NodeJS.ProcessEnv; input?: string; secrets?: readonly (Secret | null)[]; cwd?: string },
): Promise<string> {
  try {
    const r = await execa(program, args, { env: opts.env, extendEnv: false, input: opts.input, cwd: opts.cwd, stripFinalNewline: false });
    return r.stdout;
  } catch (err) {
    throw toProcessError(program, err, opts.secrets);
  }
}
