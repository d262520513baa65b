// One JSON line per event (pino) on stderr and, unless LOG_FILE is empty, appended to
// LOG_FILE (the seed's $BACKUP_DIR/backup.log). stdout is kept for command results.
// The log file's folder is never created here: a missing BACKUP_DIR is reported by the task.
// BACKUP_DIR is a share others can write, so the log is never appended through a symlink
// (O_NOFOLLOW), and a new log file gets the backup file mode whatever the umask.
import { closeSync, constants, fchmodSync, fstatSync, openSync, writeSync } from "node:fs";
import pino from "pino";
import type { Logger } from "pino";
import { errnoCode } from "./errors.js";
import { DEFAULT_FILE_MODES } from "./fileModes.js";

export type { Logger };

// O_NONBLOCK: a FIFO planted at the log's name must not hang the task (it fails with ENXIO).
const APPEND = constants.O_WRONLY | constants.O_APPEND | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** The log file's descriptor: created with `mode` when new, an existing file keeps its mode. */
export function openLogFile(path: string, mode: number): number {
  let fd: number;
  try {
    fd = openSync(path, APPEND | constants.O_CREAT | constants.O_EXCL, mode);
    fchmodSync(fd, mode);
  } catch (err) {
    if (errnoCode(err) !== "EEXIST") throw err;
    fd = openSync(path, APPEND);
  }
  if (!fstatSync(fd).isFile()) {
    closeSync(fd);
    throw Object.assign(new Error(`${path} is not a regular file`), { code: "EINVAL" });
  }
  return fd;
}

function logFileProblem(logFile: string, err: unknown): string {
  const code = errnoCode(err);
  if (code === "ELOOP") {
    return `LOG_FILE=${logFile} is a symlink; the log is never appended through a symlink (BACKUP_DIR is shared, and a planted one would overwrite another file); logging to stderr only. Find out who created it and remove it, or point LOG_FILE at a regular file`;
  }
  if (code === "EINVAL" || code === "ENXIO") return `LOG_FILE=${logFile} is not a regular file; logging to stderr only. Remove it or point LOG_FILE at a regular file`;
  return `LOG_FILE=${logFile} cannot be opened (${code ?? "error"}); logging to stderr only`;
}

/** Lines kept while a log file may not be opened yet; a task that never may opens it keeps stderr only. */
const DEFERRED_MAX_LINES = 10_000;

/**
 * A log file opened only once `ready()` says so (tasks/cli.ts: once BACKUP_DIR carries its
 * identity marker, so a task beside an unmounted storage box writes nothing there). Until then
 * lines are kept, and written first when it opens; asked again at every line, an lstat.
 */
class DeferredLogFile {
  private fd: number | null = null;
  private failed = false;
  private kept: string[] = [];

  constructor(
    private readonly path: string,
    private readonly mode: number,
    private readonly ready: () => boolean,
  ) {}

  write(line: string): void {
    if (this.failed) return;
    if (this.fd === null && this.ready()) {
      try {
        this.fd = openLogFile(this.path, this.mode);
        writeSync(this.fd, this.kept.join(""));
      } catch (err) {
        this.failed = true;
        writeSync(2, JSON.stringify({ level: "warn", time: new Date().toISOString(), msg: logFileProblem(this.path, err) }) + "\n");
      }
      this.kept = [];
    }
    if (this.fd !== null) writeSync(this.fd, line);
    else if (this.kept.length < DEFERRED_MAX_LINES) this.kept.push(line);
  }
}

/**
 * `fileReady`: when given and false at start, LOG_FILE is opened only once it turns true (see
 * DeferredLogFile); otherwise it is opened at once.
 */
export function createLogger(level: string, logFile: string | null, base: Record<string, unknown> = {}, fileMode = DEFAULT_FILE_MODES.file, fileReady?: () => boolean): Logger {
  const streams: pino.StreamEntry[] = [{ level: level as pino.Level, stream: pino.destination({ fd: 2, sync: true }) }];
  let fileProblem: string | null = null;
  if (logFile !== null && fileReady !== undefined && !fileReady()) {
    streams.push({ level: level as pino.Level, stream: new DeferredLogFile(logFile, fileMode, fileReady) });
  } else if (logFile !== null) {
    try {
      streams.push({ level: level as pino.Level, stream: pino.destination({ fd: openLogFile(logFile, fileMode), sync: true }) });
    } catch (err) {
      fileProblem = logFileProblem(logFile, err);
    }
  }
  const logger = pino(
    { level, base: { ...base }, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (label) => ({ level: label }) } },
    pino.multistream(streams),
  );
  if (fileProblem !== null) logger.warn(fileProblem);
  return logger;
}

/** A logger that drops everything: for library use without a task around it. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
