// The one reader of a base backup's tar: it parses each header, decides with tarPolicy.ts, and
// writes the member itself, so what was checked is exactly what is written (no second program
// parses the stream again). Everything lands below `into`, a folder the caller created 0700 for
// this restore, which nothing else writes to: a directory is created with mkdir (failing on
// anything already there), a file with O_CREAT|O_EXCL|O_NOFOLLOW, and a member's parent must
// be a directory this reader created, so no path can pass through a symlink or leave `into`.
// Files get 0600 and folders 0700 whatever the tar says (no setuid, setgid or sticky bit).
// The first refusal stops the read before a byte of that member is written.
import { constants } from "node:fs";
import { chmod, mkdir, open } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "../core/log.js";
import { humanBytes } from "../core/format.js";
import { BACKUP_MANIFEST_MEMBER } from "../base/backup.js";
import type { BackupManifestSeen } from "./backupManifestTap.js";
import { BackupManifestTap } from "./backupManifestTap.js";
import { BLOCK, TarMemberError, decideMember, isEndBlock, readHeader } from "./tarPolicy.js";

const CREATE_FILE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
export const FILE_MODE = 0o600;
export const DIR_MODE = 0o700;
const PROGRESS_MS = 5000;

export interface Extracted {
  /** Bytes of the tar read (headers and padding included). */
  rawBytes: number;
  members: number;
  /** The tar's backup_manifest, or null when it had none. */
  backupManifest: BackupManifestSeen | null;
}

interface Current {
  name: string;
  fh: FileHandle | null;
  left: number;
  pad: number;
  manifest: BackupManifestTap | null;
}

/** Extracts the tar `stream` into the existing, empty folder `into`. Throws TarMemberError naming the member it refused. */
export async function extractTar(stream: AsyncIterable<Buffer>, into: string, log: Logger): Promise<Extracted> {
  const dirs = new Set<string>();
  const names = new Set<string>();
  const header = Buffer.alloc(BLOCK);
  let fill = 0;
  // An object, not a variable: startMember sets it from inside a closure.
  const st: { cur: Current | null } = { cur: null };
  let ended = false;
  let rawBytes = 0;
  let members = 0;
  let manifest: BackupManifestSeen | null = null;
  let last = Date.now();

  const finishMember = async (c: Current) => {
    if (c.fh !== null) await c.fh.close();
    if (c.manifest !== null) manifest = c.manifest.finish();
  };

  const startMember = async (h: Buffer) => {
    const parsed = readHeader(h, members + 1);
    const decision = decideMember(parsed, { dirs, names });
    if ("problem" in decision) throw new TarMemberError(decision.problem);
    members++;
    names.add(parsed.name);
    const path = join(into, parsed.name);
    if (decision.kind === "dir") {
      await mkdir(path, { mode: DIR_MODE });
      await chmod(path, DIR_MODE);
      dirs.add(parsed.name);
      return;
    }
    const fh = await open(path, CREATE_FILE, FILE_MODE);
    try {
      await fh.chmod(FILE_MODE);
    } catch (err) {
      await fh.close();
      throw err;
    }
    const c: Current = { name: parsed.name, fh, left: parsed.size, pad: (BLOCK - (parsed.size % BLOCK)) % BLOCK, manifest: parsed.name === BACKUP_MANIFEST_MEMBER ? new BackupManifestTap() : null };
    if (c.left === 0) await finishMember(c);
    st.cur = c;
  };

  try {
    for await (const chunk of stream) {
      rawBytes += chunk.length;
      let at = 0;
      while (at < chunk.length) {
        if (ended) {
          // After the end-of-archive blocks only zero padding may follow.
          if (chunk.subarray(at).some((b) => b !== 0)) throw new TarMemberError("data follows the tar's end-of-archive blocks");
          break;
        }
        const c = st.cur;
        if (c !== null && c.left > 0) {
          const piece = chunk.subarray(at, at + Math.min(c.left, chunk.length - at));
          c.manifest?.update(piece);
          await (c.fh as FileHandle).write(piece);
          c.left -= piece.length;
          at += piece.length;
          if (c.left === 0) await finishMember(c);
          continue;
        }
        if (c !== null && c.pad > 0) {
          const n = Math.min(c.pad, chunk.length - at);
          c.pad -= n;
          at += n;
          continue;
        }
        const n = Math.min(BLOCK - fill, chunk.length - at);
        chunk.copy(header, fill, at, at + n);
        fill += n;
        at += n;
        if (fill < BLOCK) continue;
        fill = 0;
        st.cur = null;
        if (isEndBlock(header)) ended = true;
        else await startMember(header);
      }
      if (Date.now() - last >= PROGRESS_MS) {
        last = Date.now();
        log.info({ rawBytes, members }, `extracting: ${humanBytes(rawBytes)}, ${members} files`);
      }
    }
    if (!ended || fill !== 0) throw new TarMemberError("the tar stream ends before its end-of-archive blocks: the base backup is truncated");
  } finally {
    const unfinished = st.cur;
    if (unfinished !== null && unfinished.fh !== null && unfinished.left > 0) await unfinished.fh.close().catch(() => undefined);
  }
  return { rawBytes, members, backupManifest: manifest };
}
