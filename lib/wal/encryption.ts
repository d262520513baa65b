// age on one WAL file in memory (a segment is at most a few MiB compressed, 16 MiB raw): the
// age CLI as lib/backup/encryption.ts runs it for the logical tiers, with only public keys in
// argv when encrypting and the identity file's path (never its content) when decrypting.
import { ExitCode, TaskError } from "../core/errors.js";
import { ProcessError, runCommandBytes } from "../core/proc.js";
import type { AgeIdentity } from "../keys/ageIdentity.js";
import { filterEnv } from "../backup/compression.js";
import { decryptorFor, encryptorFor, isIdentityMismatch } from "../backup/encryption.js";

/** `data` encrypted to `recipients` (age's binary format). `inShutdown`: run by a shutdown releaser (see proc.ts). */
export async function encryptWal(data: Uint8Array, recipients: readonly string[], env: NodeJS.ProcessEnv, inShutdown = false): Promise<Buffer> {
  const age = encryptorFor(recipients, env);
  return runCommandBytes(age.program, age.args, { env: filterEnv(env), input: data, inShutdown });
}

/** A WAL file that cannot be read for want of the right AGE_IDENTITY_FILE (exit 4): verify, too, refuses rather than reports it. */
export class IdentityRefusal extends TaskError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ExitCode.refused, message, options);
    this.name = "IdentityRefusal";
  }
}

const IDENTITY_FIX = "set AGE_IDENTITY_FILE to the identity (private key) of one of the recipients wal-receive encrypted to (on Swarm, the age_identity secret); after a key rotation keep the old identity in the file too, one per line";

/** Why an encrypted WAL file cannot be read without an identity (exit 4), naming AGE_IDENTITY_FILE. */
export function missingIdentity(file: string): IdentityRefusal {
  return new IdentityRefusal(`WAL file ${file} is encrypted and AGE_IDENTITY_FILE is not set; ${IDENTITY_FIX}`);
}

/**
 * `data` (one encrypted WAL file as read) decrypted with the identity; a refusal (exit 4) when the
 * identity does not fit or age's authentication fails (the file was altered or truncated).
 */
export async function decryptWal(file: string, data: Uint8Array, identity: AgeIdentity | null, env: NodeJS.ProcessEnv): Promise<Buffer> {
  if (identity === null) throw missingIdentity(file);
  const age = decryptorFor(identity, env);
  try {
    return await runCommandBytes(age.program, age.args, { env: filterEnv(env), input: data });
  } catch (err) {
    if (isIdentityMismatch(err)) {
      throw new IdentityRefusal(`WAL file ${file} cannot be decrypted with AGE_IDENTITY_FILE=${identity.file}: none of its identities is a recipient of the file; ${IDENTITY_FIX}`, { cause: err });
    }
    const said = err instanceof ProcessError ? err.stderrTail.split("\n")[0] || err.message : (err as Error).message;
    throw new TaskError(ExitCode.refused, `WAL file ${file} does not decrypt (${said}): age's authentication failed, so the file was altered or truncated after it was archived`, { cause: err });
  }
}
