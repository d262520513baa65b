// The recovery settings restore-pitr appends to postgresql.auto.conf (the last setting of a
// name wins, so they override whatever the source cluster had there). restore_command is
// relative to the data directory, postgres's working directory, so it names no host path.
import { STAGED_WAL_DIR } from "./walStaging.js";

const quote = (v: string): string => `'${v.replace(/'/g, "''")}'`;

export function recoverySettings(target: Date | null, stamp: Date): string {
  const lines = [
    "",
    `# restore-pitr ${stamp.toISOString()}: recovery from the WAL staged in ${STAGED_WAL_DIR}/ (delete the folder after the cluster promoted)`,
    `restore_command = ${quote(`cp "${STAGED_WAL_DIR}/%f" "%p"`)}`,
    `recovery_target_timeline = 'latest'`,
    `recovery_target_action = 'promote'`,
  ];
  if (target !== null) lines.push(`recovery_target_time = ${quote(target.toISOString())}`);
  return lines.join("\n") + "\n";
}
