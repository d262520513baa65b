// Chunk hashes: the sha256 of every CHUNK_BYTES piece of a stored file (the last one shorter),
// recorded in its manifest, which the signed .sha256 covers. A reader checks each piece in the
// read it acts on and hands it on only once it matched (lib/store/verifiedRead.ts), so nothing
// unverified reaches a decompressor, age, psql or tar, and a file swapped, truncated or changed
// while it is read stops at the first bad chunk. The whole-file sha256 stays beside it for
// `sha256sum -c`.
import { createHash } from "node:crypto";
import type { Hash } from "node:crypto";

/** 8 MiB: large enough that hashing per chunk costs nothing measurable, small enough to hold one in memory per file read. */
export const CHUNK_BYTES = 8 * 1024 * 1024;

/** What a manifest records of a stored file's chunks. */
export interface ChunkList {
  /** Bytes per chunk; every chunk but the last has exactly this many. */
  size: number;
  /** sha256 (hex) of each chunk, in file order; empty for an empty file. */
  sha256: string[];
}

/** The hashes of a stream as it is written: the whole file's and each chunk's. */
export class StoredHash {
  private readonly whole: Hash = createHash("sha256");
  private piece: Hash = createHash("sha256");
  private inPiece = 0;
  private readonly list: string[] = [];
  bytes = 0;

  constructor(private readonly chunkBytes: number = CHUNK_BYTES) {}

  update(data: Buffer): void {
    this.whole.update(data);
    this.bytes += data.length;
    let at = 0;
    while (at < data.length) {
      const take = Math.min(this.chunkBytes - this.inPiece, data.length - at);
      this.piece.update(at === 0 && take === data.length ? data : data.subarray(at, at + take));
      this.inPiece += take;
      at += take;
      if (this.inPiece === this.chunkBytes) this.closePiece();
    }
  }

  /** The whole file's sha256 and the chunk list; call once, after the last update. */
  finish(): { sha256: string; bytes: number; chunks: ChunkList } {
    if (this.inPiece > 0) this.closePiece();
    return { sha256: this.whole.digest("hex"), bytes: this.bytes, chunks: { size: this.chunkBytes, sha256: this.list } };
  }

  private closePiece(): void {
    this.list.push(this.piece.digest("hex"));
    this.piece = createHash("sha256");
    this.inPiece = 0;
  }
}

const SHA256 = /^[0-9a-f]{64}$/;
/** Chunks smaller than 64 KiB would make a manifest's list huge; larger than 64 MiB, a reader's memory. */
const MIN_CHUNK = 64 * 1024;
const MAX_CHUNK = 64 * 1024 * 1024;

/** Why a manifest's `chunks` field cannot be used for a file of `bytes` bytes, or null. */
export function chunkListProblem(v: unknown, bytes: number): string | null {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return "is not an object with size and sha256";
  const { size, sha256 } = v as Record<string, unknown>;
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < MIN_CHUNK || size > MAX_CHUNK) {
    return `has size ${JSON.stringify(size)}, not a whole number of bytes between ${MIN_CHUNK} and ${MAX_CHUNK}`;
  }
  if (!Array.isArray(sha256) || !sha256.every((h) => typeof h === "string" && SHA256.test(h))) return "has a sha256 list that is not a list of sha256 hashes";
  const expected = Math.ceil(bytes / size);
  if (sha256.length !== expected) return `lists ${sha256.length} chunk(s), but a file of ${bytes} bytes in chunks of ${size} has ${expected}`;
  return null;
}
