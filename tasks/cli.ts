#!/usr/bin/env node
// The only place that reads argv and the environment, and maps errors to exit codes; the commands
// themselves are defined in tasks/commands.ts.
import { availableParallelism } from "node:os";
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import type { Config } from "../lib/config/config.js";
import { notifyConfig, resolveConfig } from "../lib/config/config.js";
import type { Deps } from "../lib/core/deps.js";
import { ExitCode, TaskError } from "../lib/core/errors.js";
import { createLogger } from "../lib/core/log.js";
import { Notifier, STOP_NOTIFY_BUDGET_MS } from "../lib/notify/notifier.js";
import { hasIdentityMarker } from "../lib/store/backupDirIdentity.js";
import { redact } from "../lib/core/secret.js";
import { onSignals, shutdown } from "../lib/core/shutdown.js";
import { TOOL } from "../lib/core/version.js";
import { isServerGone, serverGoneMessage } from "../lib/postgres/vanished.js";
import type { Handler, MetricsLabel } from "./commands.js";
import { registerCommands } from "./commands.js";

const EXIT_TABLE = `Exit codes:
  0  success (a backup skipped because nothing changed is a success)
  1  the task failed (dump, compression, restore); nothing was changed
  2  usage or configuration error (the message names the variable)
  3  lock busy: another task holds the cluster lock
  4  refused for safety (wiped cluster, existing database, bad checksum)
  5  verify found problems
  6  S3 mirror failed; the local backup succeeded
  7  not implemented in this version (reserved)
  8  cannot connect to or authenticate with PostgreSQL
  9  storage error: BACKUP_DIR not writable, full or missing
 10  restore --continue-on-error restored what it could; failed statements are listed
130  stopped by SIGINT; 143 stopped by SIGTERM (children stopped, partial files and scratch clusters removed)`;

async function recordMetrics(config: Config, deps: Deps, label: MetricsLabel, exitCode: number, started: number, bytes?: number): Promise<void> {
  if (config.metricsFile === null) return;
  const { recordTaskResult } = await import("../lib/core/metrics.js");
  const ok = exitCode === ExitCode.ok;
  await recordTaskResult(config.metricsFile, { ...label, ok, exitCode, durationSeconds: (Date.now() - started) / 1000, bytes, finishedAt: deps.now() }).catch((err: unknown) =>
    deps.log.warn({ err: (err as Error).message, metricsFile: config.metricsFile }, "metrics not recorded"),
  );
}

/** Pings and the webhook for a task whose configuration failed: the monitor hears of it too, if its own settings are sound. */
function notifierWithoutConfig(task: string, tier: string | null): Notifier | undefined {
  try {
    const config = notifyConfig(process.env);
    const log = createLogger("info", null, { tool: TOOL.name, version: TOOL.version });
    return new Notifier(config, { task, tier, lockMode: "wait", log, metricsFile: process.env.METRICS_FILE || null });
  } catch {
    return undefined;
  }
}

/** `metrics`: recorded in METRICS_FILE; `notify`: pinged and reported to the webhook (defaults to `metrics`). */
async function execute(handler: Handler, task: string, metrics?: MetricsLabel, notify: MetricsLabel | undefined = metrics): Promise<void> {
  let config: Config | undefined;
  let deps: Deps | undefined;
  let notifier: Notifier | undefined;
  const started = Date.now();
  try {
    const cfg = resolveConfig(process.env);
    // The default LOG_FILE lives in BACKUP_DIR: opened only once the folder carries its identity
    // marker, so a task beside an unmounted storage box writes nothing there (docs/backups.md "The storage box's identity").
    const marked = process.env.LOG_FILE === undefined && cfg.logFile !== null ? () => hasIdentityMarker(cfg.backupDir) : undefined;
    const log = createLogger(cfg.logLevel, cfg.logFile, { tool: TOOL.name, version: TOOL.version }, cfg.files.file, marked);
    const d: Deps = { log, now: () => new Date(), env: process.env, out: (t) => process.stdout.write(t) };
    const n = notify === undefined ? undefined : new Notifier(cfg.notify, { task: notify.task, tier: notify.tier ?? null, lockMode: cfg.lock.mode, log, metricsFile: cfg.metricsFile, startedAt: started });
    [config, deps, notifier] = [cfg, d, n];
    if (n?.enabled) n.start();
    // On SIGTERM/SIGINT: /fail and the failure webhook beside the releasers, then the run recorded as failed.
    onSignals({
      task,
      log,
      alongside: n?.enabled ? (code) => n.failure(code, `stopped by ${shutdown.signal ?? "a signal"} (docker service rm, a stop, or a timeout) before the task finished`, STOP_NOTIFY_BUDGET_MS) : undefined,
      after: metrics === undefined ? undefined : (code) => recordMetrics(cfg, d, metrics, code, started),
      // The abandoned task still holds sockets and timers, so the loop would not drain before
      // Docker's SIGKILL; this is the one place that ends the process outright.
      exit: (code) => {
        process.exitCode = code;
        process.exit();
      },
    });
    const outcome = (await handler(config, deps)) ?? {};
    process.exitCode = outcome.code ?? ExitCode.ok;
    if (metrics !== undefined) await recordMetrics(config, deps, metrics, process.exitCode, started, outcome.bytes);
    await notifier?.finish({ exitCode: process.exitCode, message: outcome.summary ?? null, skipped: outcome.skipped, backup: outcome.backup, bytes: outcome.bytes });
  } catch (err) {
    // After a signal the handler above reports and exits; what the abandoned task throws meanwhile is its echo.
    if (shutdown.signal !== null) return;
    const exitCode = err instanceof TaskError ? err.exitCode : ExitCode.failed;
    let message = redact(err instanceof Error ? err.message : String(err), [config?.pg.password, config?.s3?.secretAccessKey]);
    if (!(err instanceof TaskError) && isServerGone(err)) message = serverGoneMessage(task, config?.pg.host ?? "PGHOST", message);
    process.stderr.write(JSON.stringify({ level: "error", time: new Date().toISOString(), task, exitCode, msg: message }) + "\n");
    process.stderr.write(`pg-swarm-backup ${task}: ${message}\n`);
    process.exitCode = exitCode;
    if (metrics !== undefined && config !== undefined && deps !== undefined) await recordMetrics(config, deps, metrics, exitCode, started);
    if (notify !== undefined) await (notifier ?? notifierWithoutConfig(notify.task, notify.tier ?? null))?.failure(exitCode, message);
  }
}

export async function main(argv: string[]): Promise<void> {
  const y = yargs(argv)
    .scriptName("pg-swarm-backup")
    .usage("$0 <command> [options]\n\nTiered logical backups of a PostgreSQL cluster. Configuration comes from the environment (see docs/configuration.md).");
  try {
    await registerCommands(y, execute)
      .demandCommand(1, "name a command; see --help")
      .strict()
      .epilogue(`${EXIT_TABLE}\n\nCores here: ${availableParallelism()}. Docs: README.md and docs/cli.md`)
      .version(TOOL.version)
      .help()
      .wrap(Math.min(110, process.stdout.columns ?? 100))
      // A usage error stops the parse: yargs calls .fail and would otherwise run the command's
      // handler anyway (an unknown tier went on to connect, `list --bogus` listed and exited 0).
      .fail((msg, err) => {
        if (err) throw err;
        throw new UsageError(msg);
      })
      .parseAsync();
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`pg-swarm-backup: ${err.message}\nRun with --help for usage.\n`);
    process.exitCode = ExitCode.usage;
  }
}

/** What yargs found wrong with the command line (exit 2); thrown from .fail so that no handler runs. */
class UsageError extends Error {}

await main(hideBin(process.argv));
