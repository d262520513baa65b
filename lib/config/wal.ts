// wal-receive's settings (WAL_*, issue 19): the pg_receivewal supervisor.
import { isAbsolute, join, normalize } from "node:path";
import { ConfigError } from "../core/errors.js";
import type { Env } from "./envValues.js";
import { int, oneOf, str } from "./envValues.js";

export interface WalReceiveConfig {
  /** Replication slot name (WAL_SLOT). */
  slot: string;
  compression: "gzip" | "lz4" | "none";
  /** Alert (ping /fail, webhook) when the receiver is this far behind the server, or down this long. */
  lagAlertSeconds: number;
  /**
   * pg_receivewal --status-interval, the supervisor's poll of the slot, and (when wal-receive
   * signs or encrypts) how often the segment being received is shipped to wal/ as a snapshot.
   */
  statusIntervalSeconds: number;
  /**
   * WAL_SPOOL_DIR: where pg_receivewal writes when wal-receive signs or encrypts (the task's own
   * disk or a named volume, never the share); wal-receive ships from there into wal/.
   */
  spoolDir: string;
}

function spoolDir(env: Env): string {
  const dir = str(env, "WAL_SPOOL_DIR", join(str(env, "TMPDIR", "/tmp"), "pgsb-wal-spool"));
  if (!isAbsolute(dir)) throw new ConfigError(`WAL_SPOOL_DIR=${JSON.stringify(dir)} is not an absolute path; use a folder on the task's own disk or a named volume, e.g. /var/lib/pgsb-wal-spool`);
  return normalize(dir).replace(/(.)\/$/, "$1");
}

export function walReceiveConfig(env: Env): WalReceiveConfig {
  const slot = str(env, "WAL_SLOT", "pg_swarm_backup");
  // PostgreSQL's rule for slot names (ReplicationSlotValidateName).
  if (!/^[a-z0-9_]{1,63}$/.test(slot)) throw new ConfigError(`WAL_SLOT=${JSON.stringify(slot)} is not a slot name: use 1 to 63 lowercase letters, digits and underscores`);
  return {
    slot,
    compression: oneOf(env, "WAL_COMPRESSION", ["gzip", "lz4", "none"] as const, "gzip"),
    lagAlertSeconds: int(env, "WAL_LAG_ALERT_SECONDS", 300, 1, 604_800, "seconds the receiver may lag behind the server before an alert (300 by default)"),
    statusIntervalSeconds: int(env, "WAL_STATUS_INTERVAL_SECONDS", 5, 1, 3600, "seconds between the receiver's status reports (5 by default)"),
    spoolDir: spoolDir(env),
  };
}
