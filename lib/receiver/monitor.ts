// wal-receive's eyes: every status interval (switchWatch.ts drives it) it samples the slot and
// the server's flushed WAL position, turns them into the lag, writes the metrics, and raises
// or clears the alert (the /fail ping and failure webhook when the receiver falls behind
// WAL_LAG_ALERT_SECONDS or has been down that long; a success ping when it recovers, and as a
// heartbeat while healthy, so a Healthchecks check with a short period notices a receiver that
// is gone altogether). When wal-receive ships from a spool (archiveMode.ts), the position that
// counts is what has been shipped to wal/, not what pg_receivewal flushed into the spool: the
// lag is then the age of the recovery point.
import type { Config } from "../config/config.js";
import type { Deps } from "../core/deps.js";
import { ExitCode } from "../core/errors.js";
import type { Logger } from "../core/log.js";
import { recordWalReceiver } from "../core/metrics.js";
import { redact } from "../core/secret.js";
import { Notifier } from "../notify/notifier.js";
import { connect } from "../postgres/connection.js";
import type { Client } from "../postgres/connection.js";
import { formatLsn } from "../physical/layout.js";
import { lagSeconds, pruneSamples } from "./lag.js";
import type { ServerSample } from "./lag.js";
import { serverFlushLsn, slotState } from "./slot.js";
import type { WalUploaderStatus } from "./walUploader.js";

const HEARTBEAT_MS = 60_000;
/** Bounds the samples kept while the receiver is far behind (a day at 5 s is 17 280). */
const MAX_SAMPLES = 20_000;

export class WalReceiverMonitor {
  readonly #config: Config;
  readonly #deps: Deps;
  readonly #log: Logger;
  #client: Client | null = null;
  #samples: ServerSample[] = [];
  #received: bigint | null = null;
  #receivedAt: number | null = null;
  #running = false;
  #downSince: number | null;
  #alerting = false;
  #lastHeartbeat = 0;
  /** Spool mode: the position shipped to wal/ (null: nothing yet); undefined: direct mode, the slot's position counts. */
  #archived: bigint | null | undefined;
  #archivedAt: number | null = null;
  #lagBytes: number | null = null;
  /** With S3_BUCKET: the uploader's status (walUploader.ts). */
  #s3: (() => WalUploaderStatus) | null = null;
  restarts = 0;

  constructor(config: Config, deps: Deps, log: Logger, shipping: boolean) {
    this.#config = config;
    this.#deps = deps;
    this.#log = log;
    this.#downSince = deps.now().getTime();
    this.#archived = shipping ? null : undefined;
  }

  async stop(): Promise<void> {
    await this.#client?.end().catch(() => undefined);
    this.#client = null;
  }

  /** Spool mode: everything up to `lsn` (a position sampled before the ship round that succeeded) is in wal/. */
  setArchived(lsn: bigint | null): void {
    if (this.#archived === undefined || lsn === null || (this.#archived !== null && lsn <= this.#archived)) return;
    this.#archived = lsn;
    this.#archivedAt = this.#deps.now().getTime();
  }

  /** The position the lag and metrics are about: shipped (spool mode) or flushed (direct). */
  #position(): { lsn: bigint | null; at: number | null } {
    return this.#archived === undefined ? { lsn: this.#received, at: this.#receivedAt } : { lsn: this.#archived, at: this.#archivedAt };
  }

  /** With S3_BUCKET: report the uploader's status in the metrics, and alert when the bucket falls behind like the receiver. */
  watchS3(status: () => WalUploaderStatus): void {
    this.#s3 = status;
  }

  /** pg_receivewal started (true) or exited (false). */
  setRunning(running: boolean): void {
    if (running === this.#running) return;
    this.#running = running;
    this.#downSince = running ? null : this.#deps.now().getTime();
  }

  /** Samples the slot and the server; returns the slot's position (what pg_receivewal flushed), null when the server cannot be asked. */
  async sample(): Promise<bigint | null> {
    const now = this.#deps.now().getTime();
    this.#lagBytes = null;
    try {
      this.#client ??= await connect(this.#config.pg, this.#config.pg.database, undefined, 0);
      const [slot, server] = [await slotState(this.#client, this.#config.wal.slot), await serverFlushLsn(this.#client)];
      const received = slot?.restartLsn ?? null;
      if (received !== null && (this.#received === null || received > this.#received)) [this.#received, this.#receivedAt] = [received, now];
      if (server !== null) this.#samples.push({ at: now, lsn: server });
      const position = this.#position().lsn;
      if (server !== null && position !== null) this.#lagBytes = Number(server > position ? server - position : 0n);
      return received;
    } catch (err) {
      // The server is away (restarting, failing over): the lag keeps growing from the last samples.
      await this.#client?.end().catch(() => undefined);
      this.#client = null;
      this.#log.warn({ error: redact((err as Error).message, [this.#config.pg.password]) }, "wal-receive cannot poll the server for the receiver's position; retrying");
      return null;
    }
  }

  /** Turns the last sample into the lag, writes the metrics, raises or clears the alert. */
  async report(): Promise<void> {
    const now = this.#deps.now().getTime();
    const position = this.#position().lsn;
    this.#samples = pruneSamples(this.#samples, position ?? -1n);
    if (this.#samples.length > MAX_SAMPLES) this.#samples = [this.#samples[0] as ServerSample, ...this.#samples.slice(-MAX_SAMPLES + 1)];
    const lag = lagSeconds(this.#samples, position, now);
    await this.#record(now, lag, this.#lagBytes);
    await this.#alert(now, lag);
  }

  async poll(): Promise<void> {
    await this.sample();
    await this.report();
  }

  async #record(now: number, lag: number, lagBytes: number | null): Promise<void> {
    const file = this.#config.metricsFile;
    if (file === null) return;
    const { lsn, at } = this.#position();
    const s3 = this.#s3?.();
    await recordWalReceiver(file, {
      slot: this.#config.wal.slot,
      lsn: lsn === null ? null : formatLsn(lsn),
      lsnBytes: lsn === null ? null : Number(lsn),
      lastReceivedAt: at === null ? null : at / 1000,
      lagSeconds: Math.round(lag * 10) / 10,
      lagBytes,
      restarts: this.restarts,
      running: this.#running,
      updatedAt: now / 1000,
      ...(s3 === undefined ? {} : { s3: { ok: s3.ok, lagSeconds: s3.lagSeconds, pendingFiles: s3.pending, failures: s3.failures, refusedFiles: s3.refused, lastUploadAt: s3.lastUploadAt === null ? null : s3.lastUploadAt / 1000 } }),
    }).catch((err: unknown) => this.#log.warn({ err: (err as Error).message, metricsFile: file }, "metrics not recorded"));
  }

  async #alert(now: number, lag: number): Promise<void> {
    const limit = this.#config.wal.lagAlertSeconds;
    const downFor = this.#downSince === null ? 0 : (now - this.#downSince) / 1000;
    const s3Lag = this.#s3?.().lagSeconds ?? 0;
    const behind = lag > limit || downFor > limit || s3Lag > limit;
    const fields = { slot: this.#config.wal.slot, lagSeconds: Math.round(lag), downSeconds: Math.round(downFor), s3LagSeconds: Math.round(s3Lag), restarts: this.restarts, alertSeconds: limit };
    if (behind && !this.#alerting) {
      this.#alerting = true;
      const message =
        lag <= limit && downFor <= limit
          ? `WAL has not reached the S3 mirror for ${Math.round(s3Lag)} s (WAL_LAG_ALERT_SECONDS=${limit}); with the storage box lost, the recovery point is that old (wal/ itself is current). Check the wal-receive service's log (event s3-failed) and the S3 settings`
          : `${downFor > limit ? `pg_receivewal has been down for ${Math.round(downFor)} s` : `the WAL receiver is ${Math.round(lag)} s behind the server`} (WAL_LAG_ALERT_SECONDS=${limit}); the recovery point is that old. Check the wal-receive service's log and the connection to PostgreSQL`;
      this.#log.error(fields, message);
      await this.#notifier(true).failure(ExitCode.failed, message);
    } else if (!behind && this.#alerting) {
      this.#alerting = false;
      this.#log.info(fields, "wal-receive caught up again");
      await this.#notifier(true).finish({ exitCode: ExitCode.ok, message: "wal-receive caught up again" });
      this.#lastHeartbeat = now;
    } else if (!behind && now - this.#lastHeartbeat >= HEARTBEAT_MS) {
      this.#lastHeartbeat = now;
      await this.#notifier(false).finish({ exitCode: ExitCode.ok, message: null });
    }
  }

  /** One Notifier per event (a Notifier ends one run); the heartbeat pings only, never the webhook. */
  #notifier(webhook: boolean): Notifier {
    const notify = webhook ? this.#config.notify : { ...this.#config.notify, webhookUrl: null };
    return new Notifier(notify, { task: "wal-receive", tier: null, lockMode: this.#config.lock.mode, log: this.#log, metricsFile: this.#config.metricsFile });
  }
}
