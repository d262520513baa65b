// The slot wal-receive creates keeps WAL from the moment it is created, not from pg_receivewal's
// first streaming (pg_receivewal --create-slot reserves none). Here pg_receivewal is slow to start
// (a wrapper sleeps 4 s before the real one streams), and a segment completed meanwhile must still
// reach wal/: a base backup taken right after wal-receive started begins in such a segment.
import { chmodSync, existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { ClusterInfo } from "../cluster.js";
import { createCluster, destroyCluster, sql } from "../cluster.js";
import { cliEnv, tempDir } from "../helpers.js";
import { cleanUpAfterWalTests, startWalReceive, stopWalReceive, waitFor } from "../walReceiver.js";

const cleanup: (() => void)[] = [];
afterAll(() => cleanUpAfterWalTests(cleanup));

/** PG_BINDIR with the real server programs, but a pg_receivewal that streams only after `seconds`. */
function slowReceivewal(real: string, seconds: number): string {
  const dir = tempDir("pgsb-slowbin-");
  for (const n of readdirSync(real)) if (n !== "pg_receivewal") symlinkSync(join(real, n), join(dir, n));
  writeFileSync(join(dir, "pg_receivewal"), `#!/bin/sh\ncase " $* " in *" --create-slot "*) ;; *) sleep ${seconds} ;; esac\nexec "${join(real, "pg_receivewal")}" "$@"\n`);
  chmodSync(join(dir, "pg_receivewal"), 0o755);
  return dir;
}

describe("wal-receive's replication slot", () => {
  let c: ClusterInfo;

  it("keeps the WAL written between its creation and pg_receivewal's first streaming", async () => {
    c = await createCluster({ name: "walslot" });
    cleanup.push(() => destroyCluster(c));
    const backupDir = tempDir("pgsb-walslot-");
    const wal = join(backupDir, "wal");
    mkdirSync(wal, { recursive: true });
    const r = startWalReceive(cliEnv(c, backupDir, { PG_BINDIR: slowReceivewal(c.bindir, 4), WAL_STATUS_INTERVAL_SECONDS: "1" }));
    await waitFor("the slot", async () => (await sql(c, "postgres", "SELECT count(*)::int AS n FROM pg_replication_slots WHERE slot_name = 'pg_swarm_backup'")).rows[0].n === 1, 30_000);
    const reserved = (await sql(c, "postgres", "SELECT restart_lsn IS NOT NULL AS r FROM pg_replication_slots WHERE slot_name = 'pg_swarm_backup'")).rows[0].r as boolean;
    expect(reserved).toBe(true);
    // Before pg_receivewal streams: a segment completes.
    expect((await sql(c, "postgres", "SELECT count(*)::int AS n FROM pg_stat_replication")).rows[0].n).toBe(0);
    await sql(c, "postgres", "CREATE TABLE early (v int)");
    await sql(c, "postgres", "INSERT INTO early SELECT generate_series(1, 1000)");
    const f = (await sql(c, "postgres", "SELECT pg_walfile_name(pg_switch_wal()) AS f")).rows[0].f as string;
    await waitFor(`${f} in wal/, received once pg_receivewal started`, () => existsSync(join(wal, `${f}.gz`)), 30_000);
    await stopWalReceive(r);
  });
});
