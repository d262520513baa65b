// One database's restore: its section streamed into psql, under a temporary name
// (lib/restore/retarget.ts) that is renamed into place only after psql exited cleanly on a complete
// section and every other section of the restore is in; on any failure the temporary database
// is dropped and the real one is untouched. The temporary database carries TEMP_MARK from the
// moment it exists until the rename, so a leftover of an interrupted restore is recognised as
// ours and a user's database that happens to share the prefix never is.
// psql runs restricted and cannot follow the section's \connect lines, so the job makes the
// connections: the part before the first \connect (CREATE DATABASE, its owner) goes to a psql
// in the maintenance database, and each part after a \connect to a new psql connected to the
// database being restored, as pg_dump's reconnects intend.
import type { PgConfig } from "../config/config.js";
import { quoteIdent } from "../sql/ident.js";
import type { Logger } from "../core/log.js";
import type { Client } from "../postgres/connection.js";
import type { PsqlProcess, StatementError } from "./psql.js";
import { PsqlFailure, spawnPsql } from "./psql.js";
import type { TargetAction } from "./target.js";
import { TEMP_MARK, markStatement, mayReplace, refusal, tempName } from "./target.js";
import { RECONNECT, SectionRefusal, SectionRetargeter } from "./retarget.js";
import type { Piece } from "./retarget.js";
import { restrictKey } from "./restrict.js";
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
  /** psql restricts itself (lib/restore/restrict.ts); false only for signed content on a psql without \restrict. */
  restricted: boolean;
}

export interface JobSpec {
  file: string;
  source: string;
  target: string;
  action: Exclude<TargetAction, { action: "refuse" }>;
}

export type JobOutcome =
  | { status: "restored" | "deferred"; seconds: number; statementErrors: StatementErrors }
  /** tampered: the section is not what pg_dump writes (psql refused a meta-command of it, or it connects elsewhere), so the file was altered. */
  | { status: "failed"; error: string; tampered?: boolean };

/** The statements of one database's section that failed under --continue-on-error. */
export interface StatementErrors {
  kept: readonly StatementError[];
  count: number;
}

const NO_ERRORS: StatementErrors = { kept: [], count: 0 };
/** What comes before a section's first \connect: SET lines, CREATE DATABASE and its owner. A forged section cannot make it hold more in memory. */
const MAX_PREAMBLE = 1 << 20;
/** Lines are counted for error messages while a psql has been fed less than this; pg_dump reconnects only near a section's start. */
const COUNTED_BYTES = 16 << 20;

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

function newlines(buf: Buffer): number {
  let n = 0;
  for (let at = buf.indexOf(0x0a); at >= 0; at = buf.indexOf(0x0a, at + 1)) n++;
  return n;
}

/** Whether a preamble holds anything psql must run (not only pg_dump's comment header and blank lines). */
function holdsStatements(preamble: Buffer): boolean {
  return preamble
    .toString("latin1")
    .split("\n")
    .some((line) => line.trim() !== "" && !line.startsWith("--"));
}

/** Drops a temporary database; a section may have marked it a template, which DROP refuses. */
export async function dropTemp(admin: Client, name: string): Promise<void> {
  const r = await admin.query<{ t: boolean }>("SELECT datistemplate AS t FROM pg_database WHERE datname = $1", [name]);
  if (r.rows[0]?.t === true) await admin.query(`ALTER DATABASE ${quoteIdent(name)} IS_TEMPLATE false`);
  await admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
}

export class DatabaseJob {
  private readonly temp: string | null;
  private psql: PsqlProcess | null = null;
  private readonly section: SectionRetargeter;
  /** Before the first \connect: the preamble, held until the job knows where it runs. */
  private preamble: Buffer[] | null = [];
  private preambleBytes = 0;
  /** The section line of the next byte, counted while `counted` < COUNTED_BYTES (null once unknown). */
  private line: number | null = 1;
  private counted = 0;
  private readonly kept: StatementError[] = [];
  private errorCount = 0;
  private error: string | null = null;
  private tampered = false;
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
    // A section that creates its database gets the mark on its CREATE DATABASE line.
    const mark = spec.action.action === "swap" && !spec.action.createTemp ? markStatement(this.temp as string) : null;
    this.section = new SectionRetargeter(spec.source, this.temp, mark);
  }

  /** The database the section's parts after a \connect run in. */
  private get database(): string {
    return this.temp ?? this.spec.target;
  }

  /** Prepares the temporary database when the section does not create it. */
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
    } catch (err) {
      this.fail(err);
    }
  }

  async feed(chunk: Buffer): Promise<void> {
    if (this.error !== null) return;
    try {
      await this.write(this.section.push(chunk));
    } catch (err) {
      this.fail(err);
    }
  }

  private async write(pieces: readonly Piece[]): Promise<void> {
    for (const piece of pieces) {
      if (this.error !== null) return;
      if (piece === RECONNECT) await this.reconnect();
      else await this.send(piece);
    }
  }

  private async send(data: Buffer): Promise<void> {
    if (this.line !== null) {
      if (this.counted < COUNTED_BYTES) this.line += newlines(data);
      else this.line = null;
      this.counted += data.length;
    }
    if (this.preamble !== null) {
      this.preambleBytes += data.length;
      if (this.preambleBytes > MAX_PREAMBLE) throw new Error(`its part before the first \\connect is longer than ${MAX_PREAMBLE} bytes, which pg_dump never writes`);
      this.preamble.push(data);
      return;
    }
    await this.psql?.write(data);
  }

  /** A \connect of the section: the part before it is done; the rest goes to a new psql in the database being restored. */
  private async reconnect(): Promise<void> {
    if (this.preamble !== null) {
      const preamble = Buffer.concat(this.preamble);
      this.preamble = null;
      // The preamble's CREATE DATABASE and ALTER DATABASE run from the maintenance database.
      if (holdsStatements(preamble)) {
        this.psql = this.spawn(this.ctx.pg.database, 1);
        await this.psql.write(preamble);
      }
    }
    await this.finishPsql();
    this.psql = this.spawn(this.database, this.line ?? 1);
    this.counted = 0;
  }

  private spawn(database: string, firstLine: number): PsqlProcess {
    return spawnPsql(database, this.ctx.env, this.ctx.secrets, {
      continueOnError: this.ctx.continueOnError,
      restrictKey: this.ctx.restricted ? restrictKey() : null,
      firstLine,
    });
  }

  /** Ends the current psql's input and waits for it; its failed statements (--continue-on-error) are kept. */
  private async finishPsql(): Promise<void> {
    const psql = this.psql;
    if (psql === null) return;
    this.psql = null;
    try {
      await psql.finish();
    } finally {
      const found = psql.statementErrors;
      for (const e of found.kept) if (this.kept.length < 1000) this.kept.push(e);
      this.errorCount += found.count();
    }
  }

  /** The section ended (complete: with pg_dump's trailer); the returned promise settles when the database is in place or given up. */
  async endInput(complete: boolean): Promise<JobOutcome> {
    if (!complete) this.fail(new Error("its section ends early: the backup file is truncated"));
    if (this.error === null) {
      try {
        await this.write(this.section.end());
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
    return this.errorCount === 0 ? NO_ERRORS : { kept: this.kept, count: this.errorCount };
  }

  private fail(err: unknown): void {
    if (this.error === null) this.tampered = err instanceof SectionRefusal || (err instanceof PsqlFailure && err.refusedMetaCommand);
    this.error ??= err instanceof PsqlFailure ? err.at("of its section") : errorText(err);
    this.psql?.kill();
  }

  private async complete(): Promise<JobOutcome> {
    try {
      await this.finishPsql();
    } catch (err) {
      if (this.error === null) this.fail(err);
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
    return { status: "failed", error, ...(this.tampered ? { tampered: true } : {}) };
  }
}
