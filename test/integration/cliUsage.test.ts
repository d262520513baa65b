// A command line yargs refuses is exit 2 and nothing else: no handler runs, so no connection is
// tried, no log file is created and nothing is printed on stdout. (yargs calls .fail and then
// ran the handler anyway: `backup nope` went on to connect, `list --bogus` listed and exited 0.)
import { spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { CLI, tempDir } from "../helpers.js";

function run(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    // LOG_FILE unset: a handler that ran would create BACKUP_DIR/backup.log.
    const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? "", ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe("a command line the CLI refuses", () => {
  it.each([
    [[], /name a command/],
    [["nosuch"], /Unknown argument: nosuch/],
    [["backup"], /Not enough non-option arguments/],
    [["backup", "nope"], /Argument: tier, Given: "nope"/],
    [["backup", "full", "--bogus"], /Unknown argument: bogus/],
    [["list", "--bogus"], /Unknown argument: bogus/],
    [["restore-full"], /Not enough non-option arguments/],
    [["cleanup", "--now", "--json", "x", "y"], /Unknown argument|Not enough|Too many|Invalid/],
  ])("%j: exit 2, the reason on stderr, no handler run", async (args, reason) => {
    const dir = tempDir("pgsb-usage-");
    // A server that does not exist: a handler that ran would try it (and retry) instead of exiting 2.
    const r = await run(args as string[], { BACKUP_DIR: dir, PGHOST: "127.0.0.1", PGPORT: "1", PGUSER: "nobody", PG_CONNECT_TIMEOUT_SECONDS: "1" });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(reason);
    expect(r.stderr).toMatch(/^pg-swarm-backup: [^\n]+[\s\S]*Run with --help for usage\.\n$/);
    expect(r.stdout).toBe("");
    expect(readdirSync(dir)).toEqual([]);
  });

  it("--help still prints the usage and exits 0", async () => {
    const r = await run(["--help"], { BACKUP_DIR: tempDir("pgsb-usage-") });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Exit codes:");
  });
});
