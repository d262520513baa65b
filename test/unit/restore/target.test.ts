import { describe, expect, it } from "vitest";
import { decideTarget, isTempName, markStatement, targetNameProblem, tempName } from "../../../lib/restore/target.js";
import type { TargetState } from "../../../lib/restore/target.js";

const decide = (source: string, target: string, state: TargetState, dropExisting = false) =>
  decideTarget({ source, target, state, dropExisting, lockDatabase: "postgres" });

describe("decideTarget", () => {
  it.each([
    // source, target, state, --drop-existing, expected
    ["app", "app", "absent", false, { action: "swap", createTemp: false, last: false }],
    ["app", "app", "empty", false, { action: "swap", createTemp: false, last: false }],
    ["app", "app", "nonEmpty", true, { action: "swap", createTemp: false, last: false }],
    ["app", "copy", "absent", false, { action: "swap", createTemp: false, last: false }],
    ["postgres", "postgres", "empty", false, { action: "inPlace" }],
    ["template1", "template1", "empty", false, { action: "inPlace" }],
    ["postgres", "postgres", "nonEmpty", true, { action: "swap", createTemp: true, last: true }],
    ["template1", "template1", "nonEmpty", true, { action: "swap", createTemp: true, last: false }],
    ["postgres", "postgres", "absent", false, { action: "swap", createTemp: true, last: false }],
    ["postgres", "pg_copy", "absent", false, { action: "swap", createTemp: true, last: false }],
  ] as const)("%s -> %s (%s, drop %s)", (source, target, state, drop, expected) => {
    expect(decide(source, target, state, drop)).toEqual(expected);
  });

  it("refuses a non-empty database without --drop-existing, whatever it is", () => {
    for (const [source, target] of [["app", "app"], ["postgres", "postgres"], ["app", "other"]] as const) {
      expect(decide(source, target, "nonEmpty")).toEqual({
        action: "refuse",
        reason: `database "${target}" exists and is not empty; pass --drop-existing to replace it (nothing was changed)`,
      });
    }
    expect(decide("app", "template0", "absent").action).toBe("refuse");
  });
});

describe("tempName", () => {
  it.each([
    ["app", "pgsb_restore_app_0a1b2c3d"],
    ['quo"te', "pgsb_restore_quo_te_0a1b2c3d"],
    ["ünïcødé", "pgsb_restore_n_c_d_0a1b2c3d"],
    ["ü", "pgsb_restore_db_0a1b2c3d"],
    ["A".repeat(63), `pgsb_restore_${"a".repeat(36)}_0a1b2c3d`],
  ])("%s -> %s", (name, expected) => {
    const t = tempName(name, "0a1b2c3d");
    expect(t).toBe(expected);
    expect(Buffer.byteLength(t)).toBeLessThanOrEqual(63);
    expect(isTempName(t)).toBe(true);
  });

  it("is unique per call", () => {
    expect(tempName("app")).not.toBe(tempName("app"));
    expect(isTempName("app")).toBe(false);
  });
});

describe("targetNameProblem", () => {
  it.each([
    ["app", null],
    ["a".repeat(63), null],
    ["ü".repeat(31), null],
    ["pgsb_restorex", null],
    ["a".repeat(64), "it is 64 bytes long; PostgreSQL keeps only 63 and would cut it silently"],
    ["ü".repeat(32), "it is 64 bytes long; PostgreSQL keeps only 63 and would cut it silently"],
    ["pgsb_restore_x", "names starting with pgsb_restore_ are reserved for the databases pg-swarm-backup creates for itself"],
    ["pgsb_verify_1", "names starting with pgsb_verify_ are reserved for the databases pg-swarm-backup creates for itself"],
  ])("%s -> %s", (name, problem) => {
    expect(targetNameProblem(name)).toBe(problem);
  });

  it("marks a temporary database by a setting no user sets by accident", () => {
    expect(markStatement("pgsb_restore_app_0a1b2c3d")).toBe("ALTER DATABASE pgsb_restore_app_0a1b2c3d SET pgsb.temporary_restore = 'on';");
  });
});
