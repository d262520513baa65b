// Reading a backup file back as SQL: the file streamed through the codec's (parallel)
// decompressor. The caller consumes `stream` and must await `done`, which rejects when
// the decompressor fails (a truncated or corrupt file).
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { decompressorFor, filterEnv } from "../backup/compression.js";
import type { Codec } from "../core/codec.js";
import { spawnFilter } from "../core/proc.js";
import { readStreamNoFollow } from "../core/noFollow.js";

export interface SqlStream {
  stream: Readable;
  done: Promise<void>;
  /** Stops reading early (kills the decompressor); `done` then settles without an error. */
  cancel(): void;
}

export function openSqlStream(path: string, codec: Codec, threads: number, env: NodeJS.ProcessEnv): SqlStream {
  const file = readStreamNoFollow(path);
  const prog = decompressorFor(codec, threads, env);
  if (prog === null) {
    const done = new Promise<void>((resolve, reject) => {
      file.once("end", () => resolve());
      file.once("close", () => resolve());
      file.once("error", reject);
    });
    return { stream: file, done, cancel: () => file.destroy() };
  }
  let cancelled = false;
  const child = spawnFilter(prog.program, prog.args, filterEnv(env));
  const feed = pipeline(file, child.stdin as NonNullable<typeof child.stdin>).catch((err: unknown) => {
    if (!cancelled) throw err;
  });
  const exited = child.done.catch((err: unknown) => {
    if (!cancelled) throw err;
  });
  const done = Promise.all([exited, feed.catch((err: unknown) => exited.then(() => Promise.reject(err as Error)))]).then(() => undefined);
  return {
    stream: child.stdout as Readable,
    done,
    cancel() {
      cancelled = true;
      file.destroy();
      child.kill();
    },
  };
}
