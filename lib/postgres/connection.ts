// PostgreSQL connections: one place that knows how to connect, retry while the server
// starts, and explain a failure without revealing the password.
import pg from "pg";
import type { PgConfig } from "../config/config.js";
import { ExitCode, PgCode, TaskError } from "../core/errors.js";
import type { Logger } from "../core/log.js";
import { redact } from "../core/secret.js";
import { sleep } from "../core/concurrency.js";

export type Client = pg.Client;

export const APPLICATION_NAME = "pg-swarm-backup";

/** The environment for pg_dump/psql children: libpq variables, the password via env (never argv). */
export function childEnv(cfg: PgConfig, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const key of ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"]) if (base[key] !== undefined) env[key] = base[key];
  env.PGHOST = cfg.host;
  env.PGPORT = String(cfg.port);
  env.PGUSER = cfg.user;
  env.PGAPPNAME = APPLICATION_NAME;
  env.PGCONNECT_TIMEOUT = "15";
  env.PGOPTIONS = SERVER_KEEPALIVE_OPTIONS;
  if (cfg.password !== null) env.PGPASSWORD = cfg.password.reveal();
  if (cfg.passfile !== null) env.PGPASSFILE = cfg.passfile;
  return env;
}

/**
 * Dead-peer detection for every libpq child (pg_dump, pg_dumpall, psql, pg_basebackup,
 * pg_receivewal). A server that vanished (container killed, node lost) sends no FIN or RST, and
 * a client waiting for COPY data sends nothing either, so without keepalives the socket stays
 * ESTABLISHED for the kernel's two hours. With these: the first probe after 10 s of silence,
 * then every 5 s; tcp_user_timeout ends the connection once 30 s pass without an answer (it also
 * bounds a send the dead peer never acknowledges). So a dead server is seen within about 35 s
 * (docs/backups.md "Dead servers and stalled dumps"). libpq ignores them on Unix sockets.
 */
export const KEEPALIVE = { idleSeconds: 10, intervalSeconds: 5, count: 3, userTimeoutMs: 30_000 } as const;

export const KEEPALIVE_CONNINFO =
  `keepalives=1 keepalives_idle=${KEEPALIVE.idleSeconds} keepalives_interval=${KEEPALIVE.intervalSeconds} ` +
  `keepalives_count=${KEEPALIVE.count} tcp_user_timeout=${KEEPALIVE.userTimeoutMs}`;

/**
 * The server's side of the same bound, for every session this tool opens: a task on a node that
 * was lost leaves a session (and the cluster lock it held) behind until the server's TCP gives
 * up, 15 minutes or more; with these settings (user-settable, sent at connection start) the
 * server drops it within about 35 s, and the next scheduled run gets the lock.
 */
export const SERVER_KEEPALIVE_OPTIONS =
  `-c tcp_keepalives_idle=${KEEPALIVE.idleSeconds} -c tcp_keepalives_interval=${KEEPALIVE.intervalSeconds} ` +
  `-c tcp_keepalives_count=${KEEPALIVE.count} -c tcp_user_timeout=${KEEPALIVE.userTimeoutMs}`;

/** A libpq connection string naming one database (quoted, so any name with = or spaces is taken literally), with KEEPALIVE_CONNINFO. */
export function dbnameConninfo(database: string): string {
  return `dbname='${database.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}' ${KEEPALIVE_CONNINFO}`;
}

const TRANSIENT = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "ECONNRESET", "ETIMEDOUT", "EHOSTUNREACH", "ENOENT"]);

function isTransient(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  if (e.code !== undefined && (TRANSIENT.has(e.code) || e.code === PgCode.cannotConnectNow || e.code === PgCode.adminShutdown)) return true;
  return /timeout|Connection terminated/i.test(e.message ?? "");
}

export function describeConnectError(cfg: PgConfig, database: string, err: unknown): TaskError {
  const e = err as { code?: string; message?: string };
  const where = `${cfg.user}@${cfg.host}:${cfg.port}/${database}`;
  const detail = redact(e.message ?? String(err), [cfg.password]);
  if (e.code === PgCode.invalidPassword || /password authentication failed|no password supplied|SASL/i.test(e.message ?? "")) {
    // libpq and pg skip passfile lines that do not match (or a file with loose permissions) silently.
    const fix =
      cfg.password === null && cfg.passfile !== null
        ? `check that ${cfg.passfile} has a line ${cfg.host}:${cfg.port}:*:${cfg.user}:<password> (or matching wildcards) with the current password, and mode 0600`
        : `check that secret or variable holds the current password of PGUSER=${cfg.user}`;
    return new TaskError(ExitCode.database, `PostgreSQL rejected the password for ${where} (password from ${cfg.passwordSource}); ${fix}`, { cause: err });
  }
  if (e.code === PgCode.invalidCatalogName) {
    return new TaskError(ExitCode.database, `database "${database}" does not exist on ${cfg.host}:${cfg.port} (${detail}); check PGDATABASE`, { cause: err });
  }
  return new TaskError(
    ExitCode.database,
    `cannot connect to PostgreSQL at ${where} (${detail}); check PGHOST/PGPORT, that the postgres service is running and on the backend-net network`,
    { cause: err },
  );
}

function newClient(cfg: PgConfig, database: string): pg.Client {
  const client = new pg.Client({
    host: cfg.host,
    port: cfg.port,
    user: cfg.user,
    database,
    password: cfg.password?.reveal(),
    application_name: APPLICATION_NAME,
    connectionTimeoutMillis: 15_000,
    // Node sets only the idle time; interval and count are the kernel's (net.ipv4.tcp_keepalive_intvl
    // and _probes, per network namespace): the stack sets them for the task services (docs/backups.md
    // "Dead servers and stalled dumps"). Long dumps are pg_dump's, which carries KEEPALIVE_CONNINFO.
    keepAlive: true,
    keepAliveInitialDelayMillis: KEEPALIVE.idleSeconds * 1000,
    options: SERVER_KEEPALIVE_OPTIONS,
  });
  // A server restart mid-task surfaces as an 'error' event; without a listener Node would crash.
  client.on("error", () => undefined);
  return client;
}

/**
 * Connects, retrying transient failures (server starting, DNS of a not-yet-scheduled service)
 * with backoff for up to PG_CONNECT_TIMEOUT_SECONDS; authentication failures fail at once.
 */
export async function connect(cfg: PgConfig, database: string, log?: Logger, retrySeconds = cfg.connectTimeoutSeconds): Promise<pg.Client> {
  const deadline = Date.now() + retrySeconds * 1000;
  let delay = 250;
  for (let attempt = 1; ; attempt++) {
    const client = newClient(cfg, database);
    try {
      await client.connect();
      return client;
    } catch (err) {
      await client.end().catch(() => undefined);
      if (!isTransient(err) || Date.now() + delay > deadline) throw describeConnectError(cfg, database, err);
      log?.warn({ attempt, retryInMs: delay, error: redact((err as Error).message, [cfg.password]) }, "PostgreSQL not reachable yet, retrying");
      await sleep(delay);
      delay = Math.min(delay * 2, 5000);
    }
  }
}

export async function withClient<T>(cfg: PgConfig, database: string, fn: (c: pg.Client) => Promise<T>, log?: Logger): Promise<T> {
  const client = await connect(cfg, database, log);
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}
