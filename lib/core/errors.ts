// Exit codes are part of the interface (docs/cli.md "Exit codes"); every failure an operator
// can meet is a TaskError carrying one of them, a message that names the setting or file
// and the fix, and the original error as `cause`.

export const ExitCode = {
  ok: 0,
  failed: 1,
  usage: 2,
  lockBusy: 3,
  refused: 4,
  verifyFailed: 5,
  mirrorFailed: 6,
  notImplemented: 7,
  database: 8,
  storage: 9,
  /** restore --continue-on-error restored what it could; some statements failed (listed). */
  partialRestore: 10,
  /** Stopped by SIGINT (128 + 2) or SIGTERM (128 + 15): children stopped, partial files removed. */
  interrupted: 130,
  terminated: 143,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export class TaskError extends Error {
  readonly exitCode: ExitCode;
  constructor(exitCode: ExitCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "TaskError";
    this.exitCode = exitCode;
  }
}

export class ConfigError extends TaskError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ExitCode.usage, message, options);
    this.name = "ConfigError";
  }
}

/** The errno code of a Node system error, or undefined. */
export function errnoCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** PostgreSQL SQLSTATEs we act on, grouped by meaning. */
export const PgCode = {
  invalidPassword: "28P01",
  invalidAuthorization: "28000",
  invalidCatalogName: "3D000",
  cannotConnectNow: "57P03",
  adminShutdown: "57P01",
  duplicateDatabase: "42P04",
  duplicateObject: "42710",
  readOnlyTransaction: "25006",
} as const;
