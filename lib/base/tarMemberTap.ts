// Watches a tar stream go by (pg_basebackup's uncompressed output on its way to the
// compressor) and hashes one member, keeping the end of its bytes: the backup_manifest, whose
// sha256 goes into the base manifest and whose tail holds the WAL-Ranges. Only the 512-byte
// headers are parsed; member data is skipped by counting, so the tap costs one hash update
// per chunk of that member and nothing for the others.
import { createHash } from "node:crypto";
import type { Hash } from "node:crypto";

const BLOCK = 512;

export interface TappedMember {
  sha256: string;
  size: number;
  /** The member's last `tailBytes` bytes. */
  tail: Buffer;
}

/** A ustar/GNU size field: octal text, or base-256 when its first byte has the high bit set (members of 8 GiB and more). */
export function tarSize(field: Buffer): number {
  const first = field[0] ?? 0;
  if ((first & 0x80) !== 0) {
    let n = first & 0x7f;
    for (let i = 1; i < field.length; i++) n = n * 256 + (field[i] ?? 0);
    return n;
  }
  const text = field.toString("latin1").replace(/[\0 ]+$/, "").trim();
  if (!/^[0-7]*$/.test(text)) throw new Error(`tar header has a malformed size field ${JSON.stringify(text)}`);
  return text === "" ? 0 : parseInt(text, 8);
}

function headerName(h: Buffer): string {
  const cstr = (b: Buffer) => {
    const end = b.indexOf(0);
    return b.toString("utf8", 0, end === -1 ? b.length : end);
  };
  const name = cstr(h.subarray(0, 100));
  const ustar = h.toString("latin1", 257, 262) === "ustar";
  const prefix = ustar ? cstr(h.subarray(345, 500)) : "";
  return prefix === "" ? name : `${prefix}/${name}`;
}

export class TarMemberTap {
  private header = Buffer.alloc(BLOCK);
  private headerFill = 0;
  /** Bytes of the current member's data still to come, then its padding. */
  private dataLeft = 0;
  private padLeft = 0;
  private ended = false;
  private inMember = false;
  private hash: Hash | null = null;
  private size = 0;
  private tailParts: Buffer[] = [];
  private tailLength = 0;
  private found: TappedMember | null = null;

  constructor(
    private readonly member: string,
    private readonly tailBytes: number,
  ) {}

  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length && !this.ended) {
      if (this.dataLeft > 0) {
        const n = Math.min(this.dataLeft, chunk.length - at);
        if (this.inMember) this.take(chunk.subarray(at, at + n));
        this.dataLeft -= n;
        at += n;
        if (this.dataLeft === 0 && this.inMember) this.finishMember();
      } else if (this.padLeft > 0) {
        const n = Math.min(this.padLeft, chunk.length - at);
        this.padLeft -= n;
        at += n;
      } else {
        const n = Math.min(BLOCK - this.headerFill, chunk.length - at);
        chunk.copy(this.header, this.headerFill, at, at + n);
        this.headerFill += n;
        at += n;
        if (this.headerFill === BLOCK) this.onHeader();
      }
    }
  }

  /** The member as it went by, or null when the stream held no such member. */
  result(): TappedMember | null {
    return this.found;
  }

  private onHeader(): void {
    this.headerFill = 0;
    // An all-zero block ends the archive.
    if (this.header.every((b) => b === 0)) {
      this.ended = true;
      return;
    }
    const size = tarSize(this.header.subarray(124, 136));
    const type = String.fromCharCode(this.header[156] ?? 0);
    this.dataLeft = size;
    this.padLeft = (BLOCK - (size % BLOCK)) % BLOCK;
    this.inMember = (type === "0" || type === "\0") && headerName(this.header) === this.member;
    if (this.inMember) {
      this.hash = createHash("sha256");
      this.size = 0;
      this.tailParts = [];
      this.tailLength = 0;
      if (size === 0) this.finishMember();
    }
  }

  private take(part: Buffer): void {
    this.hash?.update(part);
    this.size += part.length;
    this.tailParts.push(Buffer.from(part));
    this.tailLength += part.length;
    while (this.tailParts.length > 1 && this.tailLength - (this.tailParts[0]?.length ?? 0) >= this.tailBytes) {
      this.tailLength -= this.tailParts.shift()?.length ?? 0;
    }
  }

  private finishMember(): void {
    const all = Buffer.concat(this.tailParts);
    this.found = { sha256: this.hash?.digest("hex") ?? "", size: this.size, tail: all.subarray(Math.max(0, all.length - this.tailBytes)) };
    this.inMember = false;
    this.hash = null;
  }
}
