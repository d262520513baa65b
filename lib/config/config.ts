// Configuration is read once, at the edge (tasks/cli.ts), from the environment into a
// typed, frozen object. Every bad value fails here with the variable, the problem and the fix.
import { accessSync, constants, existsSync, statSync } from "node:fs";
import { availableParallelism } from "node:os";
import { isAbsolute, join } from "node:path";
import { ConfigError, errnoCode } from "../core/errors.js";
import type { Codec } from "../core/codec.js";
import { CODECS } from "../core/codec.js";
import type { FileModes } from "../core/fileModes.js";
import { fileModes } from "../core/fileModes.js";
import { Secret } from "../core/secret.js";
import type { SigningConfig } from "../keys/signing.js";
import { signingConfig } from "../keys/signing.js";
import type { EncryptionConfig } from "./encryption.js";
import { encryptionConfig } from "./encryption.js";
import type { Env } from "./envValues.js";
import { int, oneOf, readSecretFile, str } from "./envValues.js";
import type { S3Config } from "./s3.js";
import { s3Config } from "./s3.js";
import type { WalReceiveConfig } from "./wal.js";
import { walReceiveConfig } from "./wal.js";

export type { S3Config } from "./s3.js";
export type { WalReceiveConfig } from "./wal.js";
export { readSecretFile } from "./envValues.js";

export const DEFAULT_PASSWORD_FILE = "/run/secrets/postgres_password";
const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
const LEVEL_RANGE: Record<Codec, [number, number, number | null]> = {
  bzip2: [1, 9, 9],
  zstd: [1, 19, 1],
  gzip: [1, 9, 6],
  none: [0, 0, null],
};

export interface PgConfig {
  host: string;
  port: number;
  user: string;
  database: string;
  password: Secret | null;
  /** Where the password came from, for error messages: "PGPASSWORD", "POSTGRES_PASSWORD_FILE=/run/…", "PGPASSFILE=…" or "none". */
  passwordSource: string;
  passfile: string | null;
  connectTimeoutSeconds: number;
}

export interface Config {
  pg: PgConfig;
  backupDir: string;
  tz: string;
  compression: { codec: Codec; level: number | null; threads: number };
  /** DUMP_STALL_TIMEOUT_SECONDS: a pg_dump that delivers nothing for this long fails the backup (0: never). */
  dumpStallSeconds: number;
  /** BASE_BACKUP_CHECKPOINT: how `backup base` asks for its starting checkpoint (pg_basebackup --checkpoint). */
  baseBackup: { checkpoint: "fast" | "spread" };
  retention: { keepAllDays: number; keepDifferentialDays: number; minFull: number; keepFullDays: number };
  lock: { mode: "wait" | "skip"; timeoutSeconds: number };
  s3: S3Config | null;
  signing: SigningConfig;
  encryption: EncryptionConfig;
  logLevel: (typeof LOG_LEVELS)[number];
  logFile: string | null;
  metricsFile: string | null;
  /** BACKUP_FILE_MODE / BACKUP_DIR_MODE: modes of the files and tier folders the tool creates. */
  files: FileModes;
  notify: NotifyConfig;
  wal: WalReceiveConfig;
}

function checkReadableFile(name: string, path: string, fix: string): void {
  try {
    if (!statSync(path).isFile()) throw new ConfigError(`${name}=${path} is not a file; ${fix}`);
    accessSync(path, constants.R_OK);
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(`${name}=${path} is not readable (${errnoCode(err) ?? "error"}); ${fix}`, { cause: err });
  }
}

/** PG_BINDIR, when set, must hold the server programs verify --restore runs. */
function checkBinDir(env: Env): void {
  const dir = env.PG_BINDIR;
  if (dir === undefined || dir === "") return;
  const fix = "point it at the folder with initdb and pg_ctl (e.g. /usr/lib/postgresql/16/bin) or unset it";
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new ConfigError(`PG_BINDIR=${dir} is not a folder; ${fix}`);
  for (const program of ["initdb", "pg_ctl"]) {
    try {
      accessSync(join(dir, program), constants.X_OK);
    } catch (err) {
      throw new ConfigError(`PG_BINDIR=${dir} has no executable ${program}; ${fix}`, { cause: err });
    }
  }
}

/** VERIFY_PG* settings describe the server VERIFY_PGHOST names; without it they would be ignored. */
function checkVerifyServer(env: Env): void {
  if (env.VERIFY_PGHOST !== undefined && env.VERIFY_PGHOST !== "") return;
  const orphan = ["VERIFY_PGPORT", "VERIFY_PGUSER", "VERIFY_PGDATABASE", "VERIFY_PGPASSWORD_FILE"].find((n) => env[n] !== undefined && env[n] !== "");
  if (orphan !== undefined) {
    throw new ConfigError(`${orphan}=${JSON.stringify(env[orphan])} is set but VERIFY_PGHOST is not; set VERIFY_PGHOST to the verify server, or unset ${orphan} to verify in a throwaway cluster`);
  }
}

function validTimeZone(env: Env): string {
  const tz = str(env, "TZ", "Europe/Berlin").replace(/^:/, "");
  try {
    new Intl.DateTimeFormat("en-GB", { timeZone: tz });
  } catch (err) {
    throw new ConfigError(`TZ=${JSON.stringify(tz)} is not a known time zone; use an IANA name such as Europe/Berlin or UTC`, { cause: err });
  }
  return tz;
}

function pgConfig(env: Env): PgConfig {
  let password: Secret | null = null;
  let passwordSource = "none";
  const fix = "mount the postgres_password secret or set PGPASSWORD";
  if (env.PGPASSWORD !== undefined && env.PGPASSWORD !== "") {
    password = new Secret(env.PGPASSWORD);
    passwordSource = "PGPASSWORD";
  } else if (env.POSTGRES_PASSWORD_FILE !== undefined && env.POSTGRES_PASSWORD_FILE !== "") {
    password = readSecretFile("POSTGRES_PASSWORD_FILE", env.POSTGRES_PASSWORD_FILE, fix);
    passwordSource = `POSTGRES_PASSWORD_FILE=${env.POSTGRES_PASSWORD_FILE}`;
  } else if (existsSync(DEFAULT_PASSWORD_FILE)) {
    password = readSecretFile("POSTGRES_PASSWORD_FILE", DEFAULT_PASSWORD_FILE, fix);
    passwordSource = `POSTGRES_PASSWORD_FILE=${DEFAULT_PASSWORD_FILE} (default)`;
  }
  const passfile = env.PGPASSFILE !== undefined && env.PGPASSFILE !== "" ? env.PGPASSFILE : null;
  if (password === null && passfile !== null) {
    // libpq and pg skip a passfile they cannot read without a word; the server then reports a wrong password.
    checkReadableFile("PGPASSFILE", passfile, "mount the passfile there (mode 0600), or set PGPASSWORD or POSTGRES_PASSWORD_FILE instead");
    passwordSource = `PGPASSFILE=${passfile}`;
  }
  return {
    host: str(env, "PGHOST", "postgres"),
    port: int(env, "PGPORT", 5432, 1, 65535, "set the port PostgreSQL listens on (5432 by default)"),
    user: str(env, "PGUSER", "postgres"),
    database: str(env, "PGDATABASE", "postgres"),
    password,
    passwordSource,
    passfile,
    connectTimeoutSeconds: int(env, "PG_CONNECT_TIMEOUT_SECONDS", 60, 0, 86_400, "seconds to keep retrying while PostgreSQL is starting"),
  };
}

// --- Notifications (issue 17): healthchecks-style pings and a webhook. The URLs usually
// carry a token in their path or query, so they are Secrets and errors name the variable only.
export interface NotifyConfig {
  healthcheckUrl: Secret | null;
  webhookUrl: Secret | null;
  on: "failure" | "always";
  timeoutSeconds: number;
}

function notifyUrl(env: Env, name: string): Secret | null {
  const direct = str(env, name, "");
  const file = str(env, `${name}_FILE`, "");
  if (direct !== "" && file !== "") throw new ConfigError(`${name} and ${name}_FILE are both set; set one of them`);
  const fix = `use an http(s) URL, e.g. https://hc-ping.com/<uuid>, or unset ${name}`;
  const secret = file !== "" ? readSecretFile(`${name}_FILE`, file, `mount the secret holding the URL or unset ${name}_FILE`) : direct !== "" ? new Secret(direct.trim()) : null;
  if (secret === null) return null;
  const source = file !== "" ? `${name}_FILE=${file}` : name;
  let url: URL;
  try {
    url = new URL(secret.reveal().trim());
  } catch {
    // Node's TypeError carries the input; the URL may hold a token, so it is not kept as cause.
    throw new ConfigError(`${source} does not hold a valid URL; ${fix}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new ConfigError(`${source} is a ${url.protocol} URL, not http(s); ${fix}`);
  return new Secret(url.href);
}

/** Read on its own too: a task whose other settings are wrong still reports its failure to the monitor. */
export function notifyConfig(env: Env): NotifyConfig {
  return Object.freeze({
    healthcheckUrl: notifyUrl(env, "HEALTHCHECK_URL"),
    webhookUrl: notifyUrl(env, "NOTIFY_URL"),
    on: oneOf(env, "NOTIFY_ON", ["failure", "always"] as const, "failure"),
    timeoutSeconds: int(env, "NOTIFY_TIMEOUT_SECONDS", 10, 1, 300, "seconds to wait for a monitor or webhook to answer (10 by default)"),
  });
}
// --- end of notifications


export function resolveConfig(env: Env): Readonly<Config> {
  const backupDir = str(env, "BACKUP_DIR", "/backups");
  if (!backupDir.startsWith("/")) {
    throw new ConfigError(`BACKUP_DIR=${JSON.stringify(backupDir)} is not an absolute path; use e.g. /backups`);
  }
  const codec = oneOf(env, "BACKUP_COMPRESSION", CODECS, "bzip2");
  const [lo, hi, defLevel] = LEVEL_RANGE[codec];
  if (codec === "none" && (env.BACKUP_COMPRESSION_LEVEL ?? "") !== "") {
    throw new ConfigError(`BACKUP_COMPRESSION_LEVEL=${env.BACKUP_COMPRESSION_LEVEL ?? ""} is set but BACKUP_COMPRESSION=none compresses nothing; unset BACKUP_COMPRESSION_LEVEL or choose a codec`);
  }
  const level = codec === "none" ? null : int(env, "BACKUP_COMPRESSION_LEVEL", defLevel ?? 0, lo, hi, `${codec} levels are ${lo}..${hi}`);
  const keepAllDays = int(env, "RETENTION_KEEP_ALL_DAYS", 14, 0, 36_500, "days during which every backup is kept");
  const keepDifferentialDays = int(env, "RETENTION_KEEP_DIFFERENTIAL_DAYS", 42, 0, 36_500, "days during which differentials are kept");
  if (keepDifferentialDays < keepAllDays) {
    throw new ConfigError(`RETENTION_KEEP_DIFFERENTIAL_DAYS=${keepDifferentialDays} is below RETENTION_KEEP_ALL_DAYS=${keepAllDays}; it must be at least as long`);
  }
  const keepFullRaw = str(env, "RETENTION_KEEP_FULL_DAYS", "");
  const keepFullDays = keepFullRaw === "" ? Infinity : int(env, "RETENTION_KEEP_FULL_DAYS", 0, keepDifferentialDays, 36_500, `fulls are kept at least as long as differentials (${keepDifferentialDays}); unset it to keep fulls forever`);
  const logFileRaw = env.LOG_FILE;
  const metrics = str(env, "METRICS_FILE", "");
  if (metrics !== "" && !isAbsolute(metrics)) {
    throw new ConfigError(`METRICS_FILE=${JSON.stringify(metrics)} is not an absolute path; use the node_exporter textfile folder, e.g. /var/lib/node_exporter/textfile/pg_swarm_backup.prom`);
  }
  checkBinDir(env);
  checkVerifyServer(env);
  return Object.freeze({
    pg: Object.freeze(pgConfig(env)),
    backupDir,
    tz: validTimeZone(env),
    compression: Object.freeze({
      codec,
      level,
      threads: int(env, "BACKUP_COMPRESSION_THREADS", availableParallelism(), 1, 1024, "threads for the compressor (default: all cores)"),
    }),
    dumpStallSeconds: int(env, "DUMP_STALL_TIMEOUT_SECONDS", 600, 0, 86_400, "seconds a dump may deliver nothing before it fails (600 by default; 0 turns the check off)"),
    baseBackup: Object.freeze({ checkpoint: oneOf(env, "BASE_BACKUP_CHECKPOINT", ["fast", "spread"] as const, "fast") }),
    retention: Object.freeze({
      keepAllDays,
      keepDifferentialDays,
      minFull: int(env, "RETENTION_MIN_FULL", 2, 1, 1000, "the number of newest fulls never deleted (at least 1)"),
      keepFullDays,
    }),
    lock: Object.freeze({
      mode: oneOf(env, "LOCK_MODE", ["wait", "skip"] as const, "wait"),
      timeoutSeconds: int(env, "LOCK_TIMEOUT_SECONDS", 3600, 0, 604_800, "seconds to wait for another task's lock"),
    }),
    s3: s3Config(env),
    signing: signingConfig(env),
    encryption: encryptionConfig(env),
    logLevel: oneOf(env, "LOG_LEVEL", LOG_LEVELS, "info"),
    logFile: logFileRaw === undefined ? join(backupDir, "backup.log") : logFileRaw === "" ? null : logFileRaw,
    metricsFile: metrics === "" ? null : metrics,
    files: Object.freeze(fileModes(env)),
    notify: notifyConfig(env),
    wal: Object.freeze(walReceiveConfig(env)),
  });
}
