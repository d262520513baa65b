import { describe, expect, it } from "vitest";
import { ExitCode, TaskError } from "../../../lib/core/errors.js";
import { ProcessError } from "../../../lib/core/proc.js";
import { basebackupFailure, walRangeOf } from "../../../lib/base/backup.js";

const PG = { user: "backup", host: "postgres", port: 5432 };

describe("walRangeOf", () => {
  it("reads the start and end LSN and the start timeline from the manifest's end", () => {
    const tail = Buffer.from(`"Checksum": "00000000" }\n],\n"WAL-Ranges": [\n{ "Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100" }\n],\n"Manifest-Checksum": "ab"}\n`);
    expect(walRangeOf(tail)).toEqual({ timeline: 1, startLsn: "0/2000028", stopLsn: "0/2000100" });
  });

  it("spans a promotion during the backup: first range's start and timeline, last range's end", () => {
    const tail = Buffer.from(`"WAL-Ranges": [\n{ "Timeline": 2, "Start-LSN": "1/a0", "End-LSN": "1/F0" },\n{ "Timeline": 3, "Start-LSN": "1/F0", "End-LSN": "2/10" }\n]}`);
    expect(walRangeOf(tail)).toEqual({ timeline: 2, startLsn: "1/A0", stopLsn: "2/10" });
  });

  it("is null without WAL-Ranges", () => {
    expect(walRangeOf(Buffer.from('{"Files": []}'))).toBeNull();
    expect(walRangeOf(Buffer.from('"WAL-Ranges": []'))).toBeNull();
  });
});

describe("basebackupFailure", () => {
  const failed = (stderr: string) => basebackupFailure(new ProcessError("pg_basebackup", 1, undefined, stderr), PG) as TaskError;

  it.each<[string, string, ExitCode]>([
    ['pg_basebackup: error: connection to server failed: FATAL:  no pg_hba.conf entry for replication connection from host "10.0.1.5", user "backup"', 'add "host replication backup', ExitCode.database],
    ["FATAL:  must be superuser or replication role to start walsender", 'ALTER ROLE "backup" REPLICATION', ExitCode.database],
    ["FATAL:  number of requested standby connections exceeds max_wal_senders (currently 1)", "raise max_wal_senders", ExitCode.database],
    ['FATAL:  password authentication failed for user "backup"', "rejected the password", ExitCode.database],
    ["pg_basebackup: error: can only write single tablespace to stdout, database has 2", "only the default tablespaces", ExitCode.refused],
    ["pg_basebackup: error: could not read COPY data: disk on fire", "pg_basebackup failed; nothing was written", ExitCode.failed],
  ])("%s", (stderr, fix, code) => {
    const err = failed(stderr);
    expect(err).toBeInstanceOf(TaskError);
    expect(err.exitCode).toBe(code);
    expect(err.message).toContain(fix);
  });

  it("passes other errors through", () => {
    const e = new Error("x");
    expect(basebackupFailure(e, PG)).toBe(e);
  });
});
