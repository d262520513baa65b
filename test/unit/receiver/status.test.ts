import { describe, expect, it } from "vitest";
import { formatSlotStatus, formatWalReceiver } from "../../../lib/receiver/status.js";
import { formatWalSummary } from "../../../lib/wal/summary.js";

const NOW = new Date("2026-11-29T12:00:00Z");
const t = (s: number) => NOW.getTime() / 1000 - s;
const report = { slot: "pg_swarm_backup", lsn: "0/3000148", lsnBytes: 0x3000148, lastReceivedAt: t(3), lagSeconds: 0, lagBytes: 0, restarts: 1, running: true, updatedAt: t(2) };

describe("formatWalReceiver", () => {
  it.each([
    ["running", report, /^WAL receiver \(slot pg_swarm_backup\): running; lag 0 s \(0 bytes\); last received 0\/3000148 at 2026-11-29 12:59:57 CET; 1 restart\(s\)$/],
    ["restarting", { ...report, running: false, lagSeconds: 42 }, /DOWN \(restarting\); lag 42 s/],
    ["a stale report", { ...report, updatedAt: t(600) }, /NOT REPORTING for 600 s \(is the wal-receive service running\?\)/],
    ["nothing received", { ...report, lsn: null, lsnBytes: null, lastReceivedAt: null, lagBytes: null }, /lag 0 s; nothing received yet/],
  ])("%s", (_label, r, expected) => {
    expect(formatWalReceiver(r, NOW, "Europe/Berlin")).toMatch(expected);
  });
});

describe("formatWalSummary", () => {
  it("names the times, the timeline, the files and what was ignored", () => {
    const line = formatWalSummary(
      { oldest: "000000010000000000000001", newest: "000000020000000000000004.gz.partial", oldestTime: "2026-11-29T10:00:00.000Z", newestTime: "2026-11-29T11:59:58.000Z", timeline: 2, files: 5, bytes: 5 * 1024 * 1024, ignored: 1 },
      "UTC",
    );
    expect(line).toBe("WAL: 2026-11-29 10:00:00 UTC to 2026-11-29 11:59:58 UTC (timeline 2, 000000010000000000000001 to 000000020000000000000004.gz.partial, 5 files, 5.0 MiB, 1 other file(s) ignored)\n");
  });
});

describe("formatSlotStatus (without METRICS_FILE)", () => {
  it.each([
    [{ slot: "s", exists: true, active: true, lsn: "0/3000148", lagBytes: 0 }, "WAL receiver (slot s, from the server): receiving; flushed up to 0/3000148, 0 bytes behind (set METRICS_FILE for the lag in seconds)"],
    [{ slot: "s", exists: true, active: false, lsn: null, lagBytes: null }, "WAL receiver (slot s, from the server): NOT CONNECTED (is the wal-receive service running?); flushed up to nothing yet (set METRICS_FILE for the lag in seconds)"],
    [{ slot: "s", exists: false, active: false, lsn: null, lagBytes: null }, "WAL receiver (slot s, from the server): the slot does not exist; is the wal-receive service running?"],
  ])("%j", (s, line) => {
    expect(formatSlotStatus(s)).toBe(line);
  });
});
