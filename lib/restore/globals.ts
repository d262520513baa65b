// The globals part of a restore (roles, memberships, tablespaces): fed, as the globals file is
// read, through the filter (lib/restore/globalsFilter.ts) into a restricted psql, and finished
// before any database section of any file starts, since sections need their roles.
import type { Client } from "../postgres/connection.js";
import type { Logger } from "../core/log.js";
import type { PgConfig } from "../config/config.js";
import type { Secret } from "../core/secret.js";
import { ExitCode, TaskError } from "../core/errors.js";
import type { StatementErrors } from "./database.js";
import type { GlobalsMode } from "./globalsFilter.js";
import { GlobalsFilter } from "./globalsFilter.js";
import { PsqlFailure, spawnPsql } from "./psql.js";
import type { PsqlProcess } from "./psql.js";
import { restrictKey } from "./restrict.js";
import { clusterGlobals } from "./targetState.js";

/** Takes the globals part of one file as it is read; finish() is awaited before any section starts. */
export interface GlobalsSink {
  push(chunk: Buffer): Promise<void>;
  finish(): Promise<{ created: string[]; errors: StatementErrors }>;
  /** The restore stopped: end whatever runs. */
  kill(): void;
}

export interface PsqlGlobalsContext {
  pg: PgConfig;
  env: NodeJS.ProcessEnv;
  secrets: readonly (Secret | null)[];
  log: Logger;
  admin: Client;
  continueOnError: boolean;
  restricted: boolean;
}

/** Roles and tablespaces of `file`, filtered for the cluster, through a restricted psql. */
export class PsqlGlobals implements GlobalsSink {
  private filter: GlobalsFilter | null = null;
  private psql: PsqlProcess | null = null;

  constructor(
    private readonly ctx: PsqlGlobalsContext,
    private readonly file: string,
    private readonly mode: GlobalsMode,
  ) {}

  private async started(): Promise<{ filter: GlobalsFilter; psql: PsqlProcess }> {
    if (this.filter === null || this.psql === null) {
      this.filter = new GlobalsFilter(this.mode, await clusterGlobals(this.ctx.admin));
      this.psql = spawnPsql(this.ctx.pg.database, this.ctx.env, this.ctx.secrets, {
        continueOnError: this.ctx.continueOnError,
        restrictKey: this.ctx.restricted ? restrictKey() : null,
      });
    }
    return { filter: this.filter, psql: this.psql };
  }

  async push(chunk: Buffer): Promise<void> {
    const { filter, psql } = await this.started();
    await psql.write(filter.push(chunk));
  }

  async finish(): Promise<{ created: string[]; errors: StatementErrors }> {
    const { filter, psql } = await this.started();
    try {
      await psql.write(filter.end());
      await psql.finish();
    } catch (err) {
      psql.kill();
      const why = err instanceof PsqlFailure ? err.at(`of ${this.file}`) : (err as Error).message;
      // A meta-command psql refused is no SQL error: the file is not what pg_dumpall wrote.
      const code = err instanceof PsqlFailure && err.refusedMetaCommand ? ExitCode.refused : ExitCode.failed;
      throw new TaskError(code, `applying the roles and tablespaces of ${this.file} failed: ${why}; roles before that point may have been applied, no database was restored`, { cause: err });
    }
    this.ctx.log.info({ backup: this.file, created: filter.created, existing: filter.existing }, `globals applied: ${filter.created.length} role(s) created`);
    return { created: filter.created, errors: { kept: psql.statementErrors.kept, count: psql.statementErrors.count() } };
  }

  kill(): void {
    this.psql?.kill();
  }
}

/** The globals, applied once by the globals file's reader; every other file's reader waits for them. */
export class GlobalsGate {
  private result: ReturnType<GlobalsSink["finish"]> | null = null;
  private settle!: { resolve: () => void; reject: (err: unknown) => void };
  /** Settles when the globals are applied (or failed, or the globals file could not be read). */
  readonly ready: Promise<void>;

  constructor(readonly sink: GlobalsSink | null) {
    this.ready = new Promise<void>((resolve, reject) => (this.settle = { resolve, reject }));
    this.ready.catch(() => undefined);
    if (sink === null) this.settle.resolve();
  }

  /** The globals file reached its first section or its end: psql applies what it was given. */
  finish(): ReturnType<GlobalsSink["finish"]> {
    if (this.result === null) {
      this.result = (this.sink as GlobalsSink).finish();
      this.result.then(() => this.settle.resolve(), (err: unknown) => this.settle.reject(err));
    }
    return this.result;
  }

  /** The globals file failed before its globals were applied. */
  fail(err: unknown): void {
    this.sink?.kill();
    this.settle.reject(err);
  }

  applied(): ReturnType<GlobalsSink["finish"]> | null {
    return this.result;
  }
}
