// Tells people about a task run: the healthcheck pings (HEALTHCHECK_URL: start, then success
// or fail) and the webhook (NOTIFY_URL, per NOTIFY_ON). A notification that cannot be
// delivered never changes the task's exit code nor hides its error: it is logged as a warning
// naming the host only and counted in METRICS_FILE (pgsb_notify_failures_total).
import { hostname } from "node:os";
import type { NotifyConfig } from "../config/config.js";
import { deliver, describeDelivery } from "./delivery.js";
import type { DeliveryRequest, DeliveryResult } from "./delivery.js";
import { ExitCode } from "../core/errors.js";
import { failBody, pingUrl } from "./healthcheck.js";
import type { PingEvent } from "./healthcheck.js";
import type { Logger } from "../core/log.js";
import { recordNotifyFailures } from "../core/metrics.js";
import { Secret } from "../core/secret.js";
import { TOOL } from "../core/version.js";
import { shouldSendWebhook, webhookBody } from "./webhook.js";
import type { RunStatus } from "./webhook.js";

/**
 * The time the failure path may take when the task is being stopped: Docker sends SIGKILL
 * 10 s after SIGTERM (the default stop grace period), and the shutdown needs the rest.
 */
export const STOP_NOTIFY_BUDGET_MS = 3000;

const COUNT_GRACE_MS = 500;

export type NotifyTarget = "healthcheck" | "webhook";

export interface RunEnd {
  exitCode: number;
  /** The task's error message (already free of passwords), or its one-line summary. */
  message: string | null;
  /** A backup that found nothing to do: a success for the monitor, "skipped" in the webhook. */
  skipped?: boolean;
  backup?: string | null;
  bytes?: number | null;
}

/**
 * success, skipped or failure. Exit 0 is a success (skipped when nothing was to do); exit 3
 * under LOCK_MODE=skip is a run that stepped aside by design for another task (auto-restore
 * during a long backup), skipped rather than a failure. Everything else is a failure. Pure.
 */
export function runStatus(end: Pick<RunEnd, "exitCode" | "skipped">, lockMode: "wait" | "skip"): RunStatus {
  if (end.exitCode === ExitCode.ok) return end.skipped === true ? "skipped" : "success";
  if (end.exitCode === ExitCode.lockBusy && lockMode === "skip") return "skipped";
  return "failure";
}

export interface NotifierOptions {
  task: string;
  tier: string | null;
  lockMode: "wait" | "skip";
  log: Logger;
  metricsFile: string | null;
  startedAt?: number;
}

export class Notifier {
  readonly #config: NotifyConfig;
  readonly #opts: NotifierOptions;
  readonly #startedAt: number;
  #start: Promise<void> = Promise.resolve();
  #end: Promise<void> | null = null;
  readonly #failures: Record<NotifyTarget, number> = { healthcheck: 0, webhook: 0 };

  constructor(config: NotifyConfig, opts: NotifierOptions) {
    this.#config = config;
    this.#opts = opts;
    this.#startedAt = opts.startedAt ?? Date.now();
  }

  get enabled(): boolean {
    return this.#config.healthcheckUrl !== null || this.#config.webhookUrl !== null;
  }

  /** Sends /start without holding up the task; the end ping waits for it, so the monitor sees them in order. */
  start(): void {
    const url = this.#config.healthcheckUrl;
    if (url === null) return;
    this.#start = this.#ping(url, "start", undefined, Infinity);
  }

  /**
   * Sends the end of the run: the success or /fail ping, and the webhook if NOTIFY_ON asks
   * for it. Called once; a second call (a signal arriving while the first is under way)
   * waits for the first within its own budget. `budgetMs` bounds the whole call.
   */
  finish(end: RunEnd, budgetMs = Infinity): Promise<void> {
    const deadline = Date.now() + budgetMs;
    if (this.#end !== null) return Promise.race([this.#end, sleepUntil(deadline)]);
    this.#end = this.#finish(end, deadline);
    return this.#end;
  }

  /** The failure path, for the end of a failed task and for a signal: the /fail ping and the failure webhook. */
  failure(exitCode: number, message: string, budgetMs = Infinity): Promise<void> {
    return this.finish({ exitCode, message }, budgetMs);
  }

  async #finish(end: RunEnd, deadline: number): Promise<void> {
    await Promise.race([this.#start, sleepUntil(deadline)]);
    const status = runStatus(end, this.#opts.lockMode);
    const sends: Promise<void>[] = [];
    const hc = this.#config.healthcheckUrl;
    if (hc !== null) {
      const fail = status === "failure";
      sends.push(this.#ping(hc, fail ? "fail" : "success", fail ? failBody(this.#label(), end.exitCode, end.message ?? "") : undefined, deadline));
    }
    const hook = this.#config.webhookUrl;
    if (hook !== null && shouldSendWebhook(this.#config.on, status)) sends.push(this.#webhook(hook, end, status, deadline));
    await Promise.all(sends);
    // The metrics lock may be held by another task; a stopping task does not wait long for it.
    await Promise.race([this.#countFailures(), sleepUntil(deadline + COUNT_GRACE_MS)]);
  }

  #label(): string {
    return this.#opts.tier === null ? this.#opts.task : `${this.#opts.task} ${this.#opts.tier}`;
  }

  async #ping(base: Secret, event: PingEvent, body: string | undefined, deadline: number): Promise<void> {
    const req: DeliveryRequest = { url: new Secret(pingUrl(base.reveal(), event)), method: "POST", body: body ?? "", contentType: "text/plain; charset=utf-8" };
    this.#settle("healthcheck", `ping ${event === "success" ? "success" : `/${event}`}`, await deliver(req, this.#config.timeoutSeconds * 1000, deadline));
  }

  async #webhook(url: Secret, end: RunEnd, status: RunStatus, deadline: number): Promise<void> {
    const body = webhookBody(
      {
        task: this.#opts.task,
        tier: this.#opts.tier,
        status,
        exitCode: end.exitCode,
        message: end.message,
        backup: end.backup ?? null,
        bytes: end.bytes ?? null,
        durationSeconds: (Date.now() - this.#startedAt) / 1000,
        host: hostname(),
        time: new Date(),
      },
      TOOL,
    );
    const req: DeliveryRequest = { url, method: "POST", body: JSON.stringify(body), contentType: "application/json" };
    this.#settle("webhook", `webhook (${status})`, await deliver(req, this.#config.timeoutSeconds * 1000, deadline));
  }

  #settle(target: NotifyTarget, what: string, r: DeliveryResult): void {
    if (r.ok) {
      this.#opts.log.debug({ notify: target, host: r.host, status: r.status, attempts: r.attempts }, `${what} delivered to ${r.host}`);
      return;
    }
    this.#failures[target]++;
    this.#opts.log.warn(
      { notify: target, host: r.host, status: r.status, error: r.error, attempts: r.attempts },
      `${what} to ${r.host} not delivered: ${describeDelivery(r)}; the task's result is unchanged`,
    );
  }

  async #countFailures(): Promise<void> {
    const file = this.#opts.metricsFile;
    if (file === null || this.#failures.healthcheck + this.#failures.webhook === 0) return;
    const counts = { ...this.#failures };
    this.#failures.healthcheck = 0;
    this.#failures.webhook = 0;
    await recordNotifyFailures(file, counts).catch((err: unknown) => this.#opts.log.warn({ err: (err as Error).message }, "undelivered notifications not counted"));
  }
}

function sleepUntil(deadline: number): Promise<void> {
  if (deadline === Infinity) return new Promise(() => {});
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, deadline - Date.now())).unref());
}
