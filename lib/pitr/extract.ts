// Extracting a base backup: the stored file through its decompressor, through TarGuard
// (which refuses any member pg_basebackup would not write, before tar sees its header), into
// `tar -x` in a folder the caller created. GNU tar's own defaults (stripping a leading "/",
// refusing ".." members, placeholder files for dangerous symlinks) stay on as a second line;
// --no-same-owner makes every file the task's user's, which is the uid postgres runs as.
import { Transform } from "node:stream";
import type { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { basename } from "node:path";
import type { Codec } from "../core/codec.js";
import { ExitCode, TaskError } from "../core/errors.js";
import type { Logger } from "../core/log.js";
import { humanBytes } from "../core/format.js";
import { readStreamNoFollow } from "../core/noFollow.js";
import { spawnFilter, start } from "../core/proc.js";
import { decompressorFor, filterEnv } from "../backup/compression.js";
import { TarGuard, TarMemberError } from "./tarGuard.js";

const TAR_ARGS = ["-x", "-f", "-", "--no-same-owner", "--no-acls", "--no-xattrs", "--no-selinux", "--no-unquote", "-C"];
const PROGRESS_MS = 5000;

/** Extracts `path` (codec `codec`) into the existing folder `into`; returns the tar's bytes and member count. */
export async function extractBase(path: string, codec: Codec, into: string, threads: number, env: NodeJS.ProcessEnv, log: Logger): Promise<{ rawBytes: number; members: number }> {
  const fenv = filterEnv(env);
  const prog = decompressorFor(codec, threads, env);
  const guard = new TarGuard();
  let rawBytes = 0;
  let last = Date.now();
  const counter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      rawBytes += chunk.length;
      if (Date.now() - last >= PROGRESS_MS) {
        last = Date.now();
        log.info({ rawBytes, members: guard.members }, `extracting: ${humanBytes(rawBytes)}, ${guard.members} files`);
      }
      done(null, chunk);
    },
  });
  const tar = start("tar", [...TAR_ARGS, into], { env: fenv, stdin: "pipe" });
  const sink = tar.stdin as Writable;
  const dec = prog === null ? null : spawnFilter(prog.program, prog.args, fenv);
  try {
    if (dec === null) await Promise.all([pipeline(readStreamNoFollow(path), counter, guard, sink), tar.done]);
    else await Promise.all([pipeline(readStreamNoFollow(path), dec.stdin as Writable), pipeline(dec.stdout as Readable, counter, guard, sink), dec.done, tar.done]);
  } catch (err) {
    dec?.kill();
    tar.kill();
    if (err instanceof TarMemberError) throw new TaskError(ExitCode.refused, `${basename(path)} is not a tar pg_basebackup wrote: ${err.message}; use another base backup`, { cause: err });
    throw err;
  }
  return { rawBytes, members: guard.members };
}
