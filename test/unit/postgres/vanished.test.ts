import { describe, expect, it } from "vitest";
import { TaskError } from "../../../lib/core/errors.js";
import { ProcessError } from "../../../lib/core/proc.js";
import { DumpStalledError, isServerGone, serverGoneMessage } from "../../../lib/postgres/vanished.js";
import { KEEPALIVE, KEEPALIVE_CONNINFO, dbnameConninfo } from "../../../lib/postgres/connection.js";

const pgDump = (stderr: string) => new TaskError(1, "pg_dump failed", { cause: new ProcessError("pg_dump", 1, undefined, stderr) });

describe("isServerGone", () => {
  it.each([
    ["pg_dump, keepalive/tcp_user_timeout ran out", pgDump('pg_dump: error: Dumping the contents of table "big" failed: PQgetResult() failed.\npg_dump: detail: Error message from server: could not receive data from server: Connection timed out'), true],
    ["pg_dump, server killed", pgDump("pg_dump: error: server closed the connection unexpectedly\n\tThis probably means the server terminated abnormally"), true],
    ["pg_dump, fast shutdown", pgDump("pg_dump: error: FATAL:  terminating connection due to administrator command"), true],
    ["node-postgres after the error event", new Error("Client has encountered a connection error and is not queryable"), true],
    ["node-postgres, connection reset", Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" }), true],
    ["a stalled dump", new DumpStalledError('pg_dump of database "app"', 60), true],
    ["a permission error", pgDump("pg_dump: error: query failed: ERROR:  permission denied for table t"), false],
    ["a full disk", Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" }), false],
    ["a compressor's broken pipe", Object.assign(new Error("write EPIPE"), { code: "EPIPE" }), false],
  ])("%s: %s", (_what, err, gone) => {
    expect(isServerGone(err)).toBe(gone);
  });

  it("names the host and what to look at", () => {
    expect(serverGoneMessage("backup full", "postgres", "read ECONNRESET")).toMatch(/^PostgreSQL at postgres went away during backup full \(read ECONNRESET\); check `docker service ps`/);
  });
});

describe("keepalives on every libpq connection", () => {
  it("bound a dead peer's detection to idle + interval × count, capped by tcp_user_timeout (about 35 s)", () => {
    expect(KEEPALIVE.idleSeconds + KEEPALIVE.intervalSeconds * KEEPALIVE.count).toBeLessThanOrEqual(KEEPALIVE.userTimeoutMs / 1000);
    expect(KEEPALIVE_CONNINFO).toBe("keepalives=1 keepalives_idle=10 keepalives_interval=5 keepalives_count=3 tcp_user_timeout=30000");
    expect(dbnameConninfo("it's")).toBe(`dbname='it\\'s' ${KEEPALIVE_CONNINFO}`);
  });
});
