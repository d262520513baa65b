// Everything wal-receive does beside pg_receivewal itself, on one clock (switchWatch.ts): at
// every tick the switch checks (switchChecks.ts: one failure stops pg_receivewal and ends the
// service), the monitor's sample of the slot, the shipper's round when pg_receivewal writes
// into a spool (archiveMode.ts, shipper.ts), and the monitor's report. The last round runs
// when pg_receivewal exits (a server that died leaves its newest WAL to ship) and, at SIGTERM,
// after pg_receivewal has stopped.
import { createPublicKey } from "node:crypto";
import { lstat, mkdir } from "node:fs/promises";
import type { Config } from "../config/config.js";
import type { Deps } from "../core/deps.js";
import { sleep } from "../core/concurrency.js";
import { ExitCode, TaskError, errnoCode } from "../core/errors.js";
import type { Logger } from "../core/log.js";
import type { Child } from "../core/proc.js";
import { shutdown } from "../core/shutdown.js";
import { withClient } from "../postgres/connection.js";
import { encryptorFor } from "../backup/encryption.js";
import { walDir } from "../physical/layout.js";
import { storedLimit } from "../wal/readFile.js";
import type { ArchiveMode } from "./archiveMode.js";
import { archiveMode } from "./archiveMode.js";
import { WalReceiverMonitor } from "./monitor.js";
import { stopCleanly } from "./process.js";
import { WalShipper } from "./shipper.js";
import { recordBucketMove } from "./bucketReplaced.js";
import { identityPlan, readIdentityMarker, setAsideReplaced, writeIdentityMarker } from "./identity.js";
import { clusterIdentity } from "./slot.js";
import { switchChecks } from "./switchChecks.js";
import { SwitchWatch } from "./switchWatch.js";
import type { TickReason } from "./switchWatch.js";
import type { WalUploader } from "./walUploader.js";

const LAST_ROUND_WAIT_MS = 1000;
/** At SIGTERM, the last upload to S3 may take this long (the shutdown gives each step 3 s). */
const LAST_UPLOAD_MS = 2500;
/** The largest WAL segment initdb allows, until the server said its wal_segment_size. */
const MAX_SEGMENT_BYTES = 1 << 30;

/** The spool is created private; one that exists must be a folder, not a symlink. */
async function ensureSpool(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    if (!(await lstat(dir)).isDirectory()) throw Object.assign(new Error("not a folder"), { code: "ENOTDIR" });
  } catch (err) {
    throw new TaskError(ExitCode.storage, `WAL_SPOOL_DIR=${dir} cannot be used (${errnoCode(err) ?? (err as Error).message}); point it at a folder on the task's own disk or a named volume that wal-receive's user can write`, { cause: err });
  }
}

export class WalArchiver {
  readonly mode: ArchiveMode;
  readonly monitor: WalReceiverMonitor;
  readonly #config: Config;
  readonly #log: Logger;
  readonly #shipper: WalShipper | null;
  readonly #watch: SwitchWatch;
  #uploader: WalUploader | null = null;
  #walSegmentSize = MAX_SEGMENT_BYTES;
  /** The server's system identifier, once asked (beforeStart): the cluster the spool's WAL is of, which shipping signs. */
  #systemIdentifier: string | null = null;
  #fatal: TaskError | null = null;
  #child: Child | null = null;
  #unregister: () => void = () => undefined;

  private constructor(config: Config, deps: Deps, log: Logger, mode: ArchiveMode) {
    this.#config = config;
    this.#log = log;
    this.mode = mode;
    this.#shipper =
      mode.kind === "direct"
        ? null
        : new WalShipper({
            spool: mode.receiveDir,
            archive: walDir(config.backupDir),
            recipients: config.encryption.recipients,
            signingKey: config.signing.key,
            fileMode: config.files.file,
            env: deps.env,
            log,
          });
    this.monitor = new WalReceiverMonitor(config, deps, log, this.#shipper !== null);
    this.#watch = new SwitchWatch({ dir: mode.receiveDir, intervalMs: config.wal.statusIntervalSeconds * 1000, tick: (r) => this.#tick(r), log });
  }

  /** Checks the settings and folders (wal-receive refuses to start on a failed switch check) and starts the clock. */
  static async open(config: Config, deps: Deps, log: Logger): Promise<WalArchiver> {
    const mode = archiveMode(config);
    if (config.encryption.recipients !== null) encryptorFor(config.encryption.recipients, deps.env);
    if (mode.kind === "spool") await ensureSpool(mode.receiveDir);
    await switchChecks({ backupDir: config.backupDir, receiveDir: mode.receiveDir });
    const a = new WalArchiver(config, deps, log, mode);
    // Registered first, so that at SIGTERM it runs last: after the last WAL was shipped to wal/.
    if (config.s3 !== null) a.#uploader = await a.#startUploader(config, deps, log);
    if (a.#shipper !== null) {
      const shipper = a.#shipper;
      await shipper.removeStaleTemps();
      // Registered before pg_receivewal's clean stop, so it runs after it: the last WAL it flushed is shipped.
      a.#unregister = shutdown.register("wal-receive: ship the spool's last WAL to wal/", async () => {
        // A round caught by the signal may wait on an age the shutdown stopped: it is not waited for long.
        await Promise.race([a.#watch.stop(), sleep(LAST_ROUND_WAIT_MS)]);
        await shipper.ship(a.#systemIdentifier, true);
      });
      log.info({ spool: mode.receiveDir, sign: mode.kind === "spool" && mode.sign, encrypt: mode.kind === "spool" && mode.encrypt }, `pg_receivewal writes into ${mode.receiveDir}; wal-receive ships to ${walDir(config.backupDir)}`);
    }
    a.#watch.start();
    a.#uploader?.start();
    return a;
  }

  /** With S3_BUCKET: WAL goes on from wal/ to the bucket (walUploader.ts); the SDK is loaded only then. */
  async #startUploader(config: Config, deps: Deps, log: Logger): Promise<WalUploader> {
    const s3 = config.s3 as NonNullable<Config["s3"]>;
    const [{ WalUploader }, { mirrorTarget }] = await Promise.all([import("./walUploader.js"), import("../s3/client.js")]);
    const signing = config.signing;
    const uploader = new WalUploader({
      t: mirrorTarget(s3, log.child({ mirror: "s3" })),
      backupDir: config.backupDir,
      // What wal-receive signed verifies with the signing key's public half: no other key is needed to refuse a file someone else put into wal/.
      verifyKey: signing.verifyKey ?? (signing.key === null ? null : createPublicKey(signing.key)),
      snapshotSeconds: s3.walSnapshotSeconds,
      intervalMs: config.wal.statusIntervalSeconds * 1000,
      maxBytes: () => storedLimit(this.#walSegmentSize),
      log,
      now: () => deps.now().getTime(),
    });
    this.monitor.watchS3(() => uploader.status());
    shutdown.register("wal-receive: upload the last WAL to the S3 mirror", () => uploader.stop(LAST_UPLOAD_MS));
    log.info({ bucket: s3.bucket, snapshotSeconds: s3.walSnapshotSeconds, verify: uploader !== null && (signing.verifyKey ?? signing.key) !== null }, `WAL in ${walDir(config.backupDir)} goes on to the S3 mirror`);
    return uploader;
  }

  /**
   * Before each pg_receivewal start: the cluster the server is and its segment size (kept when
   * the server cannot be asked at once), and the WAL of a cluster it replaced set aside
   * (identity.ts), between two ticks so that no shipping round runs meanwhile.
   */
  async beforeStart(): Promise<void> {
    const shipper = this.#shipper;
    const known = this.#systemIdentifier !== null;
    const id = await withClient({ ...this.#config.pg, connectTimeoutSeconds: known ? 0 : this.#config.pg.connectTimeoutSeconds }, this.#config.pg.database, (c) => clusterIdentity(c), this.#log).catch(
      (err: unknown) => {
        if (!known) throw err;
        this.#log.warn({ error: (err as Error).message }, "the server cannot be asked for its system identifier and segment size now; going on with what it said before");
        return null;
      },
    );
    if (id === null) return;
    this.#walSegmentSize = id.walSegmentSize;
    if (shipper !== null) shipper.maxBytes = 2 * id.walSegmentSize + (1 << 20);
    if (id.systemIdentifier === this.#systemIdentifier) return;
    // The first time, the shipper has never shipped (nothing ships before the identity is known): no round to wait for.
    const adopt = () => this.#adoptIdentity(id.systemIdentifier);
    await (known ? this.#watch.exclusive(adopt) : adopt());
    this.#systemIdentifier = id.systemIdentifier;
  }

  /** The markers of wal/ and the spool compared with the server's identifier; another cluster's WAL shipped (the spool's) and set aside. */
  async #adoptIdentity(server: string): Promise<void> {
    const config = this.#config;
    const wal = walDir(config.backupDir);
    const spool = this.mode.kind === "spool" ? this.mode.receiveDir : null;
    await mkdir(wal, { recursive: true, mode: config.files.dir });
    const [spoolMarker, walMarker] = await Promise.all([spool === null ? null : readIdentityMarker(spool), readIdentityMarker(wal)]);
    const plan = identityPlan({ server, spool: spool !== null, spoolMarker, walMarker });
    const shipper = this.#shipper;
    if (plan.shipSpoolAs !== null && shipper !== null) {
      const round = await shipper.ship(plan.shipSpoolAs).catch((err: unknown) => {
        this.#log.error({ event: "replaced", error: (err as Error).message }, `the spool's last WAL of cluster ${plan.shipSpoolAs} could not be shipped to wal/ (${(err as Error).message}); it is kept in the spool's set-aside folder`);
        return null;
      });
      shipper.forget();
      if (round !== null && round.shipped.length + round.snapshots.length > 0) this.#log.info({ event: "replaced", files: [...round.shipped, ...round.snapshots] }, `shipped the last WAL of cluster ${plan.shipSpoolAs} from the spool to wal/`);
    }
    const stamp = Date.now();
    const moved: { folder: string; files: string[] }[] = [];
    if (plan.setAsideWal !== null) moved.push(await setAsideReplaced(wal, plan.setAsideWal, stamp, config.files.dir));
    if (plan.setAsideSpool !== null && spool !== null) moved.push(await setAsideReplaced(spool, plan.setAsideSpool, stamp, 0o700));
    // The bucket's copies of wal/'s old WAL go aside too, by the uploader before it uploads anything more.
    if (plan.setAsideWal !== null && config.s3 !== null) {
      await recordBucketMove(wal, plan.setAsideWal, stamp, config.files.file);
      this.#uploader?.bucketMoveRecorded();
    }
    const old = plan.setAsideWal ?? plan.setAsideSpool;
    if (old !== null) {
      this.#log.error(
        { event: "replaced", systemIdentifier: server, previous: old, folders: moved.filter((m) => m.files.length > 0).map((m) => m.folder), files: moved.reduce((n, m) => n + m.files.length, 0) },
        `the server is cluster ${server}, not cluster ${old} whose WAL ${wal}${spool === null ? "" : ` and ${spool}`} held (the cluster was wiped and made again, or replaced): ` +
          `that WAL was set aside (${moved.map((m) => `${m.files.length} file(s) in ${m.folder}`).join(", ")}; kept, not used) and receiving starts over for the new cluster. ` +
          `${plan.setAsideWal === null || config.s3 === null ? "" : `Its objects in the S3 mirror go to wal-replaced/${plan.setAsideWal}-${stamp}/ before anything more is uploaded. `}Take a new base backup; to restore the old cluster to a point, move its WAL back into an empty wal/`,
      );
    }
    if (walMarker !== server) await writeIdentityMarker(wal, server, config.files.file);
    if (spool !== null && spoolMarker !== server) await writeIdentityMarker(spool, server, 0o600);
  }

  running(child: Child | null): void {
    this.#child = child;
    this.monitor.setRunning(child !== null);
  }

  /** After pg_receivewal exited: one more round (its last WAL shipped), then the fatal switch-check error, if any. */
  async afterExit(): Promise<void> {
    this.running(null);
    await this.#watch.run("exit");
    if (this.#fatal !== null) throw this.#fatal;
  }

  async close(): Promise<void> {
    await this.#watch.stop();
    await this.#uploader?.stop(LAST_UPLOAD_MS);
    await this.monitor.poll().catch(() => undefined);
    await this.monitor.stop();
    this.#unregister();
  }

  async #tick(reason: TickReason): Promise<void> {
    if (this.#fatal !== null) return;
    try {
      await switchChecks({ backupDir: this.#config.backupDir, receiveDir: this.mode.receiveDir });
    } catch (err) {
      this.#fatal = err instanceof TaskError ? err : new TaskError(ExitCode.failed, (err as Error).message, { cause: err });
      this.#log.error({ event: "check", reason }, this.#fatal.message);
      if (this.#child !== null) await stopCleanly(this.#child, this.#log);
      return;
    }
    const received = await this.monitor.sample();
    if (this.#shipper !== null) {
      try {
        await this.#shipper.ship(this.#systemIdentifier);
        this.monitor.setArchived(received);
      } catch (err) {
        this.#log.error({ event: "ship", reason, error: (err as Error).message }, `WAL could not be shipped from ${this.mode.receiveDir} to wal/ (${(err as Error).message}); retrying at the next tick`);
      }
    }
    // Never awaited: the bucket is the second copy, and a slow one must not hold up the first.
    this.#uploader?.nudge();
    await this.monitor.report();
  }
}
