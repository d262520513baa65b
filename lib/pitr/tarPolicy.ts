// What a base backup's tar may hold, decided per member header before the reader writes a byte
// of it (lib/pitr/tarExtract.ts acts on these decisions; the two are one reader). pg_basebackup
// writes POSIX ustar (src/port/tar.c: names of at most 99 bytes in the name field, no prefix, no
// pax or GNU long-name headers; sizes of 8 GiB and more in base-256), regular files and
// directories, an empty tablespace_map, and symlinks only for tablespaces, which one tar on
// stdout cannot hold. So a member must be a regular file or a directory with a relative name
// of plain components (after a leading "./"), under a directory member that came before it,
// named once. Modes, owners and times in the tar are not used: the reader writes files 0600 and
// folders 0700, owned by the task's user (or --owner).

export const BLOCK = 512;

export class TarMemberError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TarMemberError";
  }
}

export interface TarHeader {
  /** The name as the header gives it (prefix joined), before normalising. */
  raw: string;
  /** Without a leading "./" and a trailing "/". */
  name: string;
  /** The type flag: "0" (or NUL) file, "5" directory, anything else refused. */
  type: string;
  size: number;
}

export type MemberKind = "file" | "dir";

function field(h: Buffer, offset: number, length: number): string {
  const raw = h.subarray(offset, offset + length);
  const end = raw.indexOf(0);
  return raw.subarray(0, end < 0 ? length : end).toString("utf8");
}

/** Size field: octal text, or base-256 (high bit set) for members of 8 GiB and more. */
function sizeOf(h: Buffer): number {
  const raw = h.subarray(124, 136);
  if (((raw[0] ?? 0) & 0x80) !== 0) {
    let n = (raw[0] ?? 0) & 0x7f;
    for (let i = 1; i < raw.length; i++) n = n * 256 + (raw[i] ?? 0);
    if (!Number.isSafeInteger(n)) throw new TarMemberError("a tar header has a size beyond what any file holds");
    return n;
  }
  const text = field(h, 124, 12).trim();
  if (!/^[0-7]*$/.test(text)) throw new TarMemberError(`a tar header has a malformed size field ${JSON.stringify(text)}`);
  return text === "" ? 0 : parseInt(text, 8);
}

function checksumOk(h: Buffer): boolean {
  const text = field(h, 148, 8).trim();
  if (!/^[0-7]+$/.test(text)) return false;
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (h[i] ?? 0);
  return sum === parseInt(text, 8);
}

export function isEndBlock(h: Buffer): boolean {
  return h.every((b) => b === 0);
}

/** Parses one 512-byte header (`index`: the member's 1-based position, for messages). */
export function readHeader(h: Buffer, index: number): TarHeader {
  if (!checksumOk(h)) throw new TarMemberError(`tar header ${index} has a bad checksum: the base backup is corrupt or not a tar`);
  const magic = h.toString("latin1", 257, 263);
  if (magic !== "ustar\0" && magic !== "ustar ") throw new TarMemberError(`tar member ${index} is not in ustar format, which is all pg_basebackup writes`);
  const prefix = magic === "ustar\0" ? field(h, 345, 155) : "";
  const raw = prefix === "" ? field(h, 0, 100) : `${prefix}/${field(h, 0, 100)}`;
  // The server writes "./pg_wal/archive_status/" with its "./"; the rest has none.
  const name = raw.replace(/^(\.\/)+(?=.)/, "").replace(/\/$/, "");
  return { raw, name, type: String.fromCharCode(h[156] ?? 0), size: sizeOf(h) };
}

/** Why `name` may not be extracted, or null. */
export function memberNameProblem(name: string): string | null {
  const trimmed = name.replace(/\/$/, "");
  if (trimmed === "" || trimmed === ".") return "an empty name";
  if (name.startsWith("/")) return "an absolute path";
  if (Buffer.byteLength(name) > 255) return "a name longer than pg_basebackup writes";
  for (const part of trimmed.split("/")) {
    if (part === "..") return `a ".." component`;
    if (part === "" || part === ".") return 'an empty or "." component';
  }
  if ([...name].some((ch) => ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f)) return "a control character";
  return null;
}

const TYPE_NAMES: Record<string, string> = {
  "1": "a hard link",
  "2": "a symlink (pg_basebackup writes those only for tablespaces, which a one-tar base backup cannot hold)",
  "3": "a character device",
  "4": "a block device",
  "6": "a FIFO",
  "7": "a contiguous file",
  x: "a pax extended header, which pg_basebackup never writes",
  g: "a pax global header, which pg_basebackup never writes",
  L: "a GNU long-name header (pg_basebackup's names are at most 99 bytes)",
  K: "a GNU long-link header, which pg_basebackup never writes",
};

/** What the reader has written so far: the directories (a member's parent must be one) and every name. */
export interface TarState {
  dirs: ReadonlySet<string>;
  names: ReadonlySet<string>;
}

/**
 * Whether the member may be written, and as what: its kind, or the refusal naming it. Pure;
 * `state` is what came before it in the same tar.
 */
export function decideMember(h: TarHeader, state: TarState): { kind: MemberKind } | { problem: string } {
  const named = `tar member ${JSON.stringify(h.raw)}`;
  const kind: MemberKind | null = h.type === "0" || h.type === "\0" ? "file" : h.type === "5" ? "dir" : null;
  if (kind === null) return { problem: `${named} is ${TYPE_NAMES[h.type] ?? `of type ${JSON.stringify(h.type)}`}; a base backup written to one stream holds only files and directories` };
  const nameProblem = memberNameProblem(h.name === "" ? h.raw : h.name);
  if (nameProblem !== null) return { problem: `${named} has ${nameProblem}` };
  if (state.names.has(h.name)) return { problem: `${named} appears twice; pg_basebackup writes every file once` };
  const parent = h.name.includes("/") ? h.name.slice(0, h.name.lastIndexOf("/")) : null;
  if (parent !== null && !state.dirs.has(parent)) return { problem: `${named} comes before a directory member for ${JSON.stringify(parent)}, which pg_basebackup always writes first` };
  if (kind === "dir" && h.size !== 0) return { problem: `${named} is a directory with ${h.size} bytes of data` };
  // Non-empty, it would make the server create symlinks in pg_tblspc to wherever its lines point.
  if (kind === "file" && h.name === "tablespace_map" && h.size !== 0) {
    return { problem: `${named} is not empty: it lists tablespaces, which a one-tar base backup cannot hold, and the server would create a symlink for each line` };
  }
  return { kind };
}
