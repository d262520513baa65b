import { describe, expect, it } from "vitest";
import { PING_BODY_MAX_BYTES, capBytes, failBody, pingUrl } from "../../../lib/notify/healthcheck.js";

describe("pingUrl", () => {
  it.each([
    ["https://hc-ping.com/abc", "start", "https://hc-ping.com/abc/start"],
    ["https://hc-ping.com/abc", "success", "https://hc-ping.com/abc"],
    ["https://hc-ping.com/abc", "fail", "https://hc-ping.com/abc/fail"],
    ["https://hc-ping.com/abc/", "fail", "https://hc-ping.com/abc/fail"],
    ["https://hc-ping.com/abc", "log", "https://hc-ping.com/abc/log"],
    ["https://hc-ping.com/ping-key/backup-full?create=1", "start", "https://hc-ping.com/ping-key/backup-full/start?create=1"],
    ["http://127.0.0.1:8000/ping/a%20b", "fail", "http://127.0.0.1:8000/ping/a%20b/fail"],
    ["https://hc.example.com", "start", "https://hc.example.com/start"],
  ] as const)("%s %s -> %s", (base, event, url) => {
    expect(pingUrl(base, event)).toBe(url);
  });
});

describe("capBytes and failBody", () => {
  it.each([
    ["short", 10, "short"],
    ["0123456789abc", 10, "0123 […]"],
    ["ääääää", 11, "ää […]"],
    ["ääääää", 10, "ää […]"],
    ["ääääää", 12, "ääääää"],
  ])("capBytes(%j, %d) = %j", (text, max, out) => {
    expect(capBytes(text, max)).toBe(out);
    expect(Buffer.byteLength(capBytes(text, max))).toBeLessThanOrEqual(max);
  });

  it("puts the exit code first and keeps the body to a few KB", () => {
    expect(failBody("backup full", 8, "cannot connect to PostgreSQL")).toBe("backup full: exit code 8\ncannot connect to PostgreSQL\n");
    const long = failBody("backup full", 1, "x".repeat(100_000));
    expect(long.startsWith("backup full: exit code 1\nxxx")).toBe(true);
    expect(Buffer.byteLength(long)).toBeLessThanOrEqual(PING_BODY_MAX_BYTES);
  });
});
