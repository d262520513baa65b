import { describe, expect, it } from "vitest";
import { ExitCode, TaskError } from "../../../lib/core/errors.js";
import { ProcessError } from "../../../lib/core/proc.js";
import { basebackupFailure, reportedWalRange, walRangeOf } from "../../../lib/base/backup.js";

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

describe("reportedWalRange", () => {
  const said = ["pg_basebackup: initiating base backup, waiting for checkpoint to complete", "pg_basebackup: checkpoint completed"];

  it.each<[string, string[], ReturnType<typeof reportedWalRange>]>([
    ["pg_basebackup -v's lines", [...said, "pg_basebackup: write-ahead log start point: 0/2000028 on timeline 1", "pg_basebackup: write-ahead log end point: 0/2000100", "pg_basebackup: base backup completed"], { timeline: 1, startLsn: "0/2000028", stopLsn: "0/2000100" }],
    ["lower-case hex and a later timeline", ["pg_basebackup: write-ahead log start point: 1A/b0000028 on timeline 3", "pg_basebackup: write-ahead log end point: 1A/C0000000"], { timeline: 3, startLsn: "1A/B0000028", stopLsn: "1A/C0000000" }],
    ["no end point (failed before the end)", [...said, "pg_basebackup: write-ahead log start point: 0/2000028 on timeline 1"], null],
    ["no start point", ["pg_basebackup: write-ahead log end point: 0/2000100"], null],
    ["an end before the start", ["pg_basebackup: write-ahead log start point: 0/3000000 on timeline 1", "pg_basebackup: write-ahead log end point: 0/2000000"], null],
    ["nothing", [], null],
  ])("%s", (_what, lines, range) => {
    expect(reportedWalRange(lines)).toEqual(range);
  });
});

describe("basebackupFailure", () => {
  const failed = (stderr: string) => basebackupFailure(new ProcessError("pg_basebackup", 1, undefined, stderr), PG) as TaskError;

  it.each<[string, string, ExitCode]>([
    ['pg_basebackup: error: connection to server failed: FATAL:  no pg_hba.conf entry for replication connection from host "10.0.1.5", user "backup"', 'add "host replication backup', ExitCode.database],
    ["FATAL:  must be superuser or replication role to start walsender", 'ALTER ROLE "backup" REPLICATION', ExitCode.database],
    ["FATAL:  number of requested standby connections exceeds max_wal_senders (currently 1)", "raise max_wal_senders", ExitCode.database],
    ['FATAL:  password authentication failed for user "backup"', "rejected the password", ExitCode.database],
    ["pg_basebackup: error: can only write single tablespace to stdout, database has 2", "move their tables, indexes and databases into pg_default", ExitCode.refused],
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
