// verify cannot prove what it cannot read: like the logical tiers, it refuses (exit 4) when
// the WAL archive holds encrypted files and AGE_IDENTITY_FILE is missing, or does not open the
// WAL a restore of the newest base backup needs — the oldest and the newest encrypted segment
// of it are decrypted (a key rotation that dropped the old identity shows in the oldest).
import { ExitCode, TaskError } from "../core/errors.js";
import type { AgeIdentity } from "../keys/ageIdentity.js";
import type { BaseManifest, WalFile } from "../physical/layout.js";
import { parseWalName } from "../physical/layout.js";
import type { WalListing } from "../wal/archive.js";
import { readWalFile } from "../wal/readFile.js";
import { encryptedAmong } from "../wal/signedRecord.js";
import { IdentityRefusal, missingIdentity } from "../wal/encryption.js";
import { filesToCheck } from "./walSignatures.js";

/** An identity refusal ends verify; any other problem is returned for a check to report. */
export function rethrowIdentity(err: unknown): Error {
  if (err instanceof IdentityRefusal) throw err;
  return err as Error;
}

export async function assertWalReadable(listing: WalListing, base: BaseManifest, identity: AgeIdentity | null, env: NodeJS.ProcessEnv): Promise<void> {
  const [encrypted] = encryptedAmong([...listing.segments, ...listing.histories].map((e) => e.file.name));
  if (encrypted === undefined) return;
  if (identity === null) throw new TaskError(ExitCode.refused, `verify cannot read the WAL archive: ${missingIdentity(encrypted).message}`);
  const needed = filesToCheck(listing, base).filter((f) => parseWalName(f.name)?.kind === "segment" && f.name.endsWith(".age"));
  for (const f of new Set([needed[0], needed.at(-1)])) {
    if (f === undefined) continue;
    const file = parseWalName(f.name) as WalFile;
    await readWalFile(f.path, file, { verifyKey: null, identity, env }, { maxBytes: base.walSegmentSize, systemIdentifier: null, partial: true }).catch(rethrowIdentity);
  }
}
