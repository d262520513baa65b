// wal-receive against a real cluster: pg_receivewal supervised by the built CLI as a real
// process. WAL arrives within seconds, a killed pg_receivewal is restarted, a stopped and
// restarted service leaves no gap (the slot), a dropped slot is recreated with an error line,
// a role without REPLICATION gets a clear exit 8, and a timeline switch is followed.
import { execFileSync } from "node:child_process";
import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { parseLsn, parseWalName, segmentName, segmentNumber } from "../../lib/physical/layout.js";
import { listWalArchive, readTimelineHistories } from "../../lib/wal/archive.js";
import { checkWalContinuity } from "../../lib/wal/continuity.js";
import type { ClusterInfo } from "../cluster.js";
import { clusterEnv, createCluster, destroyCluster, sql, startCluster, stopCluster } from "../cluster.js";
import { cliEnv, runCli, tempDir } from "../helpers.js";
import type { WalReceiveProcess } from "../walReceiver.js";
import { childrenOf, startWalReceive, stopAllWalReceive, stopWalReceive, waitFor } from "../walReceiver.js";

const SEG = 16 * 1024 * 1024;
let c: ClusterInfo;
let backupDir: string;

function startReceiver(extra: Record<string, string> = {}): WalReceiveProcess {
  return startWalReceive(cliEnv(c, backupDir, { WAL_STATUS_INTERVAL_SECONDS: "1", ...extra }));
}

/** Runs a program as the postgres OS user when we are root (the cluster's files are its). */
function asPostgres(program: string, args: string[]): void {
  const [cmd, argv] = process.getuid?.() === 0 ? ["runuser", ["-u", "postgres", "--", program, ...args]] : [program, args];
  execFileSync(cmd, argv, { stdio: "pipe" });
}

const stopReceiver = stopWalReceive;

async function slotLsn(): Promise<bigint | null> {
  const r = await sql(c, "postgres", "SELECT restart_lsn::text AS l FROM pg_replication_slots WHERE slot_name = 'pg_swarm_backup'");
  const l = r.rows[0]?.l as string | null | undefined;
  return l === null || l === undefined ? null : parseLsn(l);
}

async function flushLsn(): Promise<bigint> {
  const r = await sql(c, "postgres", "SELECT pg_current_wal_flush_lsn()::text AS l");
  return parseLsn(r.rows[0]?.l as string) as bigint;
}

/** Commits a transaction and returns how long the slot took to confirm its WAL as flushed. */
async function commitAndMeasure(label: string): Promise<number> {
  await sql(c, "postgres", "INSERT INTO marks (label) VALUES ($1)", [label]);
  const lsn = await flushLsn();
  const t0 = Date.now();
  await waitFor(`the slot to reach the commit of ${label}`, async () => ((await slotLsn()) ?? 0n) >= lsn);
  return Date.now() - t0;
}

async function continuityFrom(start: bigint, timeline = 1) {
  const listing = await listWalArchive(backupDir);
  return checkWalContinuity(listing.segments.map((e) => e.file), await readTimelineHistories(listing), { timeline, lsn: start }, SEG);
}

beforeAll(async () => {
  c = await createCluster({ name: "walrecv" });
  backupDir = tempDir("pgsb-walrecv-");
  await sql(c, "postgres", "CREATE TABLE marks (id serial PRIMARY KEY, label text, at timestamptz DEFAULT now())");
});

afterEach(stopAllWalReceive);

afterAll(() => {
  destroyCluster(c);
  rmSync(backupDir, { recursive: true, force: true });
});

describe("wal-receive", () => {
  let start = 0n;

  it("creates the slot, streams WAL under pgbench writes within seconds, and restarts a killed pg_receivewal", async () => {
    start = await flushLsn();
    const r = startReceiver({ METRICS_FILE: join(backupDir, "metrics.prom") });
    await waitFor("a .partial in wal/", () => existsSync(join(backupDir, "wal")) && readdirSync(join(backupDir, "wal")).some((n) => n.endsWith(".partial")));
    execFileSync("pgbench", ["-i", "-s", "1", "-q", "postgres"], { env: { PATH: process.env.PATH, ...clusterEnv(c) }, stdio: "ignore" });
    execFileSync("pgbench", ["-t", "200", "-c", "2", "postgres"], { env: { PATH: process.env.PATH, ...clusterEnv(c) }, stdio: "ignore" });
    const ms = await commitAndMeasure("after pgbench");
    console.log(`wal-receive: commit confirmed flushed in wal/ after ${ms} ms`);
    expect(ms).toBeLessThan(5000);
    const pid = await waitFor("pg_receivewal's pid", () => childrenOf(r.pid)[0]);
    process.kill(pid, "SIGKILL");
    await waitFor("a restart", () => r.logs().filter((l) => l.event === "start").length >= 2);
    expect(r.logs().find((l) => l.event === "stop")).toMatchObject({ signal: "SIGKILL", fault: "transient" });
    await commitAndMeasure("after kill");
    await waitFor("metrics with the receiver's position", () => {
      const prom = existsSync(join(backupDir, "metrics.prom")) ? execFileSync("cat", [join(backupDir, "metrics.prom")]).toString() : "";
      return /pgsb_wal_receive_restarts_total\{slot="pg_swarm_backup"\} 1/.test(prom) && /pgsb_wal_receive_lag_seconds\{slot="pg_swarm_backup"\} 0\n/.test(prom) && /pgsb_wal_receive_up\{slot="pg_swarm_backup"\} 1\n/.test(prom);
    });
    const status = await runCli(["status"], cliEnv(c, backupDir, { METRICS_FILE: join(backupDir, "metrics.prom") }), 30_000);
    expect(status.stdout).toMatch(/WAL receiver \(slot pg_swarm_backup\): running; lag 0 s .*last received \d+\/[0-9A-F]+ at .*; 1 restart\(s\)/);
    const fromServer = await runCli(["status"], cliEnv(c, backupDir), 30_000);
    expect(fromServer.stdout).toMatch(/WAL receiver \(slot pg_swarm_backup, from the server\): receiving; flushed up to \d+\/[0-9A-F]+, \d+ bytes behind/);
    const list = await runCli(["list"], cliEnv(c, backupDir), 30_000);
    expect(list.stdout).toMatch(/^WAL: .* to .* \(timeline 1, 000000010000000000000001\.gz to 0000000100000000000000\w\w\.gz\.partial, \d+ files/m);
    const json = JSON.parse((await runCli(["list", "--json"], cliEnv(c, backupDir), 30_000)).stdout) as { wal: { oldest: string; newestTime: string } };
    expect(json.wal.oldest).toBe("000000010000000000000001.gz");
    expect(Date.now() - Date.parse(json.wal.newestTime)).toBeLessThan(10_000);
    const stopped = await stopReceiver(r);
    expect(stopped.code).toBe(143);
    // SIGINT, not SIGTERM: pg_receivewal 15 closes its files on SIGINT only.
    expect(r.logs().find((l) => typeof l.msg === "string" && l.msg.startsWith("pg_receivewal stopped; its .partial file stays"))).toMatchObject({ code: 0, signal: null });
    expect(readdirSync(join(backupDir, "wal")).some((n) => n.endsWith(".gz.partial"))).toBe(true);
  });

  it("stopped, written to and started again: no gap, thanks to the slot", async () => {
    await sql(c, "postgres", "INSERT INTO marks (label) SELECT 'bulk' FROM generate_series(1, 200000)");
    await sql(c, "postgres", "SELECT pg_switch_wal()");
    const r = startReceiver();
    await commitAndMeasure("after restart");
    expect(await continuityFrom(start)).toMatchObject({ ok: true });
    await stopReceiver(r);
  });

  it("recreates a slot dropped by hand, with an error line saying WAL may be missing", async () => {
    await sql(c, "postgres", "SELECT pg_drop_replication_slot('pg_swarm_backup')");
    const r = startReceiver();
    await commitAndMeasure("after slot drop");
    const loud = r.logs().find((l) => typeof l.msg === "string" && l.msg.includes("vanished"));
    expect(loud).toMatchObject({ level: "error" });
    expect(String(loud?.msg)).toMatch(/verify will report the gap/);
    await stopReceiver(r);
  });

  it("follows a timeline switch and keeps the history file", async () => {
    const r = startReceiver();
    await commitAndMeasure("before switch");
    // Archive recovery to the end of pg_wal, then promotion: the cluster continues on timeline 2.
    stopCluster(c);
    writeFileSync(join(c.dataDir, "recovery.signal"), "");
    execFileSync("sh", ["-c", `echo "restore_command = 'false'" >> '${join(c.dataDir, "postgresql.auto.conf")}'`]);
    startCluster(c);
    await waitFor("promotion", async () => (await sql(c, "postgres", "SELECT NOT pg_is_in_recovery() AS p")).rows[0]?.p === true);
    await commitAndMeasure("on timeline 2");
    // pg_receivewal compresses the history file like the segments.
    await waitFor("00000002.history.gz in wal/", () => existsSync(join(backupDir, "wal", "00000002.history.gz")));
    expect(readdirSync(join(backupDir, "wal")).some((n) => n.startsWith("00000002") && n.includes(".partial"))).toBe(true);
    expect(await continuityFrom(start)).toMatchObject({ ok: true });
    await stopReceiver(r);
  });

  it("alerts when it falls behind (/fail ping), pings success when caught up, and /fail when stopped", async () => {
    const pings: { path: string; body: string }[] = [];
    const server = createServer((req, res) => {
      let body = "";
      req.on("data", (d: Buffer) => (body += d.toString()));
      req.on("end", () => {
        pings.push({ path: req.url ?? "", body });
        res.end("OK");
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/ping/tok`;
      const r = startReceiver({ HEALTHCHECK_URL: url, WAL_LAG_ALERT_SECONDS: "2" });
      await commitAndMeasure("before stall");
      await waitFor("the start ping and a heartbeat", () => pings.some((p) => p.path === "/ping/tok/start") && pings.some((p) => p.path === "/ping/tok"));
      const pid = await waitFor("pg_receivewal's pid", () => childrenOf(r.pid)[0]);
      process.kill(pid, "SIGSTOP");
      try {
        await waitFor("the lag alert", async () => {
          await sql(c, "postgres", "INSERT INTO marks (label) VALUES ('stalled')");
          return pings.find((p) => p.path === "/ping/tok/fail");
        });
      } finally {
        process.kill(pid, "SIGCONT");
      }
      expect(pings.find((p) => p.path === "/ping/tok/fail")?.body).toMatch(/wal-receive: exit code 1\n.*behind the server \(WAL_LAG_ALERT_SECONDS=2\)/s);
      const fails = pings.filter((p) => p.path === "/ping/tok/fail").length;
      await waitFor("the caught-up log line", () => r.logs().some((l) => l.msg === "wal-receive caught up again"));
      await waitFor("a success ping after it", () => pings.filter((p) => p.path === "/ping/tok").length >= 2);
      expect(pings.filter((p) => p.path === "/ping/tok/fail")).toHaveLength(fails);
      const stopped = await stopReceiver(r);
      expect(stopped.code).toBe(143);
      expect(pings.at(-1)).toMatchObject({ path: "/ping/tok/fail", body: expect.stringMatching(/stopped by SIGTERM/) });
    } finally {
      server.close();
    }
  });

  it("a slot invalidated by max_slot_wal_keep_size: recreated loudly, receiving starts again after the gap, which the gap check names", async () => {
    const r = startReceiver();
    await commitAndMeasure("before invalidation");
    await stopReceiver(r);
    await sql(c, "postgres", "ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'");
    await sql(c, "postgres", "SELECT pg_reload_conf()");
    try {
      await waitFor("the slot to be invalidated", async () => {
        await sql(c, "postgres", "INSERT INTO marks (label) SELECT 'filler' FROM generate_series(1, 20000)");
        await sql(c, "postgres", "SELECT pg_switch_wal()");
        await sql(c, "postgres", "CHECKPOINT");
        return (await sql(c, "postgres", "SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'pg_swarm_backup'")).rows[0]?.wal_status === "lost";
      });
      const newestBefore = (await listWalArchive(backupDir)).segments.at(-1)?.file.name;
      const again = startReceiver();
      const gap = await waitFor("the gap line", () => again.logs().find((l) => l.event === "gap")).catch((e: unknown) => {
        console.log("wal-receive log:", JSON.stringify(again.logs().map((l) => [l.time, l.event, l.msg, l.stderr])), "wal/:", readdirSync(join(backupDir, "wal")));
        throw e;
      });
      expect(again.logs().find((l) => typeof l.msg === "string" && l.msg.includes("was invalidated"))).toMatchObject({ level: "error" });
      expect(gap).toMatchObject({ level: "error", newestBefore, msg: expect.stringMatching(/verify will report the gap/) });
      await commitAndMeasure("after the gap");
      await stopReceiver(again);
      expect(readdirSync(join(backupDir, "wal")).filter((n) => n.startsWith(".") && n !== ".pgsb-system-identifier")).toEqual([]);
      expect(await continuityFrom(start)).toMatchObject({ ok: false, problem: "missing-segment" });
      const afterGap = parseWalName(String(gap.firstAfter));
      if (afterGap?.kind !== "segment") throw new Error(`not a segment: ${String(gap.firstAfter)}`);
      expect(await continuityFrom(segmentNumber(afterGap.segment, SEG) * BigInt(SEG), afterGap.timeline)).toMatchObject({ ok: true });
    } finally {
      await sql(c, "postgres", "ALTER SYSTEM RESET max_slot_wal_keep_size");
      await sql(c, "postgres", "SELECT pg_reload_conf()");
    }
  });

  it("a server restored to an earlier point: the abandoned history is set aside, receiving resumes at the fork without a gap", async () => {
    const r = startReceiver();
    await commitAndMeasure("before fork");
    const tli = Number((await sql(c, "postgres", "SELECT timeline_id FROM pg_control_checkpoint()")).rows[0]?.timeline_id);
    // A base backup (with its WAL) to restore from, as restore-pitr would.
    const restored = join(c.dir, "restored");
    asPostgres(join(c.bindir, "pg_basebackup"), ["-D", restored, "-X", "stream", "-c", "fast", "-h", c.socketDir, "-p", String(c.port), "-U", "postgres"]);
    for (let i = 0; i < 3; i++) {
      await sql(c, "postgres", "INSERT INTO marks (label) SELECT 'abandoned' FROM generate_series(1, 1000)");
      await sql(c, "postgres", "SELECT pg_switch_wal()");
    }
    await commitAndMeasure("abandoned");
    await stopReceiver(r);
    // Archive recovery of the backup to its end, then promotion: a new timeline forks before the abandoned writes.
    stopCluster(c);
    renameSync(c.dataDir, join(c.dir, "data.old"));
    renameSync(restored, c.dataDir);
    writeFileSync(join(c.dataDir, "recovery.signal"), "");
    appendFileSync(join(c.dataDir, "postgresql.auto.conf"), "restore_command = 'false'\n");
    startCluster(c);
    await waitFor("promotion", async () => (await sql(c, "postgres", "SELECT NOT pg_is_in_recovery() AS p")).rows[0]?.p === true);
    expect((await sql(c, "postgres", "SELECT count(*)::int AS n FROM marks WHERE label = 'abandoned'")).rows[0]?.n).toBe(0);
    const again = startReceiver();
    const fork = await waitFor("the fork line", () => again.logs().find((l) => l.event === "fork"));
    expect(fork).toMatchObject({ level: "error", timeline: tli, forkLsn: expect.any(String) });
    expect((fork.files as string[]).length).toBeGreaterThanOrEqual(3);
    expect(readdirSync(String(fork.folder)).sort()).toEqual([...(fork.files as string[])].sort());
    await commitAndMeasure("after fork");
    // The new timeline's history and WAL land in wal/ (at once, or after the restart at the server's position).
    await waitFor("the new timeline in wal/", () => readdirSync(join(backupDir, "wal")).some((n) => n.startsWith(`0000000${tli + 1}0`)));
    await stopReceiver(again);
    const listing = await listWalArchive(backupDir);
    expect(listing.histories.map((h) => h.file.timeline)).toContain(tli + 1);
    const from = parseLsn(String(fork.forkLsn)) as bigint;
    const gap = again.logs().find((l) => l.event === "gap");
    // No silent gap: the WAL continues across the fork, or (a fork on a segment boundary after a complete segment,
    // where pg_receivewal 15 cannot resume) an error line says where receiving started again.
    if (gap === undefined) {
      // Seen failing once under a full parallel run, never alone: the folder and the receiver's events say why next time.
      const why = () => JSON.stringify({ wal: readdirSync(join(backupDir, "wal")), events: again.logs().filter((l) => l.event !== undefined).map((l) => [l.event, l.msg, l.stderr]) });
      expect(await continuityFrom(from, tli), why()).toMatchObject({ ok: true });
    }
    else expect(gap).toMatchObject({ level: "error", msg: expect.stringMatching(/verify will report the gap/) });
  });

  it("refuses a role without REPLICATION: exit 8 naming the attribute and the pg_hba line", async () => {
    await sql(c, "postgres", "CREATE ROLE plain LOGIN");
    const res = await runCli(["wal-receive"], cliEnv(c, backupDir, { PGUSER: "plain" }), 30_000);
    expect(res.code).toBe(8);
    expect(res.stderr).toMatch(/ALTER ROLE "plain" REPLICATION/);
    expect(res.stderr).toMatch(/host replication plain/);
  });

  it("exits 8 naming the pg_hba line when pg_hba.conf has no replication line", async () => {
    const hba = join(c.dataDir, "pg_hba.conf");
    const original = readFileSync(hba, "utf8");
    writeFileSync(hba, original.split("\n").filter((l) => !/^\s*(local|host)\s+replication/.test(l)).join("\n"));
    await sql(c, "postgres", "SELECT pg_reload_conf()");
    try {
      const res = await runCli(["wal-receive"], cliEnv(c, backupDir), 30_000);
      expect(res.code).toBe(8);
      expect(res.stderr).toMatch(/no pg_hba\.conf entry for replication connection.*host replication postgres/);
    } finally {
      writeFileSync(hba, original);
      await sql(c, "postgres", "SELECT pg_reload_conf()");
    }
  });

  it("refuses to start while wal/ holds a symlink, and stops (exit 4) at the next check when one is planted at the next segment's name; the target is untouched", async () => {
    const wal = join(backupDir, "wal");
    const victim = join(tempDir("pgsb-outside-"), "victim");
    writeFileSync(victim, "untouched");
    mkdirSync(wal, { recursive: true });
    symlinkSync(victim, join(wal, "planted"));
    const refused = await runCli(["wal-receive"], cliEnv(c, backupDir), 30_000);
    expect(refused.code, refused.stderr).toBe(4);
    expect(refused.stderr).toMatch(/wal\/planted is a symlink \(-> .*victim\); pg_receivewal would write WAL through it .*must be writable by the backup user only/);
    rmSync(join(wal, "planted"));

    const r = startReceiver();
    await commitAndMeasure("before the plant");
    const newest = (await listWalArchive(backupDir)).segments.at(-1)?.file;
    if (newest?.kind !== "segment") throw new Error("no segment in wal/");
    const next = `${segmentName(newest.timeline, segmentNumber(newest.segment, SEG) + 1n, SEG)}.gz.partial`;
    symlinkSync(victim, join(wal, next));
    try {
      const exit = await r.exited;
      expect(exit.code, exit.stderr).toBe(4);
      expect(exit.stderr).toContain(`${join(wal, next)} is a symlink (-> ${victim})`);
      expect(r.logs().find((l) => l.event === "check")).toMatchObject({ level: "error" });
      expect(readFileSync(victim, "utf8")).toBe("untouched");
    } finally {
      rmSync(join(wal, next));
    }
  });

  it("refuses a bad setting naming the variable (exit 2)", async () => {
    const res = await runCli(["wal-receive"], cliEnv(c, backupDir, { WAL_COMPRESSION: "zstd" }), 30_000);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/WAL_COMPRESSION/);
  });
});
