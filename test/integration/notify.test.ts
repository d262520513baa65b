// Pings and webhooks against a real HTTP server on 127.0.0.1 and real backups of a real
// cluster: the order and bodies the monitor sees, retries, timeouts, and that an endpoint
// that fails never changes the task's exit code nor leaks the URL's token.
import { execFileSync, spawn } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { freePort } from "../../lib/core/port.js";
import { CLI, cliEnv, runCli, tempDir } from "../helpers.js";

const cluster = inject("cluster");

interface Hit {
  method: string;
  path: string;
  body: string;
  at: number;
}

type Answer = number | "hang";

/** A real HTTP server recording every request; `answer` scripts the status per request (default 200). */
class Recorder {
  readonly hits: Hit[] = [];
  answer: (hit: Hit) => Answer = () => 200;
  readonly #server: Server;
  port = 0;
  constructor() {
    this.#server = createServer((req: IncomingMessage, res: ServerResponse) => {
      let body = "";
      req.on("data", (d: Buffer) => (body += d.toString("utf8")));
      req.on("end", () => {
        const hit = { method: req.method ?? "", path: req.url ?? "", body, at: Date.now() };
        this.hits.push(hit);
        const a = this.answer(hit);
        if (a === "hang") return;
        res.statusCode = a;
        res.end(a < 300 ? "OK" : "nope");
      });
    });
  }
  async listen(): Promise<this> {
    await new Promise<void>((r) => this.#server.listen(0, "127.0.0.1", r));
    this.port = (this.#server.address() as AddressInfo).port;
    return this;
  }
  url(path: string): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }
  paths(prefix = ""): string[] {
    return this.hits.filter((h) => h.path.startsWith(prefix)).map((h) => h.path);
  }
  webhooks(prefix = "/hook"): Record<string, unknown>[] {
    return this.hits.filter((h) => h.path.startsWith(prefix)).map((h) => JSON.parse(h.body) as Record<string, unknown>);
  }
  close(): void {
    this.#server.closeAllConnections();
    this.#server.close();
  }
}

const servers: Recorder[] = [];
async function recorder(): Promise<Recorder> {
  const r = await new Recorder().listen();
  servers.push(r);
  return r;
}
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

function metricsValue(file: string, name: string, labels: string): number | undefined {
  if (!existsSync(file)) return undefined;
  const line = readFileSync(file, "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${name}{${labels}} `));
  return line === undefined ? undefined : Number(line.split(" ")[1]);
}

/** A BACKUP_DIR holding a full of the shared cluster, so an incremental is skipped quickly. */
let withFull: string;
beforeAll(async () => {
  withFull = tempDir("pgsb-notify-");
  const r = await runCli(["backup", "full"], cliEnv(cluster, withFull, { BACKUP_COMPRESSION: "zstd" }));
  expect(r.code, r.stderr).toBe(0);
});

describe("healthcheck pings", () => {
  it("start then success for a written backup and for a skipped one; the webhook (always) tells them apart", async () => {
    const hc = await recorder();
    const dir = tempDir("pgsb-notify-");
    const env = cliEnv(cluster, dir, { BACKUP_COMPRESSION: "zstd", HEALTHCHECK_URL: hc.url("/ping/tok"), NOTIFY_URL: hc.url("/hook/tok"), NOTIFY_ON: "always" });
    const full = await runCli(["backup", "full"], env);
    expect(full.code, full.stderr).toBe(0);
    expect(hc.paths("/ping")).toEqual(["/ping/tok/start", "/ping/tok"]);
    expect(hc.hits.filter((h) => h.path.startsWith("/ping")).every((h) => h.method === "POST")).toBe(true);
    const [written] = hc.webhooks();
    const name = String(written?.backup);
    expect(name).toMatch(/^\d{8}_\d{6}_full\.sql\.zst$/);
    expect(existsSync(join(dir, "full", name))).toBe(true);
    expect(written).toMatchObject({ tool: "pg-swarm-backup", task: "backup", tier: "full", status: "success", exitCode: 0, host: expect.any(String) });
    expect(written?.bytes).toBe(JSON.parse(readFileSync(join(dir, "full", `${name}.json`), "utf8")).compressedBytes);
    expect(String(written?.text)).toContain("backup full succeeded");
    expect(Date.parse(String(written?.time))).toBeGreaterThan(Date.now() - 120_000);

    hc.hits.length = 0;
    const skipped = await runCli(["backup", "incremental"], env);
    expect(skipped.code, skipped.stderr).toBe(0);
    expect(hc.paths("/ping")).toEqual(["/ping/tok/start", "/ping/tok"]);
    expect(hc.webhooks()).toEqual([expect.objectContaining({ task: "backup", tier: "incremental", status: "skipped", exitCode: 0, backup: null, bytes: null })]);
  });

  it("start then /fail with the exit code and the error when PostgreSQL is down; the webhook fires by default", async () => {
    const hc = await recorder();
    const port = await freePort();
    const env = cliEnv(cluster, tempDir("pgsb-notify-"), { PGHOST: "127.0.0.1", PGPORT: String(port), PG_CONNECT_TIMEOUT_SECONDS: "0", HEALTHCHECK_URL: hc.url("/ping/tok"), NOTIFY_URL: hc.url("/hook/tok") });
    const r = await runCli(["backup", "incremental"], env);
    expect(r.code).toBe(8);
    expect(hc.paths("/ping")).toEqual(["/ping/tok/start", "/ping/tok/fail"]);
    const fail = hc.hits.find((h) => h.path === "/ping/tok/fail")?.body ?? "";
    expect(fail).toMatch(/^backup incremental: exit code 8\n/);
    expect(fail).toContain(`127.0.0.1:${port}`);
    const [hook] = hc.webhooks();
    expect(hook).toMatchObject({ task: "backup", tier: "incremental", status: "failure", exitCode: 8 });
    expect(String(hook?.message)).toContain(`127.0.0.1:${port}`);
    expect(String(hook?.text)).toMatch(/backup incremental FAILED .* \(exit 8\)/);
  });

  it("start then /fail with exit 9 when BACKUP_DIR is read-only; no webhook for a success under NOTIFY_ON=failure", async () => {
    const hc = await recorder();
    const ro = join(tempDir("pgsb-mnt-"), "ro");
    mkdirSync(ro);
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", ro]);
    try {
      const r = await runCli(["backup", "full"], cliEnv(cluster, ro, { HEALTHCHECK_URL: hc.url("/ping/tok"), NOTIFY_URL: hc.url("/hook/tok") }));
      expect(r.code).toBe(9);
      expect(hc.paths("/ping")).toEqual(["/ping/tok/start", "/ping/tok/fail"]);
      expect(hc.hits.find((h) => h.path === "/ping/tok/fail")?.body).toMatch(new RegExp(`^backup full: exit code 9\\nBACKUP_DIR=${ro}.*EROFS`));
      expect(hc.webhooks()).toMatchObject([{ status: "failure", exitCode: 9 }]);
    } finally {
      execFileSync("umount", [ro]);
    }
    hc.hits.length = 0;
    const ok = await runCli(["backup", "incremental"], cliEnv(cluster, withFull, { HEALTHCHECK_URL: hc.url("/ping/tok"), NOTIFY_URL: hc.url("/hook/tok") }));
    expect(ok.code, ok.stderr).toBe(0);
    expect(hc.paths()).toEqual(["/ping/tok/start", "/ping/tok"]);
  });
});

describe("the other scheduled tasks", () => {
  it("verify that finds problems pings /fail with exit 5 and the failing checks", async () => {
    const hc = await recorder();
    const r = await runCli(["verify"], cliEnv(cluster, tempDir("pgsb-notify-"), { HEALTHCHECK_URL: hc.url("/ping/tok") }));
    expect(r.code).toBe(5);
    expect(hc.paths()).toEqual(["/ping/tok/start", "/ping/tok/fail"]);
    expect(hc.hits[1]?.body).toMatch(/^verify: exit code 5\ncatalog/);
  });

  it("a task whose configuration is wrong still pings /fail (exit 2) when the notification settings are sound", async () => {
    const hc = await recorder();
    const r = await runCli(["cleanup"], cliEnv(cluster, tempDir("pgsb-notify-"), { POSTGRES_PASSWORD_FILE: "/nonexistent/pw", HEALTHCHECK_URL: hc.url("/ping/tok") }));
    expect(r.code).toBe(2);
    expect(hc.paths()).toEqual(["/ping/tok/fail"]);
    expect(hc.hits[0]?.body).toMatch(/^cleanup: exit code 2\nPOSTGRES_PASSWORD_FILE=\/nonexistent\/pw is not readable/);
  });
});

describe("an endpoint that fails never changes the task's result", () => {
  it.each([
    ["hangs past the timeout", (): Answer => "hang", 3, 1],
    ["answers 500 twice, then 200", (h: Hit, n: number): Answer => (n <= 2 ? 500 : 200), 3, 0],
    ["answers 404", (): Answer => 404, 1, 1],
  ] as const)("webhook that %s: exit 0, %d request(s), %d failure(s) counted", async (_what, script, requests, failures) => {
    const hook = await recorder();
    let n = 0;
    hook.answer = (h) => script(h, ++n);
    const metrics = join(tempDir("pgsb-metrics-"), "pgsb.prom");
    const t = Date.now();
    const r = await runCli(["backup", "incremental"], cliEnv(cluster, withFull, { NOTIFY_URL: hook.url("/hook/tok"), NOTIFY_ON: "always", NOTIFY_TIMEOUT_SECONDS: "1", METRICS_FILE: metrics }));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/incremental: skipped/);
    expect(hook.hits).toHaveLength(requests);
    expect(metricsValue(metrics, "pgsb_notify_failures_total", 'target="webhook"')).toBe(failures);
    expect(metricsValue(metrics, "pgsb_last_result", 'task="backup",tier="incremental"')).toBe(1);
    if (failures > 0) expect(r.stderr).toMatch(new RegExp(`webhook \\(skipped\\) to 127\\.0\\.0\\.1:${hook.port} not delivered.*the task's result is unchanged`));
    // 3 attempts of at most 1 s with 0.5 s and 1 s between them
    expect(Date.now() - t).toBeLessThan(20_000);
  });

  it("none listening: a failed task keeps its exit code and its own error; both misses are counted", async () => {
    const closed = await freePort();
    const pgPort = await freePort();
    const metrics = join(tempDir("pgsb-metrics-"), "pgsb.prom");
    const env = cliEnv(cluster, withFull, {
      PGHOST: "127.0.0.1",
      PGPORT: String(pgPort),
      PG_CONNECT_TIMEOUT_SECONDS: "0",
      HEALTHCHECK_URL: `http://127.0.0.1:${closed}/ping/tok`,
      NOTIFY_URL: `http://127.0.0.1:${closed}/hook/tok`,
      METRICS_FILE: metrics,
    });
    const r = await runCli(["backup", "incremental"], env);
    expect(r.code).toBe(8);
    expect(r.stderr).toMatch(new RegExp(`pg-swarm-backup backup incremental: .*127\\.0\\.0\\.1:${pgPort}`));
    expect(r.stderr).toMatch(/ECONNREFUSED after 3 attempts/);
    // start and fail pings, and the webhook
    expect(metricsValue(metrics, "pgsb_notify_failures_total", 'target="healthcheck"')).toBe(2);
    expect(metricsValue(metrics, "pgsb_notify_failures_total", 'target="webhook"')).toBe(1);
    expect(metricsValue(metrics, "pgsb_last_exit_code", 'task="backup",tier="incremental"')).toBe(8);
  });
});

describe("secrets in the URLs", () => {
  it("never appear in stdout, stderr, LOG_FILE or METRICS_FILE; the host does", async () => {
    const hc = await recorder();
    hc.answer = () => 404;
    const closed = await freePort();
    const dir = tempDir("pgsb-notify-");
    const logFile = join(dir, "task.log");
    const metrics = join(dir, "pgsb.prom");
    const tokens = ["PATHTOKEN1234", "QUERYSECRET5678", "HOOKTOKEN9012", "SIGSECRET3456", "hookuser", "hookpass"];
    const env = cliEnv(cluster, dir, {
      PGHOST: "127.0.0.1",
      PGPORT: String(await freePort()),
      PG_CONNECT_TIMEOUT_SECONDS: "0",
      HEALTHCHECK_URL: hc.url("/ping/PATHTOKEN1234?key=QUERYSECRET5678"),
      NOTIFY_URL: `http://hookuser:hookpass@127.0.0.1:${closed}/hook/HOOKTOKEN9012?sig=SIGSECRET3456`,
      LOG_FILE: logFile,
      LOG_LEVEL: "debug",
      METRICS_FILE: metrics,
    });
    const r = await runCli(["backup", "full"], env);
    expect(r.code).toBe(8);
    expect(hc.paths()).toEqual(["/ping/PATHTOKEN1234/start?key=QUERYSECRET5678", "/ping/PATHTOKEN1234/fail?key=QUERYSECRET5678"]);
    const texts = { stdout: r.stdout, stderr: r.stderr, log: readFileSync(logFile, "utf8"), metrics: readFileSync(metrics, "utf8"), state: readFileSync(`${metrics}.json`, "utf8") };
    for (const [where, text] of Object.entries(texts)) for (const t of tokens) expect(text, `${t} in ${where}`).not.toContain(t);
    expect(texts.log).toContain(`127.0.0.1:${hc.port}`);
    expect(texts.log).toContain(`127.0.0.1:${closed}`);
  });
});

describe("a task that is stopped", () => {
  it("sends /fail before the process exits on SIGTERM during a backup", async () => {
    const hc = await recorder();
    const bin = tempDir("pgsb-slowbin-");
    const started = join(bin, "compressor-started");
    const realZstd = execFileSync("sh", ["-c", "command -v zstd"]).toString().trim();
    // The compressor says it started, then reads nothing for a while: the backup is under way.
    writeFileSync(join(bin, "zstd"), `#!/bin/sh\ntouch "${started}"\nsleep 5\nexec ${realZstd} "$@"\n`);
    chmodSync(join(bin, "zstd"), 0o755);
    const env = { PATH: `${bin}:${process.env.PATH}`, LOG_FILE: "", ...cliEnv(cluster, tempDir("pgsb-notify-"), { BACKUP_COMPRESSION: "zstd", HEALTHCHECK_URL: hc.url("/ping/tok"), NOTIFY_URL: hc.url("/hook/tok") }) };
    const child = spawn(process.execPath, [CLI, "backup", "full"], { env, stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<{ code: number | null; at: number }>((resolve) => child.on("exit", (code) => resolve({ code, at: Date.now() })));
    const deadline = Date.now() + 30_000;
    while (!existsSync(started) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 25));
    expect(existsSync(started), stderr).toBe(true);
    const killedAt = Date.now();
    child.kill("SIGTERM");
    const end = await Promise.race([exited, new Promise<null>((res) => setTimeout(() => res(null), 10_000))]);
    if (end === null) child.kill("SIGKILL");
    expect(end?.code, stderr).toBe(143);
    const fail = hc.hits.find((h) => h.path === "/ping/tok/fail");
    expect(hc.paths("/ping")).toEqual(["/ping/tok/start", "/ping/tok/fail"]);
    expect(fail?.body).toMatch(/^backup full: exit code 143\nstopped by SIGTERM/);
    expect(fail?.at).toBeLessThanOrEqual(end?.at ?? 0);
    expect(hc.webhooks()).toMatchObject([{ status: "failure", exitCode: 143 }]);
    // well inside Docker's 10 s stop grace period
    expect((end?.at ?? Infinity) - killedAt).toBeLessThan(5000);
  });
});

describe("notify-test", () => {
  it("reports what a good ping endpoint and a good webhook answered, exit 0", async () => {
    const hc = await recorder();
    const r = await runCli(["notify-test"], { BACKUP_DIR: "/backups", HEALTHCHECK_URL: hc.url("/ping/tok"), NOTIFY_URL: hc.url("/hook/tok") });
    expect(r.code, r.stderr).toBe(0);
    expect(hc.paths().sort()).toEqual(["/hook/tok", "/ping/tok/log"]);
    expect(hc.webhooks()).toMatchObject([{ task: "notify-test", status: "test", text: expect.stringContaining("notify-test") }]);
    expect(r.stdout).toContain(`ok    healthcheck  127.0.0.1:${hc.port}  200 OK after 1 attempt`);
    expect(r.stdout).toContain(`ok    webhook      127.0.0.1:${hc.port}  200 OK after 1 attempt`);
    expect(r.stdout).not.toContain("tok");
  });

  it("reports a 404 and a closed port, exit 1; and exit 2 when nothing is configured", async () => {
    const hc = await recorder();
    hc.answer = () => 404;
    const closed = await freePort();
    const r = await runCli(["notify-test"], { BACKUP_DIR: "/backups", HEALTHCHECK_URL: hc.url("/ping/tok"), NOTIFY_URL: `http://127.0.0.1:${closed}/hook/tok`, NOTIFY_TIMEOUT_SECONDS: "1" });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`FAIL  healthcheck  127.0.0.1:${hc.port}  404 Not Found after 1 attempt`);
    expect(r.stdout).toContain(`FAIL  webhook      127.0.0.1:${closed}  ECONNREFUSED after 3 attempts`);
    expect(r.stdout + r.stderr).not.toContain("tok");
    const none = await runCli(["notify-test"], { BACKUP_DIR: "/backups" });
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/neither HEALTHCHECK_URL nor NOTIFY_URL is set/);
  });
});

afterAll(() => {
  for (const s of servers.splice(0)) s.close();
});
