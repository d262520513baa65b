// Where pg_receivewal writes: straight into wal/ without signing and encryption, into the
// private spool with either; a spool on the share is refused naming WAL_SPOOL_DIR.
import { describe, expect, it } from "vitest";
import type { Config } from "../../../lib/config/config.js";
import { resolveConfig } from "../../../lib/config/config.js";
import { archiveMode } from "../../../lib/receiver/archiveMode.js";
import { isSwitchName } from "../../../lib/receiver/switchWatch.js";

const base = resolveConfig({ BACKUP_DIR: "/backups", WAL_SPOOL_DIR: "/var/lib/spool" });
const key = { key: {} } as unknown as Config["signing"];
const mode = (over: { signing?: boolean; encryption?: boolean; spool?: string }) =>
  archiveMode({
    ...base,
    signing: over.signing === true ? key : base.signing,
    encryption: over.encryption === true ? { ...base.encryption, recipients: ["age1x"] } : base.encryption,
    wal: { ...base.wal, spoolDir: over.spool ?? base.wal.spoolDir },
  });

describe("archiveMode", () => {
  it.each([
    ["neither", {}, { kind: "direct", receiveDir: "/backups/wal" }],
    ["signing", { signing: true }, { kind: "spool", receiveDir: "/var/lib/spool", sign: true, encrypt: false }],
    ["encryption", { encryption: true }, { kind: "spool", receiveDir: "/var/lib/spool", sign: false, encrypt: true }],
    ["both", { signing: true, encryption: true }, { kind: "spool", receiveDir: "/var/lib/spool", sign: true, encrypt: true }],
    ["a spool beside BACKUP_DIR with a similar name", { encryption: true, spool: "/backups-spool" }, { kind: "spool", receiveDir: "/backups-spool", sign: false, encrypt: true }],
  ])("%s", (_what, over, expected) => {
    expect(mode(over)).toEqual(expected);
  });

  it.each(["/backups", "/backups/spool", "/backups/wal/.spool"])("refuses WAL_SPOOL_DIR=%s inside BACKUP_DIR", (spool) => {
    expect(() => mode({ encryption: true, spool })).toThrow(/WAL_SPOOL_DIR=.* is inside BACKUP_DIR=\/backups; it must be private to wal-receive .*before it is encrypted/);
  });
});

describe("isSwitchName", () => {
  it.each([
    ["000000010000000000000003.gz", true],
    ["000000010000000000000003", true],
    ["00000002.history", true],
    ["000000010000000000000003.gz.partial", false],
    ["000000010000000000000003.gz.abc123.tmp", false],
    ["notes", false],
  ])("%s: %s", (name, expected) => {
    expect(isSwitchName(name)).toBe(expected);
  });
});
