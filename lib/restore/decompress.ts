// Reading a backup file back as SQL: the file read once and checked as it is read
// (lib/store/verifiedRead.ts: chunk by chunk, so no unverified byte reaches age or the
// decompressor), then through age (when it is encrypted) and the codec's (parallel)
// decompressor. The caller consumes `stream` and must await `done`, which rejects when a
// stage fails (a changed, truncated, corrupt or undecryptable file), with the upstream failure
// when several do (a decompressor fed short input fails after age did, the verified read
// before both).
import type { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { decompressorFor, filterEnv } from "../backup/compression.js";
import { decryptorFor, identityProblem, isIdentityMismatch } from "../backup/encryption.js";
import type { AgeIdentity } from "../keys/ageIdentity.js";
import type { Codec } from "../core/codec.js";
import { ExitCode, TaskError, errnoCode } from "../core/errors.js";
import { ProcessError, isSecondaryFailure, spawnFilter } from "../core/proc.js";
import { IntegrityError, openVerified } from "../store/verifiedRead.js";
import type { Expectation, Verification } from "../store/verifiedRead.js";

export interface SqlStream {
  stream: Readable;
  /** How the stored bytes are checked as they are read. */
  verification: Verification;
  /** Bytes of the stored file read so far. */
  bytesRead(): number;
  done: Promise<void>;
  /** Stops reading early (kills the filters); `done` then settles without an error. */
  cancel(): void;
  /**
   * Once every stage has ended: the failure that explains a broken stream (age refusing the
   * file, a decompressor finding it corrupt), also after cancel(), or null. A reader that
   * failed with "Premature close" because a filter died asks this for the reason.
   */
  cause: Promise<unknown>;
}

/** A backup file as a reader needs it. */
export interface SqlSource {
  name: string;
  path: string;
  codec: Codec;
  encrypted: boolean;
  /** The public keys an encrypted file was written to (its manifest's), for the message when the identity does not fit. */
  recipients?: readonly string[] | null;
  /** What its stored bytes must be (lib/store/trust.ts). */
  expect: Expectation;
}

export interface ReadOptions {
  threads: number;
  env: NodeJS.ProcessEnv;
  /** AGE_IDENTITY_FILE; required for an encrypted source. */
  identity: AgeIdentity | null;
}

/** Why `identity` cannot open each encrypted source (see identityProblem); empty when it opens them all. */
export function identityProblems(sources: readonly SqlSource[], identity: AgeIdentity | null): string[] {
  return sources.flatMap((s) => {
    const problem = s.encrypted ? identityProblem(s.name, s.recipients ?? null, identity) : null;
    return problem === null ? [] : [problem];
  });
}

/** Throws the refusal (exit 4) naming AGE_IDENTITY_FILE when an encrypted source cannot be opened with `identity`. */
export function assertDecryptable(source: SqlSource, identity: AgeIdentity | null): void {
  const [problem] = identityProblems([source], identity);
  if (problem !== undefined) throw new TaskError(ExitCode.refused, problem);
}

/** Why age refused to decrypt `source` (the identity does not fit, or the file fails age's authentication), or null when `err` is no age failure. */
export function decryptionProblem(source: SqlSource, identity: AgeIdentity | null, err: unknown): string | null {
  if (!(err instanceof ProcessError) || err.program !== "age") return null;
  if (isIdentityMismatch(err)) {
    const to = source.recipients ? ` (it was encrypted to ${source.recipients.join(", ")})` : "";
    return `${source.name} cannot be decrypted with AGE_IDENTITY_FILE=${identity?.file ?? "(unset)"}: none of its identities is a recipient of the file${to}; give the identity of one of its recipients`;
  }
  const said = err.stderrTail.split("\n")[0] || err.message;
  return `${source.name} does not decrypt (${said}): age's authentication failed, so the file was altered or truncated after the backup`;
}

/**
 * A stage's failure that explains the others: not one filter dying of the next one's end, not a
 * filter cancel() killed, not a stream torn down after it.
 */
function explains(err: unknown, cancelled: boolean): boolean {
  if (err instanceof IntegrityError) return true;
  if (err instanceof ProcessError) return !isSecondaryFailure(err) && !(cancelled && err.signal !== undefined);
  // EPIPE: writing into a filter that had already ended (it failed first, or was stopped).
  return !["ERR_STREAM_PREMATURE_CLOSE", "ERR_STREAM_DESTROYED", "EPIPE"].includes(errnoCode(err) ?? "");
}

export function openSqlStream(source: SqlSource, opts: ReadOptions): SqlStream {
  assertDecryptable(source, opts.identity);
  const read = openVerified(source.path, source.expect);
  const file = read.stream;
  const decryptor = source.encrypted && opts.identity !== null ? decryptorFor(opts.identity, opts.env) : null;
  const programs = [decryptor, decompressorFor(source.codec, opts.threads, opts.env)].filter((p) => p !== null);
  const base = { verification: read.verification, bytesRead: read.bytesRead };
  if (programs.length === 0) {
    const done = new Promise<void>((resolve, reject) => {
      file.once("end", () => resolve());
      file.once("close", () => resolve());
      file.once("error", reject);
    });
    return { ...base, stream: file, done, cancel: () => file.destroy(), cause: done.then(() => null, (err: unknown) => err) };
  }
  let cancelled = false;
  const children = programs.map((p) => spawnFilter(p.program, p.args, filterEnv(opts.env)));
  // The verified read first: when it fails, age and the decompressor fail of its end, and it says why.
  const stages: Promise<unknown>[] = [pipeline([file, children[0]?.stdin as Writable])];
  children.forEach((child, i) => {
    stages.push(child.done);
    const next = children[i + 1];
    if (next !== undefined) stages.push(pipeline(child.stdout as Readable, next.stdin as Writable));
  });
  const errors = Promise.allSettled(stages).then((settled) => settled.flatMap((s) => (s.status === "rejected" ? [s.reason as unknown] : [])));
  const cause = errors.then((all) => all.find((e) => explains(e, cancelled)) ?? null);
  const done = errors.then((all) => {
    if (all.length > 0 && !cancelled) throw all.find((e) => explains(e, false)) ?? all[0];
  });
  const last = children[children.length - 1] as (typeof children)[number];
  return {
    ...base,
    stream: last.stdout as Readable,
    done,
    cause,
    cancel() {
      cancelled = true;
      file.destroy();
      for (const child of children) child.kill();
    },
  };
}
