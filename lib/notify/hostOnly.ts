// A monitor or webhook URL usually carries its token in the path or the query
// (https://hc-ping.com/<uuid>, https://hooks.slack.com/services/T…/B…/…), so only its host
// may reach logs, errors and metrics.
import { Secret, redact } from "../core/secret.js";

/** "hc-ping.com", "127.0.0.1:8080": the host and port, never user info, path or query. */
export function hostOnly(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return "(invalid URL)";
  }
}

/** The parts of a URL that may be secret: the whole URL, its path and query, and each longer path segment or query value. */
export function secretParts(url: string): string[] {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return [url];
  }
  const parts = [u.href, u.pathname + u.search, u.search.slice(1), u.username, u.password];
  for (const seg of u.pathname.split("/")) parts.push(decodeURIComponent(seg), seg);
  for (const [, v] of u.searchParams) parts.push(v, encodeURIComponent(v));
  // Longest first, so a whole path is replaced before one of its segments splits it.
  return [...new Set(parts.filter((p) => p.length >= 4 && p !== "/"))].sort((a, b) => b.length - a.length);
}

/** A text (an error message, a response body) with every secret part of the URLs replaced by [redacted]. */
export function scrubUrls(text: string, urls: readonly (Secret | null)[]): string {
  return redact(text, urls.flatMap((url) => (url === null ? [] : secretParts(url.reveal()).map((part) => new Secret(part)))));
}
