import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_ATTEMPTS, backoffMs, deliver, shouldRetry } from "../../../lib/notify/delivery.js";
import { Secret } from "../../../lib/core/secret.js";

describe("retry decisions", () => {
  it.each([
    [{ kind: "network", error: "ECONNREFUSED" }, true],
    [{ kind: "network", error: "timeout after 10 s" }, true],
    [{ kind: "answered", status: 500 }, true],
    [{ kind: "answered", status: 503 }, true],
    [{ kind: "answered", status: 404 }, false],
    [{ kind: "answered", status: 400 }, false],
    [{ kind: "answered", status: 429 }, false],
    [{ kind: "answered", status: 301 }, false],
  ] as const)("%j -> retry %s", (outcome, retry) => {
    expect(shouldRetry(outcome)).toBe(retry);
  });

  it("backs off 0.5 s, then 1 s, within a few attempts", () => {
    expect(MAX_ATTEMPTS).toBe(3);
    expect([2, 3].map(backoffMs)).toEqual([500, 1000]);
  });
});

// A real server on 127.0.0.1: the answers are scripted per request.
describe("deliver", () => {
  let answers: (number | "hang")[] = [];
  let hits = 0;
  const server = createServer((req, res) => {
    hits++;
    const a = answers.shift() ?? 200;
    req.resume();
    if (a === "hang") return;
    res.statusCode = a;
    res.end(a === 200 ? "OK" : "no");
  });
  let url: Secret;
  beforeAll(async () => {
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    url = new Secret(`http://127.0.0.1:${(server.address() as AddressInfo).port}/ping/tok`);
  });
  afterAll(() => {
    server.closeAllConnections();
    server.close();
  });

  it.each([
    [[200], true, 1, 200],
    [[500, 502, 200], true, 3, 200],
    [[500, 500, 500], false, 3, 500],
    [[404], false, 1, 404],
  ] as const)("answers %j: ok %s after %d attempts, last status %d", async (script, ok, attempts, status) => {
    answers = [...script];
    hits = 0;
    const r = await deliver({ url, method: "POST", body: "x" }, 2000);
    expect({ ok: r.ok, attempts: r.attempts, status: r.status, hits }).toEqual({ ok, attempts, status, hits: attempts });
  });

  it("ends by the deadline however the server hangs", async () => {
    answers = ["hang", "hang", "hang"];
    const t = Date.now();
    const r = await deliver({ url, method: "POST" }, 10_000, Date.now() + 700);
    expect(Date.now() - t).toBeLessThan(1500);
    expect(r.ok).toBe(false);
    expect(r.error).toMatch(/^timeout after/);
  });
});
