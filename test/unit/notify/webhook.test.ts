import { describe, expect, it } from "vitest";
import { shouldSendWebhook, webhookBody, webhookText } from "../../../lib/notify/webhook.js";
import type { RunReport } from "../../../lib/notify/webhook.js";

const TOOL = { name: "pg-swarm-backup", version: "1.2.3" };
const base: RunReport = {
  task: "backup",
  tier: "incremental",
  status: "success",
  exitCode: 0,
  message: null,
  backup: "20240110_030000_incremental.sql.bz2",
  bytes: 1234,
  durationSeconds: 2.3456,
  host: "db-node-1",
  time: new Date("2024-01-10T03:00:02.500Z"),
};

describe("shouldSendWebhook", () => {
  it.each([
    ["failure", "failure", true],
    ["failure", "success", false],
    ["failure", "skipped", false],
    ["always", "failure", true],
    ["always", "success", true],
    ["always", "skipped", true],
  ] as const)("NOTIFY_ON=%s, %s -> %s", (on, status, send) => {
    expect(shouldSendWebhook(on, status)).toBe(send);
  });
});

describe("webhookBody", () => {
  it("has the documented fields and a text line for chat webhooks", () => {
    expect(webhookBody(base, TOOL)).toEqual({
      tool: "pg-swarm-backup",
      version: "1.2.3",
      task: "backup",
      tier: "incremental",
      status: "success",
      exitCode: 0,
      message: null,
      backup: "20240110_030000_incremental.sql.bz2",
      bytes: 1234,
      durationSeconds: 2.346,
      host: "db-node-1",
      time: "2024-01-10T03:00:02.500Z",
      text: "pg-swarm-backup: backup incremental succeeded on db-node-1 in 2.3 s: 20240110_030000_incremental.sql.bz2",
    });
  });

  it.each([
    [{ status: "failure", exitCode: 8, message: "cannot connect", backup: null }, "pg-swarm-backup: backup incremental FAILED on db-node-1 in 2.3 s (exit 8): cannot connect"],
    [{ status: "skipped", backup: null }, "pg-swarm-backup: backup incremental skipped (nothing to do) on db-node-1 in 2.3 s"],
    [{ task: "cleanup", tier: null, backup: null }, "pg-swarm-backup: cleanup succeeded on db-node-1 in 2.3 s"],
  ] as const)("text for %j", (change, text) => {
    expect(webhookText({ ...base, ...change }, "pg-swarm-backup")).toBe(text);
  });

  it("keeps a long error message to a few KB", () => {
    const body = webhookBody({ ...base, status: "failure", exitCode: 1, message: "e".repeat(50_000) }, TOOL);
    expect(Buffer.byteLength(body.message ?? "")).toBeLessThanOrEqual(4096);
    expect(Buffer.byteLength(body.text)).toBeLessThanOrEqual(4096);
  });
});
