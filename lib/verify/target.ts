// Where `verify --restore` restores to: a throwaway cluster started inside the task
// (default), or scratch databases on a server named by VERIFY_PGHOST (for hosts that
// cannot run initdb). Either way the shared executor (lib/restore/exec.ts) restores into it,
// without the production cluster's lock, and release() removes everything created.
import { randomBytes } from "node:crypto";
import type { PgConfig } from "../config/config.js";
import { readSecretFile } from "../config/config.js";
import { dropTemp } from "../restore/database.js";
import { ConfigError, ExitCode, PgCode, TaskError } from "../core/errors.js";
import { GlobalsFilter } from "../restore/globalsFilter.js";
import type { Logger } from "../core/log.js";
import { connect } from "../postgres/connection.js";
import type { Client } from "../postgres/connection.js";
import type { RestoreContext, RestoreRequest } from "../restore/context.js";
import type { GlobalsSink } from "../restore/globals.js";
import { startScratchCluster } from "./scratchCluster.js";
import { clusterGlobals } from "../restore/targetState.js";
import { shutdown } from "../core/shutdown.js";

export interface RestoreTarget {
  /** For messages: "scratch cluster" or "VERIFY_PGHOST=host:port". */
  label: string;
  pg: PgConfig;
  /** Only verify restores into it (RestoreContext.exclusive). */
  exclusive: boolean;
  /** What to restore here for restore-latest's request, and the roles created for it, which release() drops. */
  prepare(latest: RestoreRequest, ctx: RestoreContext): Promise<{ request: RestoreRequest; roles: string[] }>;
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
    // The cluster is ours: restored as restore-latest restores a wiped cluster, globals (roles) and real names.
    return {
      label: "scratch cluster",
      pg: cluster.pg,
      exclusive: true,
      prepare: (latest) => Promise.resolve({ request: latest, roles: [] }),
      release: () => cluster.destroy(),
    };
  }
  const label = `VERIFY_PGHOST=${server.host}:${server.port}`;
  const admin = await connect(server, server.database, log);
  const run = `pgsb_verify_${randomBytes(4).toString("hex")}`;
  const scratch: string[] = [];
  const roles: string[] = [];
  const release = async (): Promise<void> => {
    // The executor drops its own temporary databases; what it renamed into place is dropped here.
    for (const name of [...scratch].reverse()) {
      await dropTemp(admin, name).catch((err: unknown) => {
        log.warn({ database: name, err: (err as Error).message }, `scratch database ${name} on ${label} could not be dropped; drop it by hand`);
      });
    }
    for (const role of [...roles].reverse()) {
      await admin.query(`DROP ROLE IF EXISTS ${admin.escapeIdentifier(role)}`).catch((err: unknown) => {
        log.warn({ role, err: (err as Error).message }, `stand-in role ${role} on ${label} could not be dropped; drop it by hand`);
      });
    }
    await admin.end().catch(() => undefined);
  };
  // On a signal too: the scratch databases and stand-in roles are dropped after the executor's temporary databases.
  const unregister = shutdown.register(`scratch databases on ${label}`, release);
  return {
    label,
    pg: server,
    exclusive: false,
    // Each database goes into a new database `<run>_<n>`: the executor points the section's
    // database-level statements and \connect lines at it, so no database of the server, one
    // of the backup's names included, is touched. The backup's globals are never applied:
    // roles are cluster-wide, and their passwords, LOGIN and memberships would change who may
    // do what on the server. psql stops at the sections' first error, though, and their
    // OWNER TO and GRANT statements need the roles, so each role the server lacks is created
    // bare (NOLOGIN, no password, no membership) and dropped after the scratch databases.
    // The stand-ins are made as the restore reads the globals file, in its one read, before any section starts.
    prepare(latest, ctx) {
      const databases = latest.databases.map((d, i) => ({ ...d, target: `${run}_${i + 1}` }));
      scratch.push(...databases.map((d) => d.target));
      log.debug({ databases: databases.map((d) => [d.source, d.target]) }, "scratch databases");
      const globals = latest.globals === null ? null : { ...latest.globals, sink: new StandIns(admin, ctx, roles, label) };
      return Promise.resolve({ request: { ...latest, globals, databases }, roles });
    },
    release: () => release().finally(unregister),
  };
}

/** Takes the globals part as the restore reads it and creates a NOLOGIN role for each role the server lacks; appends each to `created` as it is made. */
class StandIns implements GlobalsSink {
  private filter: GlobalsFilter | null = null;

  constructor(
    private readonly admin: Client,
    private readonly ctx: RestoreContext,
    private readonly created: string[],
    private readonly label: string,
  ) {}

  async push(chunk: Buffer): Promise<void> {
    this.filter ??= new GlobalsFilter("missingRoles", await clusterGlobals(this.admin));
    this.filter.push(chunk);
  }

  async finish(): Promise<{ created: string[]; errors: { kept: never[]; count: number } }> {
    const filter = this.filter ?? new GlobalsFilter("missingRoles", await clusterGlobals(this.admin));
    filter.end();
    for (const role of filter.created) {
      try {
        await this.admin.query(`CREATE ROLE ${this.admin.escapeIdentifier(role)} NOLOGIN`);
      } catch (err) {
        // Created meanwhile by someone else: theirs, and not ours to drop.
        if ((err as { code?: string }).code === PgCode.duplicateObject) continue;
        throw new TaskError(
          ExitCode.failed,
          `cannot create the stand-in role ${JSON.stringify(role)} on ${this.label}: ${(err as Error).message}; VERIFY_PGUSER=${this.ctx.pg.user} needs CREATEROLE, or create the backup's roles on that server`,
          { cause: err },
        );
      }
      this.created.push(role);
    }
    // Stand-ins, not the backup's roles: the restore reports none created.
    return { created: [], errors: { kept: [], count: 0 } };
  }

  kill(): void {}
}
