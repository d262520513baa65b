// The recovery settings restore-pitr appends to postgresql.auto.conf (the last setting of a
// name wins, so they override whatever the source cluster had there). restore_command is
// relative to the data directory, postgres's working directory, so it names no host path.
import { STAGED_WAL_DIR } from "./walStaging.js";

const quote = (v: string): string => `'${v.replace(/'/g, "''")}'`;

/** "2024-01-10 12:00:00.000+00": the server checks this setting before it has loaded zone abbreviations, so "Z" is refused. */
export function recoveryTime(t: Date): string {
  return t.toISOString().replace("T", " ").replace("Z", "+00");
}

export function recoverySettings(target: Date | null, stamp: Date): string {
  const lines = [
    "",
    `# restore-pitr ${stamp.toISOString()}: recovery from the WAL staged in ${STAGED_WAL_DIR}/ (delete the folder after the cluster promoted)`,
    `restore_command = ${quote(`cp "${STAGED_WAL_DIR}/%f" "%p"`)}`,
    `recovery_target_timeline = 'latest'`,
    `recovery_target_action = 'promote'`,
  ];
  if (target !== null) lines.push(`recovery_target_time = ${quote(recoveryTime(target))}`);
  return lines.join("\n") + "\n";
}
