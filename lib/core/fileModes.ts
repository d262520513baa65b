// Modes of what the tool creates in BACKUP_DIR. A backup and its sidecars hold every role's
// SCRAM hash, so they are never world-readable, whatever umask the container runs with:
// umask only removes bits, so every new file and folder is chmodded to its mode explicitly.
// Files and folders that already exist keep their mode (an operator may have chosen it).
import { ConfigError } from "./errors.js";

type Env = Readonly<Record<string, string | undefined>>;

export interface FileModes {
  /** Backups, sidecars, latest pointer files, the log file. */
  file: number;
  /** Tier folders. */
  dir: number;
}

export const DEFAULT_FILE_MODES: Readonly<FileModes> = Object.freeze({ file: 0o640, dir: 0o750 });

/** METRICS_FILE and its state: node_exporter's textfile collector runs as another user and must read them; they hold no secrets. */
export const METRICS_FILE_MODE = 0o644;

export function octal(mode: number): string {
  return "0" + mode.toString(8).padStart(3, "0");
}

/**
 * An octal mode string ("0640", "640", "0o640"), or `fallback` when unset. Refuses a value
 * that is not octal, sets bits above 0777 (setuid, setgid, sticky), or lacks `ownerNeeds`.
 */
export function parseMode(name: string, raw: string | undefined, fallback: number, ownerNeeds: number): number {
  if (raw === undefined || raw.trim() === "") return fallback;
  const m = /^(?:0o?)?([0-7]{1,4})$/i.exec(raw.trim());
  const fix = `use an octal mode such as ${octal(fallback)} (the default)`;
  if (m === null) throw new ConfigError(`${name}=${JSON.stringify(raw)} is not an octal mode; ${fix}`);
  const mode = parseInt(m[1] as string, 8);
  if (mode > 0o777) throw new ConfigError(`${name}=${raw} sets setuid, setgid or sticky bits (above 0777); ${fix}`);
  if ((mode & ownerNeeds) !== ownerNeeds) {
    throw new ConfigError(`${name}=${raw} does not give the owner ${ownerNeeds === 0o700 ? "read, write and search" : "read and write"} permission (${octal(ownerNeeds)}), so the task could not use what it creates; ${fix}`);
  }
  return mode;
}

export function fileModes(env: Env): FileModes {
  return {
    file: parseMode("BACKUP_FILE_MODE", env.BACKUP_FILE_MODE, DEFAULT_FILE_MODES.file, 0o600),
    dir: parseMode("BACKUP_DIR_MODE", env.BACKUP_DIR_MODE, DEFAULT_FILE_MODES.dir, 0o700),
  };
}
