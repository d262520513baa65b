// Reading a stored file once, from one descriptor, handing on only bytes that were checked.
// With a chunk list (lib/store/chunks.ts) every chunk is hashed as it is read and passed on
// only when it matches, so a swap, truncation or flipped byte stops the stream before the
// first unverified byte reaches a decompressor, age, psql or tar. A file written before chunk
// lists existed has only its whole-file sha256: its bytes flow as they are read, and the
// stream fails at its end, before it ends cleanly, when the hash differs; callers act on a
// read only once it ended cleanly (nothing is renamed into place before that).
// The file is opened O_NOFOLLOW|O_NONBLOCK and must be a regular file: a symlink or a FIFO
// planted under a backup's name is refused, and a rename over the path after the open changes
// nothing, since the descriptor keeps reading what was opened.
import { createHash } from "node:crypto";
import type { Hash } from "node:crypto";
import { constants } from "node:fs";
import { open } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { Readable } from "node:stream";
import type { ChunkList } from "./chunks.js";

/** What the bytes of a file must be: its chunks, else its whole sha256, else nothing is known. */
export interface Expectation {
  /** The file's name, for messages. */
  name: string;
  chunks: ChunkList | null;
  /** The whole file's sha256 (the .sha256 sidecar's); checked only when there is no chunk list. */
  sha256: string | null;
}

/** How a read was checked: chunk by chunk, as a whole at its end, or not at all (no sidecar). */
export type Verification = "chunks" | "whole" | "none";

export function verificationOf(expect: Expectation): Verification {
  return expect.chunks !== null ? "chunks" : expect.sha256 !== null ? "whole" : "none";
}

/** The bytes read are not the bytes recorded: the file changed after the backup, or while it was read. */
export class IntegrityError extends Error {
  constructor(
    readonly file: string,
    /** The 1-based chunk that failed, or null for a whole-file mismatch. */
    readonly chunk: number | null,
    message: string,
  ) {
    super(message);
    this.name = "IntegrityError";
  }
}

const WHOLE_READ_BYTES = 1 << 20;

/**
 * For tests only: awaited before each chunk is read, with the number of chunks already read and
 * handed on, so a file can be changed between two chunks deterministically.
 */
export const readHooks: { beforeChunk: ((name: string, chunksRead: number) => Promise<void>) | null } = { beforeChunk: null };

class VerifiedReader extends Readable {
  private fh: FileHandle | null = null;
  private pos = 0;
  private index = 0;
  private readonly whole: Hash | null;

  constructor(
    private readonly path: string,
    private readonly expect: Expectation,
  ) {
    super({ highWaterMark: 1 });
    this.whole = expect.chunks === null && expect.sha256 !== null ? createHash("sha256") : null;
  }

  /** Bytes read from the file so far. */
  get bytesRead(): number {
    return this.pos;
  }

  override _construct(callback: (err?: Error | null) => void): void {
    open(this.path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).then(
      async (fh) => {
        this.fh = fh;
        const info = await fh.stat();
        if (!info.isFile()) throw Object.assign(new Error(`${this.path} is not a regular file`), { code: "EINVAL" });
        callback();
      },
      callback,
    ).catch(callback);
  }

  override _read(): void {
    this.readPiece().catch((err: unknown) => this.destroy(err as Error));
  }

  private async readPiece(): Promise<void> {
    const { chunks, name } = this.expect;
    if (readHooks.beforeChunk !== null && chunks !== null) await readHooks.beforeChunk(name, this.index);
    const size = chunks?.size ?? WHOLE_READ_BYTES;
    const buf = Buffer.allocUnsafe(size);
    let n = 0;
    for (;;) {
      const { bytesRead } = await (this.fh as FileHandle).read(buf, n, size - n, this.pos + n);
      if (bytesRead === 0) break;
      n += bytesRead;
      if (n === size) break;
    }
    const data = buf.subarray(0, n);
    const start = this.pos;
    this.pos += n;
    if (chunks === null) return this.passWhole(data);
    const count = chunks.sha256.length;
    if (n === 0) {
      if (this.index !== count) throw new IntegrityError(name, this.index + 1, `${name}: checksum mismatch: it ends after ${this.index} of its ${count} chunks (${start} bytes), so it was truncated after the backup`);
      this.push(null);
      return;
    }
    const want = chunks.sha256[this.index];
    if (want === undefined) throw new IntegrityError(name, this.index + 1, `${name}: checksum mismatch: it has more bytes than the ${count} chunks its manifest records, so it was changed after the backup`);
    const got = createHash("sha256").update(data).digest("hex");
    if (got !== want || (n < size && this.index !== count - 1)) {
      const what = got !== want ? "" : " (it is short)";
      throw new IntegrityError(name, this.index + 1, `${name}: checksum mismatch in chunk ${this.index + 1} of ${count} (bytes ${start}–${start + n - 1})${what}: the file was changed after the backup, or while it was read`);
    }
    this.index++;
    // Handed on in slices: readers downstream (and their copies) then hold 1 MiB at a time, not a whole chunk.
    for (let at = 0; at < n; at += WHOLE_READ_BYTES) this.push(data.subarray(at, Math.min(n, at + WHOLE_READ_BYTES)));
  }

  private passWhole(data: Buffer): void {
    if (data.length > 0) {
      this.whole?.update(data);
      this.push(data);
      return;
    }
    if (this.whole !== null) {
      const got = this.whole.digest("hex");
      if (got !== this.expect.sha256) {
        throw new IntegrityError(this.expect.name, null, `${this.expect.name}: checksum mismatch (file ${got.slice(0, 12)}…, recorded ${String(this.expect.sha256).slice(0, 12)}…): the file was changed after the backup, or while it was read`);
      }
    }
    this.push(null);
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    const fh = this.fh;
    this.fh = null;
    if (fh === null) return callback(err);
    fh.close().then(
      () => callback(err),
      () => callback(err),
    );
  }
}

export interface VerifiedRead {
  stream: Readable;
  verification: Verification;
  /** Bytes read from the file so far (progress lines, and the 1x-per-restore measurement). */
  bytesRead(): number;
}

/** Opens `path` for one verified read (see the top of this file). Errors, IntegrityError included, come through the stream. */
export function openVerified(path: string, expect: Expectation): VerifiedRead {
  const reader = new VerifiedReader(path, expect);
  return { stream: reader, verification: verificationOf(expect), bytesRead: () => reader.bytesRead };
}
