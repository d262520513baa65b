// The pure parts of the supervisor: pg_receivewal's arguments and which exits are fatal.
import { describe, expect, it } from "vitest";
import { resolveConfig } from "../../../lib/config/config.js";
import { fatalError } from "../../../lib/receiver/supervisor.js";
import { receiveArgs } from "../../../lib/receiver/process.js";
import { KEEPALIVE_CONNINFO } from "../../../lib/postgres/connection.js";

const config = (extra: Record<string, string> = {}) => resolveConfig({ BACKUP_DIR: "/backups", PGUSER: "backup", ...extra });

describe("receiveArgs", () => {
  it("streams into wal/ through the slot, without its own loop, flushing every write, seeing a dead server (keepalives)", () => {
    expect(receiveArgs(config())).toEqual(["-D", "/backups/wal", `--dbname=${KEEPALIVE_CONNINFO}`, "--slot=pg_swarm_backup", "--no-loop", "--no-password", "--synchronous", "--status-interval=5", "--compress=gzip"]);
  });
  it.each([
    ["lz4", "--compress=lz4"],
    ["none", undefined],
  ])("WAL_COMPRESSION=%s", (codec, flag) => {
    const args = receiveArgs(config({ WAL_COMPRESSION: codec }));
    expect(args.find((a) => a.startsWith("--compress"))).toBe(flag);
  });
});

describe("fatalError", () => {
  it.each([
    ["no-permission", 8, /ALTER ROLE "backup" REPLICATION.*host replication backup/],
    ["storage-full", 9, /\/backups\/wal is full/],
    ["compression-unsupported", 2, /WAL_COMPRESSION=gzip is not supported/],
    ["foreign-timeline", 1, /not in the server's history/],
  ] as const)("%s → exit %i", (fault, code, message) => {
    const e = fatalError(config(), fault, "pg_receivewal: error: something");
    expect(e?.exitCode).toBe(code);
    expect(e?.message).toMatch(message);
  });
  it.each(["transient", "slot-missing", "wal-removed", "switch-point"] as const)("%s is not fatal (restart)", (fault) => {
    expect(fatalError(config(), fault, "")).toBeNull();
  });
});
