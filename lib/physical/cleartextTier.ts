// The base backups are still written in cleartext: pg_basebackup's tar holds every row and
// does not go through age yet (WAL does: wal-receive encrypts it as it ships it). A `backup
// base` given AGE_RECIPIENTS_FILE expects what it writes to be encrypted, so it is refused
// rather than silently writing plaintext beside the encrypted backups (README "Encryption at rest").
import type { Config } from "../config/config.js";
import { ConfigError } from "../core/errors.js";

export function refuseWithEncryption(config: Pick<Config, "encryption">, command: string): void {
  if (config.encryption.recipients === null) return;
  throw new ConfigError(
    `${command} cannot encrypt (base backups are written in cleartext; only WAL is encrypted, by wal-receive), but AGE_RECIPIENTS_FILE=${config.encryption.recipientsFile} is set; ` +
      `unset it for this service (stack/docker-compose.encryption.yml gives it to the logical backups and wal-receive), or keep base backups off where backups must stay secret`,
  );
}
