// Where pg_receivewal writes. Without signing or encryption, straight into BACKUP_DIR/wal
// ("direct"): what it flushes is the recovery point. With BACKUP_SIGNING_KEY_FILE or
// AGE_RECIPIENTS_FILE, into a private folder of the task ("spool", WAL_SPOOL_DIR) from where
// wal-receive ships each file to wal/ (shipper.ts): encryption must happen before anything
// reaches the share, and a signature must cover bytes only this task has seen — signing what
// it read back from the share would sign whatever someone who can write the share put there
// between pg_receivewal's write and that read.
import { isAbsolute, relative, resolve } from "node:path";
import type { Config } from "../config/config.js";
import { ConfigError } from "../core/errors.js";
import { walDir } from "../physical/layout.js";

export type ArchiveMode =
  | { kind: "direct"; receiveDir: string }
  | { kind: "spool"; receiveDir: string; sign: boolean; encrypt: boolean };

/** Pure: the mode the settings call for; refuses a spool on the share. */
export function archiveMode(config: Pick<Config, "backupDir" | "signing" | "encryption" | "wal">): ArchiveMode {
  const sign = config.signing.key !== null;
  const encrypt = config.encryption.recipients !== null;
  if (!sign && !encrypt) return { kind: "direct", receiveDir: walDir(config.backupDir) };
  const spool = config.wal.spoolDir;
  const inside = relative(resolve(config.backupDir), resolve(spool));
  if (inside === "" || (!inside.startsWith("..") && !isAbsolute(inside))) {
    throw new ConfigError(
      `WAL_SPOOL_DIR=${spool} is inside BACKUP_DIR=${config.backupDir}; it must be private to wal-receive (the task's own disk or a named volume), ` +
        `since it holds WAL ${encrypt ? "before it is encrypted" : "before it is signed"}`,
    );
  }
  return { kind: "spool", receiveDir: spool, sign, encrypt };
}
