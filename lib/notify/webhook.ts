// The webhook POSTed at the end of a task (NOTIFY_URL): one JSON object whose fields a relay
// or a script can read, plus a `text` line that Slack, Mattermost, Rocket.Chat and ntfy (JSON)
// show as they are, without a relay. Pure.
import { capBytes } from "./healthcheck.js";

export type RunStatus = "success" | "skipped" | "failure";
export type NotifyOn = "failure" | "always";

export interface RunReport {
  task: string;
  tier: string | null;
  status: RunStatus;
  exitCode: number;
  /** The task's error message (failure) or its one-line summary; null when there is none. */
  message: string | null;
  backup: string | null;
  bytes: number | null;
  durationSeconds: number;
  host: string;
  time: Date;
}

/** The JSON POSTed: the report, with the tool, the time as ISO text and the human line. */
export interface WebhookBody extends Omit<RunReport, "status" | "time"> {
  tool: string;
  version: string;
  status: RunStatus | "test";
  time: string;
  text: string;
}

const MESSAGE_MAX_BYTES = 4096;

/** Whether the webhook is sent for a run that ended with `status`. */
export function shouldSendWebhook(on: NotifyOn, status: RunStatus): boolean {
  return on === "always" || status === "failure";
}

/** The one human line, e.g. "pg-swarm-backup: backup incremental FAILED on db-1 (exit 8): cannot connect …". */
export function webhookText(r: RunReport, tool: string): string {
  const what = r.tier === null ? r.task : `${r.task} ${r.tier}`;
  const verdict = { success: "succeeded", skipped: "skipped (nothing to do)", failure: "FAILED" }[r.status];
  const detail = r.status === "failure" ? ` (exit ${r.exitCode}): ${r.message ?? "no message"}` : r.backup !== null ? `: ${r.backup}` : "";
  return capBytes(`${tool}: ${what} ${verdict} on ${r.host} in ${r.durationSeconds.toFixed(1)} s${detail}`, MESSAGE_MAX_BYTES);
}

export function webhookBody(r: RunReport, tool: { name: string; version: string }): WebhookBody {
  return {
    tool: tool.name,
    version: tool.version,
    task: r.task,
    tier: r.tier,
    status: r.status,
    exitCode: r.exitCode,
    message: r.message === null ? null : capBytes(r.message, MESSAGE_MAX_BYTES),
    backup: r.backup,
    bytes: r.bytes,
    durationSeconds: Math.round(r.durationSeconds * 1000) / 1000,
    host: r.host,
    time: r.time.toISOString(),
    text: webhookText(r, tool.name),
  };
}
