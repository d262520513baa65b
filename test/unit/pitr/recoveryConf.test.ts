import { describe, expect, it } from "vitest";
import { recoverySettings, recoveryTime } from "../../../lib/pitr/recoveryConf.js";

const STAMP = new Date("2024-01-10T13:00:00Z");

describe("recoverySettings", () => {
  it("without a target: the end of the staged WAL, then promote", () => {
    const text = recoverySettings(null, STAMP);
    expect(text).toContain(`restore_command = 'cp "pgsb_wal/%f" "%p"'`);
    // The server runs it in the data directory once recovery has ended, when nothing reads pgsb_wal/ again.
    expect(text).toContain(`recovery_end_command = 'rm -rf pgsb_wal'`);
    expect(text).toContain("recovery_target_timeline = 'latest'");
    expect(text).toContain("recovery_target_action = 'promote'");
    expect(text).not.toMatch(/recovery_target_time =/);
  });

  it("with a target: its time with a numeric zone", () => {
    expect(recoverySettings(new Date("2024-01-10T12:00:00.25Z"), STAMP)).toContain("recovery_target_time = '2024-01-10 12:00:00.250+00'");
    expect(recoveryTime(new Date("2024-01-10T12:00:00Z"))).toBe("2024-01-10 12:00:00.000+00");
  });
});
