import { describe, expect, it } from "vitest";
import { classifyReceiverExit, restartDelayMs } from "../../../lib/receiver/fault.js";
import type { ReceiverFault } from "../../../lib/receiver/fault.js";

describe("classifyReceiverExit", () => {
  // The messages as pg_receivewal 15 prints them (server errors are passed through).
  it.each<[string, ReceiverFault]>([
    ['pg_receivewal: error: connection to server on socket "/tmp/s/.s.PGSQL.5432" failed: FATAL:  must be superuser or replication role to start walsender', "no-permission"],
    ['pg_receivewal: error: connection to server at "10.0.1.5", port 5432 failed: FATAL:  no pg_hba.conf entry for replication connection from host "10.0.1.9", user "backup", no encryption', "no-permission"],
    ['pg_hba.conf rejects replication connection for host "10.0.1.9", user "backup"', "no-permission"],
    ['pg_receivewal: error: could not send replication command "START_REPLICATION": ERROR:  replication slot "pg_swarm_backup" does not exist', "slot-missing"],
    ['ERROR:  can no longer get changes from replication slot "pg_swarm_backup"\nDETAIL:  This slot has been invalidated because it exceeded the maximum reserved size.', "slot-missing"],
    ["pg_receivewal: error: unexpected termination of replication stream: ERROR:  requested WAL segment 000000010000000000000003 has already been removed", "wal-removed"],
    ["ERROR:  requested starting point 0/9000000 on timeline 1 is not in this server's history\nDETAIL:  This server's history forked from timeline 1 at 0/70000A0.", "foreign-timeline"],
    ['pg_receivewal: error: could not write 8192 bytes to WAL file "000000010000000000000004.gz.partial": No space left on device', "storage-full"],
    ["pg_receivewal: error: this build does not support compression with LZ4", "compression-unsupported"],
    ['pg_receivewal: not renaming "000000010000000000000001.gz.partial", segment is not complete\npg_receivewal: error: replication stream was terminated before stop point\npg_receivewal: error: disconnected', "transient"],
    ['pg_receivewal: error: connection to server at "postgres" (10.0.1.5), port 5432 failed: Connection refused', "transient"],
    ['pg_receivewal: error: could not send replication command "START_REPLICATION": \npg_receivewal: error: disconnected', "switch-point"],
    ['pg_receivewal: error: could not send replication command "START_REPLICATION": server closed the connection unexpectedly', "transient"],
    ['ERROR:  replication slot "pg_swarm_backup" is active for PID 4242', "transient"],
    ["", "transient"],
  ])("%s → %s", (stderr, fault) => {
    expect(classifyReceiverExit(stderr)).toBe(fault);
  });
});

describe("restartDelayMs", () => {
  it.each([
    [0, 1000],
    [1, 1000],
    [2, 2000],
    [3, 4000],
    [5, 16_000],
    [6, 30_000],
    [50, 30_000],
  ])("after %i failures in a row: %i ms", (n, ms) => {
    expect(restartDelayMs(n)).toBe(ms);
  });
});
