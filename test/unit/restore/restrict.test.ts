import { describe, expect, it } from "vitest";
import { canRestrict, parsePsqlVersion, restrictKey, restrictMode } from "../../../lib/restore/restrict.js";

describe("parsePsqlVersion and canRestrict", () => {
  it.each([
    ["psql (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)", "15.18", true],
    ["psql (PostgreSQL) 15.14", "15.14", true],
    ["psql (PostgreSQL) 15.13", "15.13", false],
    ["psql (PostgreSQL) 16.9", "16.9", false],
    ["psql (PostgreSQL) 16.10", "16.10", true],
    ["psql (PostgreSQL) 17.5", "17.5", false],
    ["psql (PostgreSQL) 17.6", "17.6", true],
    ["psql (PostgreSQL) 14.19", "14.19", true],
    ["psql (PostgreSQL) 13.21", "13.21", false],
    ["psql (PostgreSQL) 12.22", "12.22", false],
    ["psql (PostgreSQL) 18.1", "18.1", true],
    ["psql (PostgreSQL) 19devel", "19", true],
  ])("%s: %s, restricts itself: %s", (out, text, can) => {
    const v = parsePsqlVersion(out);
    expect(v?.text).toBe(text);
    expect(canRestrict(v as NonNullable<typeof v>)).toBe(can);
  });

  it("reads no version from anything else", () => {
    expect(parsePsqlVersion("bash: psql: command not found")).toBeNull();
  });
});

describe("restrictKey", () => {
  it("is 256 random bits of letters and digits, new each time", () => {
    const a = restrictKey();
    expect(a).toMatch(/^[0-9a-f]{64}$/);
    expect(restrictKey()).not.toBe(a);
  });
});

describe("restrictMode", () => {
  it("restricts with the installed psql (15.14 or later here)", async () => {
    expect(await restrictMode(process.env, false)).toMatchObject({ restricted: true });
  });

  it("refuses unsigned content without a psql that can restrict itself (exit 2), runs signed content", async () => {
    const none = { PATH: "/nonexistent" };
    await expect(restrictMode(none, false)).rejects.toMatchObject({ exitCode: 2, message: expect.stringMatching(/did not report its version .*is not given unsigned backup content.*BACKUP_VERIFY_KEY_FILE/) });
    expect(await restrictMode(none, true)).toEqual({ restricted: false, version: "unknown" });
  });
});
