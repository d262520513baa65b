// Running the built CLI through `sh -c 'umask U; exec node …'`: exec keeps the pid, so a
// test knows the task's pid before it starts (to plant files named after it), and the
// task runs under the umask given.
import { spawn } from "node:child_process";
import type { CliResult } from "./helpers.js";
import { CLI } from "./helpers.js";

export interface UmaskCliOptions {
  umask?: string;
  /** Called with the task's pid before node has started running the CLI. */
  onSpawn?: (pid: number) => void;
  timeoutMs?: number;
}

/** Like runCli, with exactly `env` plus PATH (LOG_FILE is not preset: the default $BACKUP_DIR/backup.log applies). */
export function runCliUmask(args: string[], env: Record<string, string>, opts: UmaskCliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const script = `umask ${opts.umask ?? "022"}; exec "$0" "$@"`;
    const child = spawn("sh", ["-c", script, process.execPath, CLI, ...args], { env: { PATH: process.env.PATH ?? "", ...env } });
    if (child.pid !== undefined) opts.onSpawn?.(child.pid);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 120_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
