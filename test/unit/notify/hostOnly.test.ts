import { describe, expect, it } from "vitest";
import { hostOnly, scrubUrls } from "../../../lib/notify/hostOnly.js";
import { Secret } from "../../../lib/core/secret.js";

describe("hostOnly", () => {
  it.each([
    ["https://hc-ping.com/0d1e-4f5a", "hc-ping.com"],
    ["http://user:pw@127.0.0.1:8080/ping/tok?key=val", "127.0.0.1:8080"],
    ["https://hooks.slack.com/services/T0/B0/xyz", "hooks.slack.com"],
    ["not a url", "(invalid URL)"],
  ])("%s -> %s", (url, host) => {
    expect(hostOnly(url)).toBe(host);
  });
});

describe("scrubUrls", () => {
  const url = new Secret("https://user:passw0rd@hooks.example.com/services/T0AB/B0CD/tokenXYZ123?key=query-secret&x=1");
  it.each([
    ["fetch https://user:passw0rd@hooks.example.com/services/T0AB/B0CD/tokenXYZ123?key=query-secret&x=1 failed", "fetch [redacted] failed"],
    ["bad path /services/T0AB/B0CD/tokenXYZ123?key=query-secret&x=1", "bad path [redacted]"],
    ["unknown token tokenXYZ123", "unknown token [redacted]"],
    ["key query-secret rejected", "key [redacted] rejected"],
    ["password passw0rd", "password [redacted]"],
    ["host hooks.example.com is down", "host hooks.example.com is down"],
  ])("%s", (text, out) => {
    expect(scrubUrls(text, [url, null])).toBe(out);
  });
});
