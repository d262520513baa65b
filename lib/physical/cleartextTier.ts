// The physical tier writes cleartext: pg_basebackup's tar and pg_receivewal's WAL hold every
// row, and neither can go through age (pg_receivewal writes its files itself). A service given
// AGE_RECIPIENTS_FILE expects what it writes to be encrypted, so it is refused rather than
// silently writing plaintext beside the encrypted logical backups (README "Encryption at rest").
import type { Config } from "../config/config.js";
import { ConfigError } from "../core/errors.js";

export function refuseWithEncryption(config: Pick<Config, "encryption">, command: string): void {
  if (config.encryption.recipients === null) return;
  throw new ConfigError(
    `${command} cannot encrypt (base backups and WAL are written in cleartext), but AGE_RECIPIENTS_FILE=${config.encryption.recipientsFile} is set; ` +
      `unset it for this service (stack/docker-compose.encryption.yml gives it to the logical backups only), or keep the physical tier off where backups must stay secret`,
  );
}
