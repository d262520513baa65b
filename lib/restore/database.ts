// One database's restore: its section streamed into its own psql, under a temporary name
// (lib/restore/retarget.ts) that is renamed into place only after psql exited cleanly on a complete
// section and every other section of the restore is in; on any failure the temporary database
// is dropped and the real one is untouched. The temporary database carries TEMP_MARK from the
// moment it exists until the rename, so a leftover of an interrupted restore is recognised as
// ours and a user's database that happens to share the prefix never is.
import type { PgConfig } from "../config/config.js";
import { quoteIdent } from "../sql/ident.js";
import type { Logger } from "../core/log.js";
import type { Client } from "../postgres/connection.js";
import type { PsqlProcess, StatementError } from "./psql.js";
import { PsqlFailure, spawnPsql } from "./psql.js";
import type { TargetAction } from "./target.js";
import { TEMP_MARK, markStatement, mayReplace, refusal, tempName } from "./target.js";
import { SectionRetargeter } from "./retarget.js";
import { ScriptGuard, ScriptRefusal } from "../sql/metaCommands.js";
import type { Secret } from "../core/secret.js";
import { databaseStates } from "./targetState.js";
import { shutdown } from "../core/shutdown.js";

export interface JobContext {
  pg: PgConfig;
  /** Environment for psql: connection variables and the write-gate override. */
  env: NodeJS.ProcessEnv;
  secrets: readonly (Secret | null)[];
  log: Logger;
  /** A writable connection for CREATE/DROP/ALTER DATABASE; pg queues concurrent queries on it. */
  admin: Client;
  dropExisting: boolean;
  /** restore --continue-on-error: psql runs every statement; the failed ones are listed instead of failing the database. */
  continueOnError: boolean;
}

export interface JobSpec {
  file: string;
  source: string;
  target: string;
  action: Exclude<TargetAction, { action: "refuse" }>;
}

export type JobOutcome =
  | { status: "restored" | "deferred"; seconds: number; statementErrors: StatementErrors }
  | { status: "failed"; error: string };

/** The statements of one database's section that failed under --continue-on-error. */
export interface StatementErrors {
  kept: readonly StatementError[];
  count: number;
}

const NO_ERRORS: StatementErrors = { kept: [], count: 0 };

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** Drops a temporary database; a section may have marked it a template, which DROP refuses. */
export async function dropTemp(admin: Client, name: string): Promise<void> {
  const r = await admin.query<{ t: boolean }>("SELECT datistemplate AS t FROM pg_database WHERE datname = $1", [name]);
  if (r.rows[0]?.t === true) await admin.query(`ALTER DATABASE ${quoteIdent(name)} IS_TEMPLATE false`);
  await admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
}

export class DatabaseJob {
  private readonly temp: string | null;
  private psql: PsqlProcess | null = null;
  private retargeter: SectionRetargeter | null = null;
  /** Between the file and psql: a meta-command pg_dump does not write fails the job before psql gets a byte of it. */
  private readonly guard: ScriptGuard;
  private error: string | null = null;
  private readonly started = Date.now();
  private readonly log: Logger;
  /** Drops the temporary database on a signal (lib/core/shutdown.ts) until it is renamed into place or dropped here. */
  private unregister = (): void => undefined;

  constructor(
    private readonly ctx: JobContext,
    readonly spec: JobSpec,
  ) {
    this.temp = spec.action.action === "swap" ? tempName(spec.target) : null;
    this.log = ctx.log.child({ database: spec.target, backup: spec.file });
    this.guard = new ScriptGuard({ globals: false, database: spec.source });
  }

  /** Prepares the temporary database (when the section does not create it) and starts psql. */
  async begin(): Promise<void> {
    const { action } = this.spec;
    this.log.info({ source: this.spec.source, via: this.temp ?? "in place" }, `restoring database ${JSON.stringify(this.spec.target)}`);
    if (this.temp !== null) {
      const temp = this.temp;
      this.unregister = shutdown.register(`temporary database ${temp}`, () => dropTemp(this.ctx.admin, temp));
    }
    try {
      if (action.action === "swap" && action.createTemp) {
        await this.ctx.admin.query(`CREATE DATABASE ${quoteIdent(this.temp as string)} TEMPLATE template0`);
        await this.ctx.admin.query(markStatement(this.temp as string));
      }
      // A swap section's first statements are CREATE DATABASE and its \connect, so psql starts in the maintenance database.
      const database = action.action === "inPlace" ? this.spec.target : this.ctx.pg.database;
      // A section that creates its database gets the mark on its CREATE DATABASE line.
      if (this.temp !== null) this.retargeter = new SectionRetargeter(this.spec.source, this.temp, action.action === "swap" && !action.createTemp ? markStatement(this.temp) : null);
      this.psql = spawnPsql(database, this.ctx.env, this.ctx.secrets, this.ctx.continueOnError);
    } catch (err) {
      this.fail(err);
    }
  }

  async feed(chunk: Buffer): Promise<void> {
    if (this.error !== null || this.psql === null) return;
    try {
      await this.write(this.guard.push(chunk));
    } catch (err) {
      this.fail(err);
    }
  }

  private async write(chunks: Buffer[]): Promise<void> {
    for (const chunk of chunks) {
      for (const part of this.retargeter === null ? [chunk] : this.retargeter.push(chunk)) await this.psql?.write(part);
    }
  }

  /** The section ended (complete: with pg_dump's trailer); the returned promise settles when the database is in place or given up. */
  async endInput(complete: boolean): Promise<JobOutcome> {
    if (!complete) this.fail(new Error("its section ends early: the backup file is truncated"));
    if (this.error === null && this.psql !== null) {
      try {
        await this.write(this.guard.end());
        for (const part of this.retargeter?.end() ?? []) await this.psql.write(part);
      } catch (err) {
        this.fail(err);
      }
    }
    return this.complete();
  }

  /** The file could not be read on: stop and clean up. */
  abort(reason: string): Promise<JobOutcome> {
    this.fail(new Error(reason));
    return this.complete();
  }

  /** Drops the database being replaced, if any, and renames the temporary one into place. */
  async swap(admin: Client = this.ctx.admin): Promise<JobOutcome> {
    const { target } = this.spec;
    try {
      const state = (await databaseStates(this.ctx.pg, admin, [target], this.log)).get(target) ?? "absent";
      if (!mayReplace(state, this.ctx.dropExisting)) throw new Error(`${refusal(target)}; it was created while the restore ran`);
      if (state !== "absent") {
        await admin.query(`ALTER DATABASE ${quoteIdent(target)} IS_TEMPLATE false`);
        await admin.query(`DROP DATABASE ${quoteIdent(target)}${this.ctx.dropExisting ? " WITH (FORCE)" : ""}`);
      }
      await admin.query(`ALTER DATABASE ${quoteIdent(this.temp as string)} RESET ${TEMP_MARK}`);
      await admin.query(`ALTER DATABASE ${quoteIdent(this.temp as string)} RENAME TO ${quoteIdent(target)}`);
      this.unregister();
      if (target === "template1") await admin.query("ALTER DATABASE template1 IS_TEMPLATE true");
    } catch (err) {
      this.fail(err);
      return this.cleanUp(admin);
    }
    const seconds = (Date.now() - this.started) / 1000;
    this.log.info({ seconds }, `database ${JSON.stringify(target)} restored`);
    return { status: "restored", seconds, statementErrors: this.statementErrors() };
  }

  private statementErrors(): StatementErrors {
    const found = this.psql?.statementErrors;
    return found === undefined || found.count() === 0 ? NO_ERRORS : { kept: found.kept, count: found.count() };
  }

  private fail(err: unknown): void {
    this.error ??= err instanceof ScriptRefusal ? `line ${err.line} of its section: ${err.reason}: ${err.found}; the file was altered after the backup` : errorText(err);
    this.psql?.kill();
  }

  private async complete(): Promise<JobOutcome> {
    try {
      await this.psql?.finish();
    } catch (err) {
      this.error ??= err instanceof PsqlFailure ? err.at("of its section") : errorText(err);
    }
    if (this.error !== null) return this.cleanUp(this.ctx.admin);
    // Every swap waits until all sections are in: an interrupted restore leaves only marked temporary databases.
    if (this.spec.action.action === "swap") return { status: "deferred", seconds: 0, statementErrors: this.statementErrors() };
    const seconds = (Date.now() - this.started) / 1000;
    this.log.info({ seconds }, `database ${JSON.stringify(this.spec.target)} restored in place`);
    return { status: "restored", seconds, statementErrors: this.statementErrors() };
  }

  private async cleanUp(admin: Client): Promise<JobOutcome> {
    if (this.temp !== null) {
      await dropTemp(admin, this.temp).then(this.unregister, (err: unknown) =>
        this.log.warn({ temp: this.temp, err: errorText(err) }, `could not drop the temporary database ${this.temp}; drop it by hand`),
      );
    }
    const where = this.spec.action.action === "inPlace" ? "restored in place: it may hold part of the backup" : "left unchanged";
    const error = `database ${JSON.stringify(this.spec.target)} from ${this.spec.file}: ${this.error ?? "failed"} (${this.spec.target} ${where})`;
    this.log.error({ err: this.error }, error);
    return { status: "failed", error };
  }
}
