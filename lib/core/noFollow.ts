// Reading files on a share others can write: a symlink planted there must never redirect a
// read to a file outside BACKUP_DIR, so files are opened O_NOFOLLOW (a symlink fails with
// ELOOP) and a symlink is refused by name.
import { constants, createReadStream } from "node:fs";
import type { ReadStream } from "node:fs";
import { open } from "node:fs/promises";
import { TaskError, errnoCode } from "./errors.js";
import type { ExitCode } from "./errors.js";

export const READ_NOFOLLOW = constants.O_RDONLY | constants.O_NOFOLLOW;

/** A read stream that fails with ELOOP on a symlink. Node hands `flags` to fs.open, which takes numeric flags, though the option is typed string. */
export function readStreamNoFollow(path: string): ReadStream {
  return createReadStream(path, { flags: READ_NOFOLLOW as unknown as string, highWaterMark: 1 << 20 });
}

/** True for the error open(O_NOFOLLOW) gives on a symlink. */
export function isSymlinkError(err: unknown): boolean {
  return errnoCode(err) === "ELOOP";
}

/** The refusal for a symlink where the tool expects its own file or folder. */
export function symlinkRefusal(exitCode: ExitCode, what: string, path: string, cause?: unknown): TaskError {
  return new TaskError(
    exitCode,
    `${what} ${path} is a symlink; it is not followed, because BACKUP_DIR is shared with other hosts and stacks and a planted symlink ` +
      `would send this task to files outside it. Find out who created it, then replace it with a real ${what.includes("folder") ? "folder" : "file"} or remove it`,
    { cause },
  );
}

/** A small regular file's bytes, read without following a symlink; at most `maxBytes`. */
export async function readSmallBytes(path: string, maxBytes: number): Promise<Buffer> {
  // O_NONBLOCK: a FIFO planted there must not hang the task.
  const fh = await open(path, READ_NOFOLLOW | constants.O_NONBLOCK);
  try {
    if (!(await fh.stat()).isFile()) throw Object.assign(new Error(`${path} is not a regular file`), { code: "EINVAL" });
    const buf = Buffer.alloc(maxBytes);
    const { bytesRead } = await fh.read(buf, 0, maxBytes, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** A small regular file's text, read without following a symlink; at most `maxBytes`. */
export async function readSmallFile(path: string, maxBytes: number): Promise<string> {
  return (await readSmallBytes(path, maxBytes)).toString("utf8");
}

/**
 * A whole regular file, read in one open without following a symlink, refused (EFBIG) when it
 * is larger than `maxBytes` rather than cut short: for files acted on whole (a WAL segment).
 */
export async function readWholeFile(path: string, maxBytes: number): Promise<Buffer> {
  const fh = await open(path, READ_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw Object.assign(new Error(`${path} is not a regular file`), { code: "EINVAL" });
    // One byte beyond the cap tells a file that is too large from one that is exactly the cap.
    const buf = Buffer.allocUnsafe(Math.min(maxBytes, st.size) + 1);
    let filled = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, filled, buf.length - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
      if (filled > maxBytes) throw Object.assign(new Error(`${path} is larger than ${maxBytes} bytes`), { code: "EFBIG" });
      if (filled === buf.length) break;
    }
    return buf.subarray(0, filled);
  } finally {
    await fh.close();
  }
}
