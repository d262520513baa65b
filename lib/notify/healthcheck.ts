// The Healthchecks.io ping convention, which Healthchecks, Cronitor's and Uptime Kuma's
// compatible endpoints and self-hosted healthchecks share: URL/start when a run begins, URL
// on success, URL/fail on failure (the body is shown to the person), URL/log for an event
// that changes nothing. Pure.

export type PingEvent = "start" | "success" | "fail" | "log";

/** Bodies are shown in the monitor's UI; Healthchecks keeps 100 KB, people read the first lines. */
export const PING_BODY_MAX_BYTES = 4096;

/** The ping URL for an event: the suffix goes at the end of the path, the query (if any) stays. */
export function pingUrl(base: string, event: PingEvent): string {
  if (event === "success") return base;
  const u = new URL(base);
  u.pathname = `${u.pathname.replace(/\/+$/, "")}/${event}`;
  return u.href;
}

/** `text` cut to at most `max` UTF-8 bytes, on a character boundary, marked when cut. */
export function capBytes(text: string, max: number): string {
  const bytes = Buffer.from(text, "utf8");
  if (bytes.length <= max) return text;
  const mark = " […]";
  let cut = bytes.subarray(0, max - Buffer.byteLength(mark)).toString("utf8");
  // A multi-byte character cut in half decodes as U+FFFD; drop it.
  cut = cut.replace(/\uFFFD$/, "");
  return cut + mark;
}

/** The body of a /fail ping: the exit code on the first line, then the task's error message. */
export function failBody(task: string, exitCode: number, message: string): string {
  return capBytes(`${task}: exit code ${exitCode}\n${message}\n`, PING_BODY_MAX_BYTES);
}
