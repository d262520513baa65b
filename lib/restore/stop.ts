// What stops a whole restore: a file that is not the one recorded (a chunk or whole-file hash
// that does not match, age's authentication, a section psql or the retargeter refused: exit 4,
// nothing renamed into place), or roles that could not be applied (no database is restored
// without them). The first stop cancels every file's read.
import type { AgeIdentity } from "../keys/ageIdentity.js";
import { TaskError } from "../core/errors.js";
import { IntegrityError } from "../store/verifiedRead.js";
import { decryptionProblem } from "./decompress.js";
import type { SqlSource, SqlStream } from "./decompress.js";

/** The first reason to stop, and the reads to cancel. */
export class Stop {
  error: TaskError | null = null;
  /** The file was not the one recorded: nothing may be renamed into place. */
  tampered = false;
  readonly streams: SqlStream[] = [];
  stop(error: TaskError, tampered: boolean): void {
    if (this.error !== null) return;
    [this.error, this.tampered] = [error, tampered];
    for (const s of this.streams) s.cancel();
  }
}

/** Why a read failed, and whether it proves the file is not the recorded one (integrity) or just could not be read. */
export function readFailure(file: SqlSource, identity: AgeIdentity | null, err: unknown): { integrity: boolean; message: string } {
  if (err instanceof IntegrityError) return { integrity: true, message: err.message };
  const undecryptable = decryptionProblem(file, identity, err);
  if (undecryptable !== null) return { integrity: true, message: undecryptable };
  return { integrity: false, message: `reading ${file.name} failed: ${(err as Error).message}` };
}
