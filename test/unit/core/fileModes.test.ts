import { describe, expect, it } from "vitest";
import { resolveConfig } from "../../../lib/config/config.js";
import { ConfigError } from "../../../lib/core/errors.js";
import { DEFAULT_FILE_MODES, octal, parseMode } from "../../../lib/core/fileModes.js";

describe("parseMode", () => {
  it.each([
    [undefined, 0o640],
    ["", 0o640],
    ["0640", 0o640],
    ["640", 0o640],
    ["0o600", 0o600],
    [" 0600 ", 0o600],
    ["0666", 0o666],
    ["0777", 0o777],
  ])("BACKUP_FILE_MODE=%j is %o", (raw, mode) => {
    expect(parseMode("BACKUP_FILE_MODE", raw, 0o640, 0o600)).toBe(mode);
  });

  it.each([
    ["rw-r-----", /is not an octal mode; use an octal mode such as 0640/],
    ["0648", /is not an octal mode/],
    ["0x1a0", /is not an octal mode/],
    ["-640", /is not an octal mode/],
    ["06400", /setuid, setgid or sticky bits/],
    ["064000", /is not an octal mode/],
    ["4640", /setuid, setgid or sticky bits/],
    ["1640", /setuid, setgid or sticky bits/],
    ["0440", /does not give the owner read and write permission \(0600\)/],
    ["0240", /does not give the owner read and write/],
    ["0040", /does not give the owner read and write/],
  ])("BACKUP_FILE_MODE=%j is refused", (raw, message) => {
    expect(() => parseMode("BACKUP_FILE_MODE", raw, 0o640, 0o600)).toThrow(ConfigError);
    expect(() => parseMode("BACKUP_FILE_MODE", raw, 0o640, 0o600)).toThrow(message);
    expect(() => parseMode("BACKUP_FILE_MODE", raw, 0o640, 0o600)).toThrow(/^BACKUP_FILE_MODE=/);
  });

  it("requires search permission for the owner of a folder", () => {
    expect(() => parseMode("BACKUP_DIR_MODE", "0650", 0o750, 0o700)).toThrow(/BACKUP_DIR_MODE=0650 does not give the owner read, write and search permission \(0700\)/);
    expect(parseMode("BACKUP_DIR_MODE", "0700", 0o750, 0o700)).toBe(0o700);
  });

  it.each([
    [0o640, "0640"],
    [0o7, "0007"],
    [0o777, "0777"],
  ])("octal(%o) is %s", (mode, text) => expect(octal(mode)).toBe(text));
});

describe("resolveConfig file modes", () => {
  it("defaults to 0640 files and 0750 folders", () => {
    expect(resolveConfig({ BACKUP_DIR: "/backups" }).files).toEqual(DEFAULT_FILE_MODES);
    expect(DEFAULT_FILE_MODES).toEqual({ file: 0o640, dir: 0o750 });
  });

  it("reads BACKUP_FILE_MODE and BACKUP_DIR_MODE", () => {
    expect(resolveConfig({ BACKUP_DIR: "/backups", BACKUP_FILE_MODE: "0600", BACKUP_DIR_MODE: "0700" }).files).toEqual({ file: 0o600, dir: 0o700 });
  });

  it("fails with a ConfigError naming the variable", () => {
    expect(() => resolveConfig({ BACKUP_DIR: "/backups", BACKUP_DIR_MODE: "0640" })).toThrow(/^BACKUP_DIR_MODE=0640 does not give the owner/);
  });
});
