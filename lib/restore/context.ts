// What a restore is asked to do (RestoreRequest), where and how (RestoreContext), and what it
// did (RestoreOutcome): the contract between the restore commands, verify and the executor
// (lib/restore/exec.ts).
import type { KeyObject } from "node:crypto";
import { availableParallelism } from "node:os";
import type { Config, PgConfig } from "../config/config.js";
import { ExitCode, TaskError } from "../core/errors.js";
import type { Logger } from "../core/log.js";
import type { AgeIdentity } from "../keys/ageIdentity.js";
import { childEnv } from "../postgres/connection.js";
import type { SectionEvents, SectionsResult } from "../sql/splitter.js";
import type { StatementErrors } from "./database.js";
import type { ReadOptions, SqlSource } from "./decompress.js";
import type { GlobalsSink } from "./globals.js";
import type { GlobalsMode } from "./globalsFilter.js";

export type RestoreFile = SqlSource;

export interface RestoreRequest {
  files: RestoreFile[];
  /** Whose globals to apply and how; `sink` replaces the psql that applies them (verify's stand-in roles). */
  globals: { file: RestoreFile; mode: GlobalsMode; sink?: GlobalsSink } | null;
  databases: { file: RestoreFile; source: string; target: string }[];
  dropExisting: boolean;
  /** Run every statement and list the failed ones (exit 10) instead of failing a database at its first error. */
  continueOnError: boolean;
}

export interface RestoreContext {
  pg: PgConfig;
  /** Base environment for child processes (PATH, locale). */
  env: NodeJS.ProcessEnv;
  threads: number;
  parallel: number;
  log: Logger;
  /**
   * No other restore can run against the cluster (the caller holds its lock, or the cluster
   * is private): temporary databases found there are leftovers to drop. false on a server
   * others may restore into too.
   */
  exclusive: boolean;
  /** BACKUP_VERIFY_KEY_FILE: the request's files come from a trusted scan with it, so every byte read is signed. null: unsigned content. */
  verifyKey: KeyObject | null;
  /** AGE_IDENTITY_FILE: decrypts encrypted files; null: an encrypted file is refused before anything is touched. */
  identity: AgeIdentity | null;
  /** Sees every section of each file as the restore reads it (verify counts rows in the same read). */
  observe?: (file: RestoreFile) => SectionEvents;
}

/** How the files of a restore are read: its cores for the decompressor, its identity for age. */
export function readOptions(ctx: Pick<RestoreContext, "threads" | "pg" | "env" | "identity">): ReadOptions {
  return { threads: ctx.threads, env: childEnv(ctx.pg, ctx.env), identity: ctx.identity };
}

/** The context for restoring into the configured cluster, under its lock: all cores for psql processes and the decompressor. */
export function restoreContext(config: Config, env: NodeJS.ProcessEnv, log: Logger): RestoreContext {
  return { pg: config.pg, env, threads: config.compression.threads, parallel: availableParallelism(), log, exclusive: true, verifyKey: config.signing.verifyKey, identity: config.encryption.identity };
}

export interface RestoreOutcome {
  restored: string[];
  createdRoles: string[];
  seconds: number;
  /** --continue-on-error: the statements that failed, per database (the globals as database null). */
  statementErrors: FailedStatements[];
  /** What each file's read found: its sections, and how many of its bytes were read (once each). */
  reads: { file: string; sections: SectionsResult | null; bytesRead: number }[];
}

export interface FailedStatements {
  database: string | null;
  file: string;
  errors: StatementErrors;
}

/** A restore that failed for some databases (the message says why); the others were restored. */
export class RestoreFailure extends TaskError {
  constructor(
    message: string,
    /** Each failed database and the file its section came from, in the request's file order. */
    readonly failures: readonly { target: string; file: string }[],
    readonly restored: readonly string[],
  ) {
    super(ExitCode.failed, message);
  }
}
