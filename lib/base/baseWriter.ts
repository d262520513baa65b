// Writing a base backup: pg_basebackup's tar goes through an OS pipe into the compressor, and
// from there (through age, when the backup is encrypted) into this process, which hashes the
// stored bytes whole and per chunk (StoredHash) and writes them to the partial file. Node sees
// only the compressed (encrypted) output: relaying the raw tar through it cost a core's worth
// of socket reads and writes (docs/performance.md "Performance"). The WAL range comes from pg_basebackup's
// own -v report. On a failure every program is stopped and the error that explains it is
// thrown: a storage errno first, then pg_basebackup's (as the fix it needs), then a filter's.
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { PgConfig } from "../config/config.js";
import { filterEnv } from "../backup/compression.js";
import { ExitCode, TaskError, errnoCode } from "../core/errors.js";
import type { ChainLink } from "../core/pipeChain.js";
import { startChain } from "../core/pipeChain.js";
import type { Program } from "../core/proc.js";
import { ProcessError, isSecondaryFailure } from "../core/proc.js";
import type { Secret } from "../core/secret.js";
import type { ChunkList } from "../store/chunks.js";
import { StoredHash } from "../store/chunks.js";
import { hashTap } from "../store/checksum.js";
import { settleStages } from "../core/concurrency.js";
import { isStorageErrno } from "../store/backupDir.js";
import type { PartialFile } from "../store/storage.js";
import type { WalRange } from "./backup.js";
import { basebackupFailure, pgBasebackupArgs, reportedWalRange } from "./backup.js";

export interface BaseWriteOptions {
  /** The pg_basebackup program (lib/core/bin.ts findServerBinary: Debian's wrapper script costs a Perl start per run). */
  program: string;
  /** pg_basebackup's environment (connection settings, password). */
  env: NodeJS.ProcessEnv;
  pg: PgConfig;
  checkpoint: "fast" | "spread";
  secrets: readonly (Secret | null)[];
  /** The compressor, then age when encrypted; empty for an uncompressed, unencrypted tar. */
  filters: readonly Program[];
  /** Counts the stored bytes as they are written (progress lines). */
  onBytes: (n: number) => void;
}

export interface WrittenBase {
  range: WalRange;
  sha256: string;
  bytes: number;
  chunks: ChunkList;
}

/** stderr lines are kept only while they may still hold the WAL range; pg_basebackup -v prints a handful. */
const MAX_REPORT_LINES = 1000;

function rank(err: unknown, tornDown: boolean, producer: string): number {
  if (isStorageErrno(err)) return 0;
  if (errnoCode(err) === "ERR_STREAM_PREMATURE_CLOSE") return 5;
  if (err instanceof TaskError) return 1;
  if (err instanceof ProcessError) return isSecondaryFailure(err) || (tornDown && err.signal !== undefined) ? 5 : err.program === producer ? 2 : 3;
  return 4;
}

/** Runs pg_basebackup | filters > partial; resolves once every program exited 0, the file is written and the WAL range was reported. */
export async function writeBaseBackup(partial: PartialFile, opts: BaseWriteOptions): Promise<WrittenBase> {
  // LC_ALL=C: the WAL range and the failures are read from pg_basebackup's messages, which translations would change.
  const links: ChainLink[] = [
    { program: opts.program, args: pgBasebackupArgs(opts.checkpoint), env: { ...opts.env, LC_ALL: "C" }, secrets: opts.secrets },
    ...opts.filters.map((f) => ({ program: f.program, args: f.args, env: filterEnv(opts.env) })),
  ];
  const chain = startChain(links);
  const basebackup = chain.children[0] as (typeof chain.children)[number];
  const lines: string[] = [];
  let pending = "";
  basebackup.process.stderr?.on("data", (d: Buffer) => {
    const text = pending + d.toString("utf8");
    const parts = text.split("\n");
    pending = (parts.pop() ?? "").slice(-4096);
    if (lines.length < MAX_REPORT_LINES) lines.push(...parts.slice(0, MAX_REPORT_LINES - lines.length));
  });
  const hash = new StoredHash();
  const file = partial.handle.createWriteStream({ autoClose: true, highWaterMark: 1 << 20 });
  const closed = new Promise<void>((resolve) => file.once("close", () => resolve()));
  const stages: Promise<unknown>[] = [...chain.children.map((c) => c.done), pipeline(chain.stdout as Readable, hashTap(hash, (b) => opts.onBytes(b.length)), file)];
  const { errors, tornDown } = await settleStages(stages, () => {
    chain.kill();
    file.destroy();
  });
  if (!file.destroyed) file.destroy();
  await closed;
  if (errors.length > 0) {
    const cause = errors.sort((a, b) => rank(a, tornDown, opts.program) - rank(b, tornDown, opts.program))[0];
    throw cause instanceof ProcessError && cause.program === opts.program ? basebackupFailure(cause, opts.pg) : cause;
  }
  const range = reportedWalRange([...lines, pending]);
  if (range === null) {
    throw new TaskError(ExitCode.failed, `backup base: pg_basebackup exited 0 but did not report the WAL start and end point (-v); nothing was written (it said: ${[...lines, pending].join(" ").slice(-500)})`);
  }
  const { sha256, bytes, chunks } = hash.finish();
  return { range, sha256, bytes, chunks };
}
