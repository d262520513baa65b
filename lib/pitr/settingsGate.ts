// The server settings a restored data directory brings (configCheck.ts finds them): from a
// signed base backup they are the source cluster's and are logged; from an unsigned one anyone
// who can write BACKUP_DIR may have put them there, so restore-pitr refuses (exit 4, each one
// listed) unless the operator checked them and said --trust-unsigned.
import { ExitCode, TaskError } from "../core/errors.js";
import type { Logger } from "../core/log.js";
import { describeRisky } from "./commandSettings.js";
import { riskyServerSettings } from "./configCheck.js";
import { OWN_SETTINGS } from "./recoveryConf.js";

export interface GateOptions {
  /** The base backup's signature was checked with BACKUP_VERIFY_KEY_FILE. */
  signed: boolean;
  trustUnsigned: boolean;
  log: Logger;
}

/** Without a signature, settings that run commands or load code are refused (exit 4) unless the operator said --trust-unsigned. */
export async function gateSettings(name: string, dataDir: string, o: GateOptions): Promise<void> {
  const { findings, files } = await riskyServerSettings(dataDir, OWN_SETTINGS);
  const listed = findings.map(describeRisky);
  if (findings.length === 0) {
    o.log.info({ backup: name, files }, `the restored configuration (${files.join(", ")}) sets nothing that runs commands or loads code`);
    return;
  }
  if (o.signed) {
    o.log.info({ backup: name, settings: listed }, `the restored configuration sets ${findings.length} setting(s) that run commands or load code; the base backup is signed, so they are the source cluster's`);
    return;
  }
  if (o.trustUnsigned) {
    o.log.warn({ backup: name, settings: listed, unsigned: true }, `--trust-unsigned: the unsigned base backup's configuration runs commands or loads code, restored as it is: ${listed.join("; ")}`);
    return;
  }
  throw new TaskError(
    ExitCode.refused,
    `${name} is not signed (BACKUP_VERIFY_KEY_FILE is unset), and its configuration sets what runs commands or loads code when postgres starts: ${listed.join("; ")}. ` +
      `Anyone who can write BACKUP_DIR could have put them there. Check them against the source cluster's settings, then run again with --trust-unsigned; or set BACKUP_VERIFY_KEY_FILE and restore a signed base backup`,
  );
}
