// Where `verify --restore` restores to: a throwaway cluster started inside the task
// (default), or scratch databases on a server named by VERIFY_PGHOST (for hosts that
// cannot run initdb). Either way everything created is removed by release().
import { randomBytes } from "node:crypto";
import type { PgConfig } from "./config.js";
import { readSecretFile } from "./config.js";
import { ConfigError } from "./errors.js";
import type { Logger } from "./log.js";
import { childEnv, connect } from "./pg.js";
import { startScratchCluster } from "./scratchCluster.js";

export interface RestoreTarget {
  /** For messages: "scratch cluster" or "VERIFY_PGHOST=host:port". */
  label: string;
  pg: PgConfig;
  /** Environment for psql: the target's libpq variables. */
  env: NodeJS.ProcessEnv;
  /**
   * false: a cluster of our own, restored like `bunzip2 -c | psql` with globals and real names.
   * true: a shared server, where globals (roles) are never applied and each database goes
   * into a fresh scratch database made by createDatabase().
   */
  renames: boolean;
  createDatabase(original: string): Promise<string>;
  databaseNames(): Promise<string[]>;
  release(): Promise<void>;
}

type Env = Readonly<Record<string, string | undefined>>;

/** VERIFY_PGHOST/VERIFY_PGPORT/VERIFY_PGUSER/VERIFY_PGDATABASE/VERIFY_PGPASSWORD_FILE, or null when VERIFY_PGHOST is unset. */
export function verifyServerConfig(env: Env): PgConfig | null {
  const host = env.VERIFY_PGHOST ?? "";
  if (host === "") return null;
  const portRaw = env.VERIFY_PGPORT ?? "";
  const port = portRaw === "" ? 5432 : Number(portRaw);
  if (!/^\d+$/.test(portRaw === "" ? "5432" : portRaw) || port < 1 || port > 65535) {
    throw new ConfigError(`VERIFY_PGPORT=${JSON.stringify(portRaw)} is not a port number; set the port of the verify server (5432 by default)`);
  }
  const file = env.VERIFY_PGPASSWORD_FILE ?? "";
  return {
    host,
    port,
    user: env.VERIFY_PGUSER || "postgres",
    database: env.VERIFY_PGDATABASE || "postgres",
    password: file === "" ? null : readSecretFile("VERIFY_PGPASSWORD_FILE", file, "mount the verify server's password secret or unset VERIFY_PGPASSWORD_FILE"),
    passwordSource: file === "" ? "none" : `VERIFY_PGPASSWORD_FILE=${file}`,
    passfile: null,
    connectTimeoutSeconds: 30,
  };
}

export async function openRestoreTarget(server: PgConfig | null, env: NodeJS.ProcessEnv, log: Logger): Promise<RestoreTarget> {
  if (server === null) {
    const cluster = await startScratchCluster(env, log);
    return {
      label: "scratch cluster",
      pg: cluster.pg,
      env: childEnv(cluster.pg, env),
      renames: false,
      createDatabase: () => Promise.reject(new Error("the scratch cluster restores databases under their own names")),
      databaseNames: () => Promise.resolve([]),
      release: () => cluster.destroy(),
    };
  }
  const label = `VERIFY_PGHOST=${server.host}:${server.port}`;
  const admin = await connect(server, server.database, log);
  const run = randomBytes(4).toString("hex");
  const created: string[] = [];
  return {
    label,
    pg: server,
    env: childEnv(server, env),
    renames: true,
    async createDatabase(original) {
      const name = `pgsb_verify_${run}_${created.length + 1}`;
      await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(name)} TEMPLATE template0`);
      created.push(name);
      log.debug({ database: original, as: name }, "scratch database created");
      return name;
    },
    async databaseNames() {
      const r = await admin.query<{ datname: string }>("SELECT datname FROM pg_database");
      return r.rows.map((row) => row.datname);
    },
    async release() {
      for (const name of created.reverse()) {
        // FORCE ends sessions a crashed psql may have left behind.
        await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(name)} WITH (FORCE)`).catch((err: unknown) => {
          log.warn({ database: name, err: (err as Error).message }, `scratch database ${name} on ${label} could not be dropped; drop it by hand`);
        });
      }
      await admin.end().catch(() => undefined);
    },
  };
}
