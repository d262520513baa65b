// wal-receive writes cleartext: pg_receivewal's WAL holds every row, and pg_receivewal writes
// its files itself, so they cannot go through age. A service given AGE_RECIPIENTS_FILE expects
// what it writes to be encrypted, so it is refused rather than silently writing plaintext beside
// the encrypted backups (README "Encryption at rest"). Base backups are encrypted (backup base).
import type { Config } from "../config/config.js";
import { ConfigError } from "../core/errors.js";

export function refuseWithEncryption(config: Pick<Config, "encryption">, command: string): void {
  if (config.encryption.recipients === null) return;
  throw new ConfigError(
    `${command} cannot encrypt (WAL is written in cleartext), but AGE_RECIPIENTS_FILE=${config.encryption.recipientsFile} is set; ` +
      `unset it for this service (stack/docker-compose.encryption.yml gives it to the logical backups only), or keep the physical tier off where backups must stay secret`,
  );
}
