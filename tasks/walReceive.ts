// wal-receive [--dry-run]: the long-running service that streams WAL into $BACKUP_DIR/wal/
// (lib/receiver/supervisor.ts). It ends only on a fault it cannot repair (an error naming
// the fix and a documented exit code) or on SIGTERM (exit 143, the .partial kept).
import { refuseWithEncryption } from "../lib/physical/cleartextTier.js";
import type { Config } from "../lib/config/config.js";
import type { Deps } from "../lib/core/deps.js";
import { superviseWalReceiver } from "../lib/receiver/supervisor.js";
import { receiveArgs } from "../lib/receiver/process.js";
import { assertBackupDir, assertBackupDirIdentity } from "../lib/store/backupDir.js";

export interface WalReceiveArgs {
  dryRun: boolean;
}

export async function run(config: Config, deps: Deps, args: WalReceiveArgs): Promise<void> {
  refuseWithEncryption(config, "wal-receive");
  if (args.dryRun) {
    const w = config.wal;
    deps.out(
      `would create replication slot ${w.slot} if missing, then run and supervise:\n  pg_receivewal ${receiveArgs(config).join(" ")}\n` +
        `as ${config.pg.user}@${config.pg.host}:${config.pg.port}; alert after ${w.lagAlertSeconds} s behind or down (WAL_LAG_ALERT_SECONDS)\n`,
    );
    return;
  }
  // The box's identity at start. At segment switches the check is assertBackupDirMarker (lib/store/backupDir.ts),
  // for the receiver's per-switch hook.
  const log = deps.log.child({ task: "wal-receive" });
  await assertBackupDir(config.backupDir, "wal-receive did not start");
  await assertBackupDirIdentity(config.backupDir, { metricsFile: config.metricsFile, log, create: true, fileMode: config.files.file });
  await superviseWalReceiver(config, deps);
}
