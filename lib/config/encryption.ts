// AGE_RECIPIENTS_FILE and AGE_IDENTITY_FILE, read at start like the signing keys: a bad line
// in either is exit 2 before any work. The backup services get the recipients (public keys)
// only; the restore and verify services the identity (docs/security.md "Encryption at rest").
import type { AgeIdentity } from "../keys/ageIdentity.js";
import { readIdentityFile } from "../keys/ageIdentity.js";
import { readRecipientsFile } from "../keys/ageRecipients.js";

export interface EncryptionConfig {
  /** Every new backup is encrypted to these public keys; null: backups are written unencrypted. */
  recipients: string[] | null;
  recipientsFile: string | null;
  /** Decrypts encrypted backups for restore, list-databases and verify; null when not given. */
  identity: AgeIdentity | null;
}

type Env = Readonly<Record<string, string | undefined>>;

export function encryptionConfig(env: Env): EncryptionConfig {
  const recipientsFile = env.AGE_RECIPIENTS_FILE || null;
  const identityFile = env.AGE_IDENTITY_FILE || null;
  return Object.freeze({
    recipients: recipientsFile === null ? null : readRecipientsFile(recipientsFile),
    recipientsFile,
    identity: identityFile === null ? null : readIdentityFile(identityFile),
  });
}
