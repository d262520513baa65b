// wal-receive's settings (issue 19): defaults, and a bad value fails naming the variable.
import { describe, expect, it } from "vitest";
import { resolveConfig } from "../../../lib/config/config.js";
import { ConfigError } from "../../../lib/core/errors.js";

const base = { BACKUP_DIR: "/backups" };

describe("WAL_SLOT, WAL_COMPRESSION, WAL_LAG_ALERT_SECONDS, WAL_STATUS_INTERVAL_SECONDS, WAL_SPOOL_DIR", () => {
  it("has the documented defaults", () => {
    expect(resolveConfig(base).wal).toEqual({ slot: "pg_swarm_backup", compression: "gzip", lagAlertSeconds: 300, statusIntervalSeconds: 5, spoolDir: "/tmp/pgsb-wal-spool" });
    expect(resolveConfig({ ...base, TMPDIR: "/var/tmp/" }).wal.spoolDir).toBe("/var/tmp/pgsb-wal-spool");
  });

  it("reads set values", () => {
    const c = resolveConfig({ ...base, WAL_SLOT: "site_b_1", WAL_COMPRESSION: "LZ4", WAL_LAG_ALERT_SECONDS: "60", WAL_STATUS_INTERVAL_SECONDS: "2", WAL_SPOOL_DIR: "/var/lib/spool/" });
    expect(c.wal).toEqual({ slot: "site_b_1", compression: "lz4", lagAlertSeconds: 60, statusIntervalSeconds: 2, spoolDir: "/var/lib/spool" });
  });

  it.each([
    ["WAL_SLOT", "Has-Caps"],
    ["WAL_SLOT", "a".repeat(64)],
    ["WAL_SLOT", "bad name"],
    ["WAL_COMPRESSION", "zstd"],
    ["WAL_LAG_ALERT_SECONDS", "0"],
    ["WAL_LAG_ALERT_SECONDS", "5m"],
    ["WAL_STATUS_INTERVAL_SECONDS", "0"],
    ["WAL_SPOOL_DIR", "spool"],
  ])("refuses %s=%j naming it", (name, value) => {
    expect(() => resolveConfig({ ...base, [name]: value })).toThrow(ConfigError);
    expect(() => resolveConfig({ ...base, [name]: value })).toThrow(name);
  });
});
