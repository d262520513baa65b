// Reading a backup file back as SQL: the file streamed through the codec's (parallel)
// decompressor. The caller consumes `stream` and must await `done`, which rejects when
// the decompressor fails (a truncated or corrupt file). Given a hash, the file's bytes as
// read are fed to it too, so a caller that must both checksum and read a file reads it once.
import type { Hash } from "node:crypto";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { decompressorFor, filterEnv } from "../backup/compression.js";
import type { Codec } from "../core/codec.js";
import { spawnFilter } from "../core/proc.js";
import { readStreamNoFollow } from "../core/noFollow.js";
import { hashTap } from "../store/checksum.js";

export interface SqlStream {
  stream: Readable;
  done: Promise<void>;
  /** Stops reading early (kills the decompressor); `done` then settles without an error. */
  cancel(): void;
}

export function openSqlStream(path: string, codec: Codec, threads: number, env: NodeJS.ProcessEnv, hash?: Hash): SqlStream {
  const file = readStreamNoFollow(path);
  const tap = hash === undefined ? null : hashTap(hash);
  const prog = decompressorFor(codec, threads, env);
  if (prog === null && tap === null) {
    const done = new Promise<void>((resolve, reject) => {
      file.once("end", () => resolve());
      file.once("close", () => resolve());
      file.once("error", reject);
    });
    return { stream: file, done, cancel: () => file.destroy() };
  }
  let cancelled = false;
  const unlessCancelled = (err: unknown) => {
    if (!cancelled) throw err;
  };
  const child = prog === null ? null : spawnFilter(prog.program, prog.args, filterEnv(env));
  const sink = child === null ? null : (child.stdin as NonNullable<typeof child.stdin>);
  const stages = [file, ...(tap === null ? [] : [tap]), ...(sink === null ? [] : [sink])];
  const feed = pipeline(stages).catch(unlessCancelled);
  const exited = child === null ? Promise.resolve() : child.done.catch(unlessCancelled);
  const done = Promise.all([exited, feed.catch((err: unknown) => exited.then(() => Promise.reject(err as Error)))]).then(() => undefined);
  return {
    stream: child === null ? (tap as Readable) : (child.stdout as Readable),
    done,
    cancel() {
      cancelled = true;
      file.destroy();
      tap?.destroy();
      child?.kill();
    },
  };
}
