// dump -> compressor process [-> age] -> sha256 whole and per chunk (in-process, on the stored bytes) -> file.
// The dump writes into the compressor's stdin itself (see dump.ts); here the compressed
// side is hashed and written. On any failure every stage is stopped and the error that
// explains it is reported: a storage errno first, then the dump's own error, then the
// compressor's.
import type { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { StoredHash } from "../store/chunks.js";
import { hashTap } from "../store/checksum.js";
import { settleStages } from "../core/concurrency.js";
import type { ChunkList } from "../store/chunks.js";
import type { Program } from "./compression.js";
import { filterEnv } from "./compression.js";
import { ExitCode, TaskError, errnoCode } from "../core/errors.js";
import { ProcessError, isSecondaryFailure, spawnFilter } from "../core/proc.js";
import { SinkClosedError } from "./sink.js";
import type { PartialFile } from "../store/storage.js";
import { isStorageErrno } from "../store/backupDir.js";

export interface WriteResult {
  sha256: string;
  bytes: number;
  /** The stored bytes' chunk hashes, for the manifest (lib/store/chunks.ts). */
  chunks: ChunkList;
}

export interface WriteProgress {
  compressedBytes: number;
}

function rank(err: unknown, tornDown: boolean): number {
  const code = errnoCode(err) ?? "";
  if (isStorageErrno(err)) return 0;
  // A stream cut short by the teardown below after another stage failed: that stage explains it.
  if (code === "ERR_STREAM_PREMATURE_CLOSE") return 5;
  if (err instanceof TaskError) return 1;
  // A filter killed by the teardown below (kill() is SIGKILL) did not fail on its own.
  if (err instanceof ProcessError) return isSecondaryFailure(err) || (tornDown && err.signal !== undefined) ? 5 : 2;
  if (err instanceof SinkClosedError) return 4;
  return 3;
}

/**
 * Runs `produce` with a sink (the first filter's stdin; with no filters, the hasher in front
 * of the file) and writes what comes out of the last filter into the partial file. The filters
 * are the compressor, then age when the backup is encrypted.
 */
export async function writeCompressed(
  produce: (sink: Writable) => Promise<void>,
  filters: readonly Program[],
  partial: PartialFile,
  env: NodeJS.ProcessEnv,
  progress: WriteProgress,
): Promise<WriteResult> {
  const hash = new StoredHash();
  const hasher = hashTap(hash, (chunk) => (progress.compressedBytes += chunk.length));
  // The stream owns and closes the handle (a FileHandle cannot be closed while a stream
  // holds it); commitPartial reopens the file to fsync it.
  const file = partial.handle.createWriteStream({ autoClose: true, highWaterMark: 1 << 20 });
  const closed = new Promise<void>((resolve) => file.once("close", () => resolve()));
  const children = filters.map((f) => spawnFilter(f.program, f.args, filterEnv(env)));
  const first = children[0];
  const last = children[children.length - 1];
  const sink = first === undefined ? hasher : (first.stdin as Writable);
  // In chain order, so among equal ranks the upstream failure is reported (a stage fed short input fails after it).
  const stages: Promise<unknown>[] = [];
  children.forEach((child, i) => {
    const next = children[i + 1];
    if (next !== undefined) stages.push(pipeline(child.stdout as Readable, next.stdin as Writable));
    stages.push(child.done);
  });
  stages.push(last === undefined ? pipeline(hasher, file) : pipeline(last.stdout as Readable, hasher, file));
  stages.push(
    produce(sink).then(() => {
      sink.end();
    }),
  );
  const { errors, tornDown } = await settleStages(stages, () => {
    // Stop every other stage so the first failure does not leave a process or stream hanging.
    sink.destroy();
    for (const child of children) child.kill();
    file.destroy();
  });
  if (!file.destroyed) file.destroy();
  await closed;
  const cause = errors.sort((a, b) => rank(a, tornDown) - rank(b, tornDown))[0];
  if (cause instanceof SinkClosedError && filters[0] !== undefined) {
    // Nothing else failed: the compressor exited 0 without reading all of its input.
    throw new TaskError(ExitCode.failed, `${filters[0].program} exited before reading the whole dump (its output would be incomplete)`, { cause });
  }
  if (errors.length > 0) throw cause;
  const { sha256, chunks } = hash.finish();
  return { sha256, bytes: progress.compressedBytes, chunks };
}
