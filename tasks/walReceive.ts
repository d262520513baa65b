// wal-receive [--dry-run]: the long-running service that streams WAL into $BACKUP_DIR/wal/
// (lib/receiver/supervisor.ts), signed and encrypted as it is archived when the signing key
// or the age recipients are given (lib/receiver/archiver.ts). It ends only on a fault it
// cannot repair (an error naming the fix and a documented exit code) or on SIGTERM (exit 143,
// the .partial kept, and shipped when it goes through the spool).
import type { Config } from "../lib/config/config.js";
import type { Deps } from "../lib/core/deps.js";
import { walDir } from "../lib/physical/layout.js";
import { archiveMode } from "../lib/receiver/archiveMode.js";
import { superviseWalReceiver } from "../lib/receiver/supervisor.js";
import { receiveArgs } from "../lib/receiver/process.js";
import { assertBackupDir, assertBackupDirIdentity } from "../lib/store/backupDir.js";

export interface WalReceiveArgs {
  dryRun: boolean;
}

export async function run(config: Config, deps: Deps, args: WalReceiveArgs): Promise<void> {
  const mode = archiveMode(config);
  if (args.dryRun) {
    const w = config.wal;
    const how =
      mode.kind === "direct"
        ? "WAL goes straight into wal/, unsigned and unencrypted (set BACKUP_SIGNING_KEY_FILE to sign it, AGE_RECIPIENTS_FILE to encrypt it)"
        : `WAL goes into the spool ${mode.receiveDir} and is shipped to ${walDir(config.backupDir)}${mode.encrypt ? ", encrypted to AGE_RECIPIENTS_FILE" : ""}${mode.sign ? ", signed with BACKUP_SIGNING_KEY_FILE" : ""}; ` +
          `the segment being received is shipped as a snapshot every ${w.statusIntervalSeconds} s (WAL_STATUS_INTERVAL_SECONDS)`;
    deps.out(
      `would create replication slot ${w.slot} if missing, then run and supervise:\n  pg_receivewal ${receiveArgs(config, mode.receiveDir).join(" ")}\n` +
        `as ${config.pg.user}@${config.pg.host}:${config.pg.port}; ${how}; alert after ${w.lagAlertSeconds} s behind or down (WAL_LAG_ALERT_SECONDS)\n`,
    );
    return;
  }
  // The box's identity at start; at every segment switch and status tick the receiver checks the marker is still there (lib/receiver/switchChecks.ts).
  const log = deps.log.child({ task: "wal-receive" });
  await assertBackupDir(config.backupDir, "wal-receive did not start");
  await assertBackupDirIdentity(config.backupDir, { metricsFile: config.metricsFile, log, create: true, fileMode: config.files.file });
  await superviseWalReceiver(config, deps);
}
