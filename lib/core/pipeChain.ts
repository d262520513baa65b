// Programs joined by OS pipes, as a shell's `a | b | c` joins them but without a shell: each
// program's stdout is the next one's stdin, so bytes between them never pass through Node; Node
// reads only the last program's stdout. The chain is started from its end: the next program is
// spawned first with a piped stdin, that pipe is handed to the program before it as its stdout,
// and this process then closes its own copy, so the reader sees end-of-file once the writer exits.
import type { Readable, Writable } from "node:stream";
import type { Child } from "./proc.js";
import { start } from "./proc.js";
import type { Secret } from "./secret.js";

export interface ChainLink {
  program: string;
  args: readonly string[];
  env: NodeJS.ProcessEnv;
  secrets?: readonly (Secret | null)[];
}

export interface Chain {
  /** In chain order: children[0] reads nothing, the last one writes `stdout`. */
  children: Child[];
  /** The first program's stdin, when asked for ("pipe"). */
  stdin: Writable | null;
  stdout: Readable;
  /** SIGKILL to every program still running. */
  kill(): void;
}

/** Starts `links` joined by pipes; the first reads `stdin` ("ignore": /dev/null, "pipe": from this process), the last one's stdout is returned. */
export function startChain(links: readonly ChainLink[], stdin: "ignore" | "pipe" = "ignore"): Chain {
  if (links.length === 0) throw new Error("startChain needs at least one program");
  const children: Child[] = [];
  try {
    for (let i = links.length - 1; i >= 0; i--) {
      const link = links[i] as ChainLink;
      const next = children[0];
      const stdout = next === undefined ? "pipe" : (next.stdin as Writable);
      const child = start(link.program, link.args, { env: link.env, secrets: link.secrets, stdin: i === 0 ? stdin : "pipe", stdout });
      // The child holds a duplicate of the pipe now; closing ours (close, not shutdown) leaves it the only writer.
      if (next !== undefined) (next.stdin as Writable).destroy();
      children.unshift(child);
    }
  } catch (err) {
    for (const c of children) c.kill();
    throw err;
  }
  const last = children[children.length - 1] as Child;
  return {
    children,
    stdin: (children[0] as Child).stdin,
    stdout: last.stdout as Readable,
    kill() {
      for (const c of children) c.kill();
    },
  };
}
