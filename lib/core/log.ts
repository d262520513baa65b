// One JSON line per event (pino) on stderr and, unless LOG_FILE is empty, appended to
// LOG_FILE (the seed's $BACKUP_DIR/backup.log). stdout is kept for command results.
// The log file's folder is never created here: a missing BACKUP_DIR is reported by the task.
import pino from "pino";
import type { Logger } from "pino";

export type { Logger };

export function createLogger(level: string, logFile: string | null, base: Record<string, unknown> = {}): Logger {
  const streams: pino.StreamEntry[] = [{ level: level as pino.Level, stream: pino.destination({ fd: 2, sync: true }) }];
  let fileProblem: string | null = null;
  if (logFile !== null) {
    try {
      streams.push({ level: level as pino.Level, stream: pino.destination({ dest: logFile, append: true, sync: true }) });
    } catch (err) {
      fileProblem = `LOG_FILE=${logFile} cannot be opened (${(err as NodeJS.ErrnoException).code ?? "error"}); logging to stderr only`;
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
