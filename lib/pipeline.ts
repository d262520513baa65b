// source -> compressor process -> sha256 (in-process, on the compressed bytes) -> file.
// On any failure every stage is stopped and the error that explains it is reported:
// a storage errno first, then the dump's own error, then the compressor's.
import { createHash } from "node:crypto";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Program } from "./compression.js";
import { TaskError, errnoCode } from "./errors.js";
import { ProcessError, spawnFilter, toProcessError } from "./proc.js";
import type { PartialFile } from "./storage.js";

const STORAGE_ERRNOS = new Set(["ENOSPC", "EDQUOT", "EACCES", "EPERM", "EROFS", "EIO", "EFBIG"]);

export interface WriteResult {
  sha256: string;
  bytes: number;
}

export interface WriteProgress {
  compressedBytes: number;
}

function rank(err: unknown): number {
  if (STORAGE_ERRNOS.has(errnoCode(err) ?? "")) return 0;
  if (err instanceof TaskError) return 1;
  if (err instanceof ProcessError) return 2;
  return 3;
}

/** Writes `source` through `compressor` (null: stored as is) into the partial file. */
export async function writeCompressed(
  source: AsyncIterable<Buffer>,
  compressor: Program | null,
  partial: PartialFile,
  env: NodeJS.ProcessEnv,
  progress: WriteProgress,
): Promise<WriteResult> {
  const hash = createHash("sha256");
  const hasher = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      progress.compressedBytes += chunk.length;
      done(null, chunk);
    },
  });
  // The stream owns and closes the handle (a FileHandle cannot be closed while a stream
  // holds it); commitPartial reopens the file to fsync it.
  const file = partial.handle.createWriteStream({ autoClose: true, highWaterMark: 1 << 20 });
  const closed = new Promise<void>((resolve) => file.once("close", () => resolve()));
  const input = Readable.from(source, { objectMode: false, highWaterMark: 1 << 20 });
  const stages: Promise<unknown>[] = [];
  const child = compressor === null ? null : spawnFilter(compressor.program, compressor.args, env);
  if (child === null) {
    stages.push(pipeline(input, hasher, file));
  } else {
    stages.push(pipeline(input, child.stdin));
    stages.push(pipeline(child.stdout, hasher, file));
    stages.push(
      child.catch((err: unknown) => {
        throw toProcessError(compressor?.program ?? "compressor", err);
      }),
    );
  }
  const settled = await new Promise<PromiseSettledResult<unknown>[]>((resolve) => {
    let failed = false;
    for (const s of stages) {
      s.catch(() => {
        if (failed) return;
        failed = true;
        // Stop every other stage so the first failure does not leave a process or stream hanging.
        input.destroy();
        child?.kill("SIGKILL");
        file.destroy();
      });
    }
    void Promise.allSettled(stages).then(resolve);
  });
  if (!file.destroyed) file.destroy();
  await closed;
  const errors = settled.filter((s): s is PromiseRejectedResult => s.status === "rejected").map((s) => s.reason as unknown);
  if (errors.length > 0) throw errors.sort((a, b) => rank(a) - rank(b))[0];
  return { sha256: hash.digest("hex"), bytes: progress.compressedBytes };
}
