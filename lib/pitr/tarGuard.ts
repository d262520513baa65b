// A base backup's tar comes from BACKUP_DIR, which other hosts can write: before any member
// reaches `tar -x`, its header is checked here, in the stream, and the stream fails at the
// first member that is not what pg_basebackup writes. pg_basebackup writes plain ustar
// (a 100-byte name plus the 155-byte prefix; it refuses longer names), regular files and
// directories, and symlinks only for tablespaces, which cannot be written to stdout. So a
// member must be a regular file or directory with a relative name of plain components (no
// "..", no ".", no empty ones, after a leading "./"), under a directory member, never a symlink, hard link, device,
// FIFO, GNU long name or pax header. A header is passed on only after it was checked.
import { Transform } from "node:stream";
import type { TransformCallback } from "node:stream";

const BLOCK = 512;

export class TarMemberError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TarMemberError";
  }
}

function field(h: Buffer, offset: number, length: number): string {
  const raw = h.subarray(offset, offset + length);
  const end = raw.indexOf(0);
  return raw.subarray(0, end < 0 ? length : end).toString("utf8");
}

/** Size field: octal text, or base-256 (high bit set) for members of 8 GiB and more. */
function size(h: Buffer): number {
  const raw = h.subarray(124, 136);
  if (((raw[0] ?? 0) & 0x80) !== 0) {
    let n = 0;
    for (let i = 1; i < raw.length; i++) n = n * 256 + (raw[i] ?? 0);
    return n;
  }
  const text = field(h, 124, 12).trim();
  if (!/^[0-7]*$/.test(text)) throw new TarMemberError(`a tar header has a malformed size field ${JSON.stringify(text)}`);
  return text === "" ? 0 : parseInt(text, 8);
}

function checksumOk(h: Buffer): boolean {
  const recorded = parseInt(field(h, 148, 8).trim(), 8);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (h[i] ?? 0);
  return sum === recorded;
}

/** Why `name` may not be extracted, or null. */
export function memberNameProblem(name: string): string | null {
  const trimmed = name.replace(/\/$/, "");
  if (trimmed === "" || trimmed === ".") return "an empty name";
  if (name.startsWith("/")) return "an absolute path";
  for (const part of trimmed.split("/")) {
    if (part === "..") return `a ".." component`;
    if (part === "" || part === ".") return "an empty or \".\" component";
  }
  if ([...name].some((ch) => ch.charCodeAt(0) < 0x20)) return "a control character";
  return null;
}

/** The checking stream; `members` counts the members it let through. */
export class TarGuard extends Transform {
  members = 0;
  private pending: Buffer = Buffer.alloc(0);
  /** Bytes of the current member's data (padded to blocks) still to pass through unchecked. */
  private dataLeft = 0;
  private ended = false;
  private readonly dirs = new Set<string>();

  constructor() {
    super({ highWaterMark: 1 << 20 });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    try {
      this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
      this.drain();
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  override _flush(done: TransformCallback): void {
    if (!this.ended || this.dataLeft > 0) done(new TarMemberError("the tar stream ends before its end-of-archive blocks: the base backup is truncated"));
    else done();
  }

  private drain(): void {
    while (this.pending.length > 0) {
      if (this.ended) {
        // After the end-of-archive blocks only zero padding may follow.
        if (this.pending.some((b) => b !== 0)) throw new TarMemberError("data follows the tar's end-of-archive blocks");
        this.push(this.pending);
        this.pending = Buffer.alloc(0);
        return;
      }
      if (this.dataLeft > 0) {
        const n = Math.min(this.dataLeft, this.pending.length);
        this.push(this.pending.subarray(0, n));
        this.pending = this.pending.subarray(n);
        this.dataLeft -= n;
        continue;
      }
      if (this.pending.length < BLOCK) return;
      const header = this.pending.subarray(0, BLOCK);
      this.pending = this.pending.subarray(BLOCK);
      if (header.every((b) => b === 0)) {
        this.ended = true;
      } else {
        this.dataLeft = Math.ceil(this.check(header) / BLOCK) * BLOCK;
      }
      this.push(header);
    }
  }

  /** Checks one header; returns the member's data size. */
  private check(h: Buffer): number {
    if (!checksumOk(h)) throw new TarMemberError(`tar header ${this.members + 1} has a bad checksum: the base backup is corrupt or not a tar`);
    if (field(h, 257, 6) !== "ustar") throw new TarMemberError(`tar member ${this.members + 1} is not in ustar format, which is all pg_basebackup writes`);
    const prefix = field(h, 345, 155);
    // The server writes "./pg_wal/archive_status" with its "./"; the rest has none.
    const name = (prefix === "" ? field(h, 0, 100) : `${prefix}/${field(h, 0, 100)}`).replace(/^(\.\/)+(?=.)/, "");
    const type = String.fromCharCode(h[156] ?? 0);
    const problem = memberNameProblem(name);
    if (problem !== null) throw new TarMemberError(`tar member ${JSON.stringify(name)} has ${problem}; refused, nothing of the base backup is used`);
    const clean = name.replace(/\/$/, "");
    const parent = clean.includes("/") ? clean.slice(0, clean.lastIndexOf("/")) : null;
    if (parent !== null && !this.dirs.has(parent)) {
      throw new TarMemberError(`tar member ${JSON.stringify(name)} comes before a directory member for ${JSON.stringify(parent)}, which pg_basebackup always writes first; refused`);
    }
    if (type === "5") this.dirs.add(clean);
    else if (type !== "0" && type !== "\0") {
      const kind = type === "2" ? "a symlink" : type === "1" ? "a hard link" : `of type ${JSON.stringify(type)}`;
      throw new TarMemberError(`tar member ${JSON.stringify(name)} is ${kind}; a base backup written to one stream holds only files and directories, so it is refused`);
    } else if (this.dirs.has(clean)) {
      throw new TarMemberError(`tar member ${JSON.stringify(name)} repeats a directory as a file; refused`);
    }
    this.members++;
    return type === "5" ? 0 : size(h);
  }
}
