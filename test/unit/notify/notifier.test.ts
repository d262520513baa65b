import { describe, expect, it } from "vitest";
import { runStatus } from "../../../lib/notify/notifier.js";

describe("runStatus", () => {
  it.each([
    [{ exitCode: 0 }, "wait", "success"],
    [{ exitCode: 0, skipped: true }, "wait", "skipped"],
    [{ exitCode: 1 }, "wait", "failure"],
    [{ exitCode: 3 }, "wait", "failure"],
    [{ exitCode: 3 }, "skip", "skipped"],
    [{ exitCode: 6 }, "wait", "failure"],
    [{ exitCode: 143 }, "skip", "failure"],
  ] as const)("%j under LOCK_MODE=%s -> %s", (end, lockMode, status) => {
    expect(runStatus(end, lockMode)).toBe(status);
  });
});
