// The recovery settings restore-pitr appends to postgresql.auto.conf (the last setting of a
// name wins, so they override whatever the source cluster had there). restore_command is
// relative to the data directory, postgres's working directory, so it names no host path.
// recovery_end_command removes the staged WAL once recovery has ended: by then every segment
// the cluster still needs was restored into pg_wal (the server keeps restored segments there
// for crash recovery), so nothing reads pgsb_wal/ again.
import type { OwnSettings } from "./commandSettings.js";
import { STAGED_WAL_DIR } from "./walStaging.js";

const quote = (v: string): string => `'${v.replace(/'/g, "''")}'`;

/** The values restore-pitr writes; an earlier restore's copies in a later base backup are its own, not the source's. */
export const OWN_SETTINGS: Readonly<OwnSettings> = Object.freeze({
  restoreCommand: `cp "${STAGED_WAL_DIR}/%f" "%p"`,
  recoveryEndCommand: `rm -rf ${STAGED_WAL_DIR}`,
});

/** "2024-01-10 12:00:00.000+00": the server checks this setting before it has loaded zone abbreviations, so "Z" is refused. */
export function recoveryTime(t: Date): string {
  return t.toISOString().replace("T", " ").replace("Z", "+00");
}

export function recoverySettings(target: Date | null, stamp: Date): string {
  const lines = [
    "",
    `# restore-pitr ${stamp.toISOString()}: recovery from the WAL staged in ${STAGED_WAL_DIR}/, removed by recovery_end_command once recovery ended`,
    `restore_command = ${quote(OWN_SETTINGS.restoreCommand)}`,
    `recovery_end_command = ${quote(OWN_SETTINGS.recoveryEndCommand)}`,
    `recovery_target_timeline = 'latest'`,
    `recovery_target_action = 'promote'`,
  ];
  if (target !== null) lines.push(`recovery_target_time = ${quote(recoveryTime(target))}`);
  return lines.join("\n") + "\n";
}
