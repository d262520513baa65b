// One HTTP request to a monitor or webhook, with Node's built-in fetch: a timeout per
// attempt, a few retries with backoff on network errors and 5xx (the endpoint may be
// restarting), never on 4xx (the URL or the body is wrong; repeating will not help). A
// deadline bounds the whole delivery, so a task being stopped still fits in its grace period.
// Nothing here throws: the result says what happened, naming the host only.
import type { Secret } from "../core/secret.js";
import { hostOnly, scrubUrls } from "./hostOnly.js";
import { sleep } from "../core/concurrency.js";

export const MAX_ATTEMPTS = 3;
const BACKOFF_BASE_MS = 500;
/** An attempt that would get less time than this is not started. */
const MIN_ATTEMPT_MS = 100;
const BODY_SHOWN = 200;

export type AttemptOutcome = { kind: "answered"; status: number } | { kind: "network"; error: string };

/** Whether another attempt may help. Pure. */
export function shouldRetry(outcome: AttemptOutcome): boolean {
  return outcome.kind === "network" || outcome.status >= 500;
}

/** Wait before attempt `next` (2, 3, …): 0.5 s, 1 s, 2 s … Pure. */
export function backoffMs(next: number): number {
  return BACKOFF_BASE_MS * 2 ** (next - 2);
}

export interface DeliveryRequest {
  url: Secret;
  method: "GET" | "POST";
  body?: string;
  contentType?: string;
}

export interface DeliveryResult {
  ok: boolean;
  host: string;
  attempts: number;
  /** The last HTTP status, or null when no attempt got an answer. */
  status: number | null;
  statusText: string;
  /** The last network error (a code such as ECONNREFUSED, or "timeout after 10 s"); null when answered. */
  error: string | null;
  /** The start of the last answer's body, scrubbed of the URL's secret parts. */
  body: string;
  ms: number;
}

function networkError(err: unknown, timeoutMs: number): string {
  const e = err as { name?: string; code?: string; cause?: { code?: string; message?: string } } | null;
  if (e?.name === "TimeoutError" || e?.name === "AbortError") return `timeout after ${timeoutMs / 1000} s`;
  return e?.cause?.code ?? e?.code ?? e?.cause?.message ?? String(err);
}

/** Sends `req`, retrying as `shouldRetry` says, each attempt bounded by `timeoutMs` and all of them by `deadline` (epoch ms). */
export async function deliver(req: DeliveryRequest, timeoutMs: number, deadline = Infinity): Promise<DeliveryResult> {
  const started = Date.now();
  const result: DeliveryResult = { ok: false, host: hostOnly(req.url.reveal()), attempts: 0, status: null, statusText: "", error: null, body: "", ms: 0 };
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    if (attempt > 1) {
      const wait = backoffMs(attempt);
      if (Date.now() + wait + MIN_ATTEMPT_MS > deadline) break;
      await sleep(wait);
    }
    const budget = Math.min(timeoutMs, deadline - Date.now());
    if (budget < MIN_ATTEMPT_MS) break;
    result.attempts = attempt;
    let outcome: AttemptOutcome;
    try {
      const signal = AbortSignal.timeout(budget);
      const headers: Record<string, string> = { "user-agent": "pg-swarm-backup" };
      if (req.contentType !== undefined) headers["content-type"] = req.contentType;
      const res = await fetch(req.url.reveal(), { method: req.method, body: req.body, headers, signal });
      const text = await res.text().catch(() => "");
      Object.assign(result, { status: res.status, statusText: res.statusText, error: null, body: scrubUrls(text.slice(0, BODY_SHOWN).trim(), [req.url]) });
      outcome = { kind: "answered", status: res.status };
    } catch (err) {
      outcome = { kind: "network", error: scrubUrls(networkError(err, budget), [req.url]) };
      Object.assign(result, { status: null, statusText: "", error: outcome.error, body: "" });
    }
    result.ok = outcome.kind === "answered" && outcome.status >= 200 && outcome.status < 300;
    if (result.ok || !shouldRetry(outcome)) break;
  }
  result.ms = Date.now() - started;
  return result;
}

/** "404 Not Found after 1 attempt", "ECONNREFUSED after 3 attempts": for logs and notify-test. */
export function describeDelivery(r: DeliveryResult): string {
  const what = r.error ?? `${r.status ?? "no answer"}${r.statusText ? ` ${r.statusText}` : ""}`;
  return `${what} after ${r.attempts} attempt${r.attempts === 1 ? "" : "s"} (${r.ms} ms)`;
}
