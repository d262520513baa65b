// wal-receive's second copy: with S3_BUCKET set, what reaches wal/ goes on to the bucket soon
// after (walUploads.ts decides what, walUpload.ts moves one file), so the storage box lost costs
// seconds of WAL, not the hour back to the last logical backup. It runs on its own loop, woken
// by every tick of the receiver and never awaited by it: the local archive is the first copy,
// and an S3 that fails or hangs must not stall receiving or shipping into wal/. A failed round
// is logged (an error line when a run of failures starts, then every few minutes), counted in
// the metrics, and retried with backoff from 1 s to a minute; the next good round uploads what
// the bucket missed meanwhile, oldest first. Its status is the age of the oldest WAL in wal/
// that the bucket lacks: the recovery point with the storage box lost.
import type { KeyObject } from "node:crypto";
import { mapLimit } from "../core/concurrency.js";
import { ExitCode } from "../core/errors.js";
import type { Logger } from "../core/log.js";
import { WAL_SIGNATURE_SUFFIX, parseWalName, walDir } from "../physical/layout.js";
import type { MirrorTarget } from "../s3/client.js";
import { s3Failure } from "../s3/client.js";
import { deleteKeys } from "../s3/objects.js";
import { listWalArchive } from "../wal/archive.js";
import { moveReplacedObjects, pendingBucketMoves } from "./bucketReplaced.js";
import { listRemoteWal, remoteSizes, uploadWalFile, walObjectKey } from "./walUpload.js";
import type { LocalWal, WalUpload } from "./walUploads.js";
import { fileState, planWalUploads } from "./walUploads.js";

export interface WalUploaderOptions {
  t: MirrorTarget;
  backupDir: string;
  /** Only files whose signature verifies with it go up (BACKUP_VERIFY_KEY_FILE, or the signing key's public half). */
  verifyKey: KeyObject | null;
  /** S3_WAL_SNAPSHOT_SECONDS: the snapshot goes up at most this often; 0: never. */
  snapshotSeconds: number;
  /** How often the loop runs when no tick wakes it (WAL_STATUS_INTERVAL_SECONDS). */
  intervalMs: number;
  /** The largest stored file that can be WAL (from the cluster's wal_segment_size). */
  maxBytes: () => number;
  log: Logger;
  now: () => number;
}

export interface WalUploaderStatus {
  /** The last round reached the bucket and did what it planned. */
  ok: boolean;
  /** Seconds since the oldest WAL in wal/ that the bucket lacks was written; 0 when it has everything. */
  lagSeconds: number;
  /** Files in wal/ waiting to go up. */
  pending: number;
  /** Rounds that failed since wal-receive started. */
  failures: number;
  /** Files not uploaded because they do not verify (logged once each). */
  refused: number;
  /** Unix ms of the last upload, or null. */
  lastUploadAt: number | null;
}

const CONCURRENCY = 4;
const MAX_BACKOFF_MS = 60_000;
/** The bucket is listed again this often (and after a failure), in case someone deleted from it. */
const RELIST_MS = 10 * 60_000;
/** A snapshot counts as due this much early: the receiver's ticks that wake the loop are not exactly an interval apart. */
const SNAPSHOT_SLACK_MS = 500;
/** While failing, an error line at most this often. */
const ERROR_EVERY_MS = 5 * 60_000;

export function localWal(listing: Awaited<ReturnType<typeof listWalArchive>>): LocalWal[] {
  return [...listing.histories, ...listing.segments].map((e) => ({ file: e.file, size: e.size, mtime: e.mtime, signed: listing.signatures.has(e.file.name + WAL_SIGNATURE_SUFFIX) }));
}

export class WalUploader {
  readonly #o: WalUploaderOptions;
  #remote: Map<string, number> | null = null;
  #needList = true;
  #listedAt = 0;
  readonly #startedAt: number;
  #lastSnapshot: string | null = null;
  #lastSnapshotAt = 0;
  /** Files that do not verify, by name: the state refused (a file that changes is tried again) and why. */
  #refused = new Map<string, { state: string; problem: string }>();
  #pendingSince: number | null = null;
  #pending = 0;
  #ok = true;
  #failures = 0;
  #failingSince: number | null = null;
  #lastErrorAt = 0;
  #lastUploadAt: number | null = null;
  #stopped = false;
  #wake: (() => void) | null = null;
  #loop: Promise<void> | null = null;
  /** Bucket moves may be recorded in wal/ (bucketReplaced.ts): at the start, left by an earlier run, and when the archiver records one. */
  #movesToCheck = true;

  constructor(o: WalUploaderOptions) {
    this.#o = o;
    this.#startedAt = o.now();
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  /** The archiver recorded a bucket move in wal/: it is carried out before anything more goes up. */
  bucketMoveRecorded(): void {
    this.#movesToCheck = true;
    this.nudge();
  }

  /** A tick of the receiver: something may have reached wal/. */
  nudge(): void {
    this.#wake?.();
  }

  status(): WalUploaderStatus {
    const now = this.#o.now();
    return {
      ok: this.#ok,
      lagSeconds: this.#pendingSince === null ? 0 : Math.max(0, Math.round((now - this.#pendingSince) / 100) / 10),
      pending: this.#pending,
      failures: this.#failures,
      refused: this.#refused.size,
      lastUploadAt: this.#lastUploadAt,
    };
  }

  /** Ends the loop; then one last round (the last WAL shipped at SIGTERM), given up after `budgetMs`. */
  async stop(budgetMs: number): Promise<void> {
    this.#stopped = true;
    this.#wake?.();
    await this.#loop;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, budgetMs)));
    await Promise.race([this.round().catch(() => undefined), late]);
    clearTimeout(timer);
  }

  async #run(): Promise<void> {
    let delay = 0;
    while (!this.#stopped) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        // A tick wakes a waiting round, not a backoff: a failing S3 is not asked every status interval.
        this.#wake = this.#ok ? () => (clearTimeout(timer), resolve()) : null;
        if (this.#stopped) resolve();
      });
      this.#wake = null;
      if (this.#stopped) break;
      try {
        await this.round();
        delay = this.#o.intervalMs;
      } catch {
        delay = Math.min(MAX_BACKOFF_MS, Math.max(1000, delay * 2));
      }
    }
  }

  /** One round: plan against the bucket, upload, delete stale snapshots. Throws (after logging) when S3 fails. */
  async round(): Promise<void> {
    const o = this.#o;
    let local: LocalWal[];
    try {
      local = localWal(await listWalArchive(o.backupDir));
    } catch (err) {
      // Not the bucket's fault: the receiver itself reports a wal/ it cannot use.
      o.log.warn({ event: "s3-skip", err: (err as Error).message }, "wal/ cannot be listed; nothing uploaded to the S3 mirror this round");
      return;
    }
    // What is gone from wal/ (cleanup, a snapshot completed) needs no memory of its refusal.
    const names = new Set(local.map((w) => w.file.name));
    for (const name of this.#refused.keys()) if (!names.has(name)) this.#refused.delete(name);
    const plan = (remote: ReadonlyMap<string, number>) => planWalUploads(local, remote, { snapshots: o.snapshotSeconds > 0, lastSnapshot: this.#lastSnapshot });
    try {
      // A replaced cluster's objects leave wal/ and wal-partial/ before anything of the new one goes up (bucketReplaced.ts).
      if (this.#movesToCheck) {
        // Cleared before wal/ is read: a move recorded meanwhile sets it again for the next round.
        this.#movesToCheck = false;
        try {
          for (const job of await pendingBucketMoves(walDir(o.backupDir))) {
            const moved = await moveReplacedObjects(o.t, job, new Map(local.map((w) => [w.file.name, w.size])));
            this.#needList = true;
            this.#remote = null;
            o.log.info({ event: "replaced", previous: job.oldId, moved, to: `wal-replaced/${job.oldId}-${job.stamp}/` }, `moved ${moved} object(s) of cluster ${job.oldId} in the S3 mirror from wal/ and wal-partial/ to wal-replaced/${job.oldId}-${job.stamp}/`);
          }
        } catch (err) {
          this.#movesToCheck = true;
          throw err;
        }
      }
      if (this.#remote === null || this.#needList || o.now() - this.#listedAt > RELIST_MS) {
        this.#remote = remoteSizes(await listRemoteWal(o.t));
        [this.#needList, this.#listedAt] = [false, o.now()];
      }
      const remote = this.#remote;
      const todo = plan(remote).upload.filter((u) => !this.#isRefused(u));
      this.#track(todo);
      await mapLimit(
        todo.filter((u) => u.kind !== "snapshot"),
        CONCURRENCY,
        (u) => this.#upload(u, remote),
      );
      const snapshot = todo.find((u) => u.kind === "snapshot");
      const at = o.now();
      if (snapshot !== undefined && at - this.#lastSnapshotAt >= o.snapshotSeconds * 1000 - SNAPSHOT_SLACK_MS) {
        await this.#upload(snapshot, remote);
        [this.#lastSnapshot, this.#lastSnapshotAt] = [fileState(snapshot), at];
      }
      const stale = plan(remote).staleSnapshots;
      if (stale.length > 0) {
        const keys = stale.flatMap((n) => {
          const f = parseWalName(n);
          return f === null ? [] : [walObjectKey(o.t, f), walObjectKey(o.t, f) + WAL_SIGNATURE_SUFFIX];
        });
        await deleteKeys(o.t, keys);
        for (const n of stale) [n, n + WAL_SIGNATURE_SUFFIX].forEach((x) => remote.delete(x));
      }
      this.#track(plan(remote).upload.filter((u) => !this.#isRefused(u)));
      if (!this.#ok) o.log.info({ event: "s3-caught-up", failedForSeconds: Math.round((o.now() - (this.#failingSince ?? o.now())) / 1000) }, "WAL reaches the S3 mirror again; what it missed meanwhile was uploaded");
      [this.#ok, this.#failingSince] = [true, null];
    } catch (err) {
      // The lag goes on growing from what the bucket was last known to hold (from the start, when it never answered).
      if (this.#remote !== null) this.#track(plan(this.#remote).upload.filter((u) => !this.#isRefused(u)));
      else this.#pendingSince ??= this.#startedAt;
      this.#failed(err);
      throw err;
    }
  }

  #isRefused(u: WalUpload): boolean {
    return this.#refused.get(u.name)?.state === fileState(u);
  }

  /** What waits for the bucket: the lag counts from the oldest of it (for a snapshot that changed, from its last upload). */
  #track(todo: readonly WalUpload[]): void {
    const since = todo.map((u) => (u.kind === "snapshot" && u.reason === "changed" ? Math.min(u.mtime.getTime(), this.#lastSnapshotAt) : u.mtime.getTime()));
    this.#pending = todo.length;
    this.#pendingSince = since.length === 0 ? null : Math.min(...since);
  }

  async #upload(u: WalUpload, remote: Map<string, number>): Promise<void> {
    const o = this.#o;
    const r = await uploadWalFile(o.t, walDir(o.backupDir), u.name, o.verifyKey, o.maxBytes());
    if (!r.uploaded) {
      if (r.problem === "gone") return;
      // Logged once per file: a snapshot that keeps changing and keeps failing is one problem.
      if (!this.#refused.has(u.name)) o.log.error({ event: "s3-refused", file: u.name, problem: r.problem }, `${u.name} in wal/ is not uploaded to the S3 mirror: ${r.problem}`);
      this.#refused.set(u.name, { state: fileState(u), problem: r.problem });
      return;
    }
    remote.set(u.name, r.bytes);
    if (u.signed) remote.set(u.name + WAL_SIGNATURE_SUFFIX, 0);
    this.#lastUploadAt = o.now();
    if (u.kind !== "snapshot") o.log.info({ event: "s3-upload", file: u.name, key: r.key, bytes: r.bytes, reason: u.reason }, `uploaded ${u.name} to the S3 mirror`);
    else o.log.debug({ event: "s3-snapshot", file: u.name, bytes: r.bytes }, "uploaded the snapshot of the segment being received to the S3 mirror");
  }

  #failed(err: unknown): void {
    const o = this.#o;
    const now = o.now();
    this.#failures++;
    this.#needList = true;
    const starts = this.#ok;
    [this.#ok, this.#failingSince] = [false, this.#failingSince ?? now];
    if (!starts && now - this.#lastErrorAt < ERROR_EVERY_MS) return;
    this.#lastErrorAt = now;
    void s3Failure(o.t.s3, o.t.client, "upload of WAL to the S3 mirror", err, ExitCode.mirrorFailed).then((e) =>
      o.log.error(
        { event: "s3-failed", failures: this.#failures, pending: this.#pending, lagSeconds: this.status().lagSeconds },
        `${e.message}; receiving into wal/ goes on, and what the bucket misses is uploaded once it answers again (retrying with backoff up to ${MAX_BACKOFF_MS / 1000} s)`,
      ),
    );
  }
}
